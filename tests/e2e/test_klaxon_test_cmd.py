#!/usr/bin/env python3
"""`klaxon test`: passing and failing rule unit tests, and bad test files.

In a temporary folder, a rule file and test files written here:
  - a passing file (inline sources, {{time}} filled in nginx's format, a
    firing and a resolution at their computed instants, an absent alert):
    exit 0, every test PASS;
  - failing files, one way each: an instant far off the got one, a summary
    that differs, a transition got that nobody expected (a flap), an absent
    alert that fires: exit 1, and the output names the rule, the instant,
    the expected and the got side by side;
  - a pass and a fail together: exit 1, both reported;
  - bad test files: an unknown key, a YAML syntax error, an unknown source,
    a line its parser rejects: exit 2 and FILE:LINE:COL: message on stderr;
  - `config:` with a regex parser of its own and an explicit time_format;
  - a probe's results given as `fields:` (a config's probe, never run): a
    failing health check pages after its `for:` and resolves; entries that do
    not suit a probe (a log line, an unknown field, a value not a number)
    are exit 2 at their FILE:LINE:COL.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, log, main, run, tmpdir, write  # noqa: E402

RULES = """\
rules:
  - alert: Burst5xx
    source: web
    expr: count(status >= 500) >= 5
    window: 1m
    keep_firing_for: 30s
    labels: {severity: page}
    annotations:
      summary: '{{ value }} errors over {{ window }}'
  - alert: Quiet
    source: web
    expr: count() == 0
    window: 5m
"""

OK_LINE = '10.1.2.3 - - [{{time}}] "GET /api HTTP/1.1" 200 12 "-" "e2e" rt=0.010 urt="0.010"'
ERR_LINE = '10.1.2.3 - - [{{time}}] "GET /api HTTP/1.1" 503 12 "-" "e2e" rt=0.010 urt="0.010"'

HEAD = """\
sources:
  - {name: web, parser: nginx_timed}
rule_files: [rules.yml]
tests:
"""

# five 503s, one every 10 s from 1m: the 5th at 1m40s; the first leaves the
# 1m window at 2m, keep_firing_for 30s: resolved at 2m30s
BURST = """\
    input:
      web:
        - {every: 5s, for: 4m, line: '%s'}
        - {at: 1m, every: 10s, times: 5, line: '%s'}
""" % (OK_LINE, ERR_LINE)

PASSING = HEAD + """\
  - name: five 503s in a minute page
%s    expect:
      - {at: 1m40s, alert: Burst5xx, labels: {severity: page}, summary: '5 errors over 1m'}
      - {at: 2m30s, alert: Burst5xx, status: resolved}
    absent: [Quiet]
  - name: four 503s do not
    input:
      web:
        - {every: 5s, for: 4m, line: '%s'}
        - {at: 1m, every: 10s, times: 4, line: '%s'}
    absent: [Burst5xx, {alert: Quiet, until: 4m}]
""" % (BURST, OK_LINE, ERR_LINE)

FAILING = {
    "late": (HEAD + """\
  - name: expected a minute early
%s    expect:
      - {at: 40s, alert: Burst5xx}
      - {at: 2m30s, alert: Burst5xx, status: resolved}
""" % BURST, ["rule Burst5xx at +40s", "not got in time", "+1m40s"]),
    "summary": (HEAD + """\
  - name: the summary differs
%s    expect:
      - {at: 1m40s, alert: Burst5xx, summary: '6 errors over 1m'}
      - {at: 2m30s, alert: Burst5xx, status: resolved}
""" % BURST, ["rule Burst5xx at +1m40s", "the summary differs", "6 errors over 1m",
              "5 errors over 1m"]),
    "unexpected": (HEAD + """\
  - name: the resolution is not expected
%s    expect:
      - {at: 1m40s, alert: Burst5xx}
""" % BURST, ["rule Burst5xx at +2m30s", "unexpected", "resolved"]),
    "absent": (HEAD + """\
  - name: Quiet must not fire, but nginx stops
    input:
      web:
        - {every: 5s, for: 1m, line: '%s'}
    until: 10m
    absent: [Quiet]
""" % OK_LINE, ["rule Quiet at +5m55s", "unexpected (absent)", "none from +0s to +10m"]),
}

BAD = {
    # name → (text, line, col, message part)
    "unknown_key": (HEAD + """\
  - name: a typo
    input: {web: ['%s']}
    expcet: []
    absent: [Quiet]
""" % OK_LINE.replace("{{time}}", "14/Nov/2023:22:00:00 +0000"), 7, 5, "unknown key 'expcet'"),
    "yaml_syntax": (HEAD + """\
  - name: bad indentation
    input:
      web: ['x']
     expect: []
""", 8, 6, ""),
    "unknown_source": (HEAD + """\
  - name: no such source
    input:
      nginx: ['%s']
    absent: [Quiet]
""" % OK_LINE, 7, 7, "no source named 'nginx'"),
    "unparsable_line": (HEAD + """\
  - name: a line that is not nginx's
    input:
      web:
        - {every: 1s, times: 3, line: '%s'}
        - {at: 2s, line: 'GET /api 200'}
    absent: [Quiet]
""" % OK_LINE, 9, 11, "does not parse with parser 'nginx_timed'"),
    "no_expect": (HEAD + """\
  - name: checks nothing
    input: {web: ['%s']}
""" % OK_LINE, 5, 5, "needs 'expect'"),
}

CONFIG = r"""
sources:
  - {name: jobs, path: /nonexistent/jobs.log, parser: jobs}
parsers:
  - name: jobs
    regex: '^(?<time>\S+ \S+) job=(?<job>\w+) status=(?<status>\w+) took=(?<took>[\d.]+)$'
    types: {took: seconds}
    time: {field: time, format: '%Y/%m/%d %H:%M:%S'}
rule_files: []
"""

JOB_RULES = """\
rules:
  - alert: JobFailing
    source: jobs
    expr: count(status == 'failed') > 1
    window: 10m
    by: [job]
"""

JOB_TEST = """\
config: klaxon.yml
rule_files: [jobs_rules.yml]
time_format: {jobs: '%Y/%m/%d %H:%M:%S'}
start: 2024-02-29T23:58:00Z
tests:
  - name: a job failing twice
    input:
      jobs:
        - {every: 1m, times: 5, line: '{{time}} job=backup status=ok took=12.5'}
        - {at: 2024-03-01T00:01:00Z, every: 30s, times: 2, line: '{{time}} job=report status=failed took=0.4'}
    expect:
      - {at: 3m30s, alert: JobFailing, labels: {job: report}}
"""


PROBE_CONFIG = """\
sources: []
probes:
  - {name: site, http: 'http://127.0.0.1:9/healthz', interval: 10s}
rule_files: []
"""

PROBE_RULES = """\
rules:
  - alert: SiteDown
    source: site
    expr: last(up) == 0
    window: 1m
    for: 30s
    annotations:
      summary: '{{ source }} down, status {{ value }}'
  - alert: SiteSlow
    source: site
    expr: avg(latency) > 2s
    window: 1m
"""

PROBE_TEST = """\
config: probe_klaxon.yml
rule_files: [probe_rules.yml]
tests:
  - name: a failing check pages after 30s, and resolves with the next good one
    input:
      site:
        - {fields: {status: 200, latency: 0.05}, every: 10s, for: 2m}
        - {at: 2m, fields: {up: 0, error: 'HTTP 503', status: 503, latency: 1500ms}, every: 10s, times: 6}
        - {at: 3m, fields: {up: 1, status: 200, latency: 0.05}, every: 10s, for: 2m}
    expect:
      - {at: 2m30s, alert: SiteDown, summary: 'site down, status 0'}
      - {at: 3m, alert: SiteDown, status: resolved}
    absent: [SiteSlow]
"""

PROBE_BAD = """\
config: probe_klaxon.yml
rule_files: [probe_rules.yml]
tests:
  - name: entries that are no check result
    input:
      site:
        - '10.1.2.3 - - [14/Nov/2023:22:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "e2e" rt=0.1 urt="0.1"'
        - {fields: {up: 0, code: 503}}
        - {fields: {latency: slow}}
    absent: [SiteDown]
"""


def klaxon_test(files, cwd):
    rc, out, err = run([KLAXON, "test"] + files, cwd=cwd, timeout=60)
    out, err = out.decode(), err.decode()
    log("klaxon test %s: exit %d\n%s%s" % (" ".join(files), rc, out, err))
    return rc, out, err


def body():
    d = tmpdir("klaxon-test-cmd")
    write(os.path.join(d, "rules.yml"), RULES)

    write(os.path.join(d, "pass.yml"), PASSING)
    rc, out, err = klaxon_test(["pass.yml"], d)
    check(rc == 0, "passing tests: exit %d" % rc)
    check(len(re.findall(r"^  PASS  ", out, re.M)) == 2, "passing tests: two PASS lines")
    check("klaxon test: 2 passed, 0 failed, 0 errors" in out, "passing tests: the summary")

    for name, (text, wants) in FAILING.items():
        write(os.path.join(d, name + ".yml"), text)
        rc, out, err = klaxon_test([name + ".yml"], d)
        check(rc == 1, "%s: exit %d, expected 1" % (name, rc))
        check(re.search(r"^  FAIL  ", out, re.M), "%s: no FAIL line" % name)
        check(re.search(r"^ +expected +got$", out, re.M), "%s: no expected/got table" % name)
        for w in wants:
            check(w in out, "%s: the output lacks %r" % (name, w))

    rc, out, err = klaxon_test(["pass.yml", "late.yml"], d)
    check(rc == 1, "a pass and a fail: exit %d" % rc)
    check("klaxon test: 2 passed, 1 failed, 0 errors" in out, "a pass and a fail: the summary")

    rc, out, err = klaxon_test(["-v", "pass.yml"], d)
    check(rc == 0 and "transitions got:" in out and "Burst5xx resolved" in out,
          "-v lists the transitions got")

    for name, (text, line, col, msg) in BAD.items():
        write(os.path.join(d, name + ".yml"), text)
        rc, out, err = klaxon_test([name + ".yml"], d)
        check(rc == 2, "%s: exit %d, expected 2" % (name, rc))
        where = "%s.yml:%d:%d: " % (name, line, col)
        check(where in err, "%s: stderr lacks %r" % (name, where))
        check(msg in err, "%s: stderr lacks %r" % (name, msg))

    rc, out, err = klaxon_test(["pass.yml", "unknown_key.yml", "late.yml"], d)
    check(rc == 2, "a bad file among good ones: exit %d" % rc)
    check("2 passed, 1 failed, 0 errors, 1 test file(s) not run" in out,
          "a bad file among good ones: the others still run")

    write(os.path.join(d, "klaxon.yml"), CONFIG)
    write(os.path.join(d, "jobs_rules.yml"), JOB_RULES)
    write(os.path.join(d, "jobs.yml"), JOB_TEST)
    rc, out, err = klaxon_test([os.path.join(d, "jobs.yml")], "/")
    check(rc == 0, "config: with a parser of its own: exit %d" % rc)

    write(os.path.join(d, "probe_klaxon.yml"), PROBE_CONFIG)
    write(os.path.join(d, "probe_rules.yml"), PROBE_RULES)
    write(os.path.join(d, "probe_test.yml"), PROBE_TEST)
    rc, out, err = klaxon_test(["probe_test.yml"], d)
    check(rc == 0 and "klaxon test: 1 passed, 0 failed, 0 errors" in out,
          "probe fields: exit %d" % rc)
    write(os.path.join(d, "probe_bad.yml"), PROBE_BAD)
    rc, out, err = klaxon_test(["probe_bad.yml"], d)
    check(rc == 2, "bad probe entries: exit %d, expected 2" % rc)
    for where, msg in (("probe_bad.yml:7:11: ", "'site' is a probe (http)"),
                       ("probe_bad.yml:8:28: ", "probe 'site' (http) has no field 'code'"),
                       ("probe_bad.yml:9:30: ", "invalid value 'slow' for 'latency'")):
        check(where + "input: " + msg in err or where + "fields: " + msg in err,
              "bad probe entries: stderr lacks %r%r" % (where, msg))

    rc, out, err = klaxon_test([], d)
    check(rc == 2 and "usage: klaxon test" in err, "no file: usage, exit 2")


main(body)
