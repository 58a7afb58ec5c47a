#!/usr/bin/env python3
"""`klaxon check`: every problem as FILE:LINE:COL: message, exit 1; good configs exit 0.

Broken rule files, one problem each (so one cannot hide another), then all of
them at once (check goes on after the first problem and reports each):
  - an unknown event field in an expression (`stauts`)
  - an unknown function (`percentile(...)`)
  - an expression syntax error
  - a YAML syntax error
  - an unknown key in a rule (`windw:`, a typo that must not pass silently)
  - an unknown source
The expected line is the line of the offending text; the column must be a
positive number. Then examples/klaxon.yml and the demo config must pass.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, SRC, check, fail, log, main, run, tmpdir, write  # noqa: E402

GOOD_RULE = """\
  - alert: FineNAME
    source: nginx
    expr: ratio(status >= 500) > 5%
    window: 5m
"""

# name → (file text, 1-based line of the problem)
CASES = {
    "unknown_field": ("""\
rules:
%s  - alert: Typo
    source: nginx
    expr: ratio(stauts >= 500) > 5%%
    window: 5m
""" % GOOD_RULE.replace("NAME", "1"), 8),
    "unknown_function": ("""\
rules:
  - alert: NoSuchFunction
    source: nginx
    window: 5m
    expr: percentile(request_time, 95) > 2s
""", 5),
    "expr_syntax": ("""\
rules:
%s  - alert: Broken
    source: nginx
    window: 5m
    expr: 'ratio(status >= ) > 5%%'
""" % GOOD_RULE.replace("NAME", "2"), 9),
    "yaml_syntax": ("""\
rules:
  - alert: BadYaml
    source: nginx
    expr: count() > 1
     window: 5m
""", 5),
    "unknown_key": ("""\
rules:
  - alert: KeyTypo
    source: nginx
    expr: count() > 1
    windw: 5m
""", 5),
    "unknown_source": ("""\
rules:
  - alert: WrongSource
    source: ngnix
    expr: count() > 1
    window: 5m
""", 3),
}


def config(d, rule_files):
    path = os.path.join(d, "klaxon-%d.yml" % len(os.listdir(d)))
    write(path, """\
state_dir: %s
listen: off
rule_files: [%s]
sources:
  - {name: nginx, path: %s, parser: nginx_timed}
""" % (os.path.join(d, "state"), ", ".join(rule_files), os.path.join(d, "access.log")))
    return path


def diagnostics(err, name):
    """The FILE:LINE:COL: message lines naming NAME.yml."""
    pat = re.compile(r"^(?P<file>\S*?%s\.yml):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$" % re.escape(name))
    return [m for m in (pat.match(l) for l in err.splitlines()) if m]


def body():
    d = tmpdir()
    rules_dir = os.path.join(d, "rules")
    os.makedirs(rules_dir)
    for name, (text, _) in CASES.items():
        write(os.path.join(rules_dir, name + ".yml"), text)

    problems = []
    for name, (text, line) in CASES.items():
        cfg = config(d, [os.path.join(rules_dir, name + ".yml")])
        rc, out, err = run([KLAXON, "check", "-c", cfg], timeout=30)
        err = err.decode("utf-8", "replace")
        log("%s: exit %d: %s" % (name, rc, err.strip().replace("\n", " | ")))
        if rc != 1:
            problems.append("%s: exit %d, expected 1" % (name, rc))
        diags = diagnostics(err, name)
        if not diags:
            problems.append("%s: no '%s.yml:LINE:COL: message' line on stderr: %r" % (name, name, err))
            continue
        if not any(int(m["line"]) == line for m in diags):
            problems.append("%s: expected the problem at line %d, got %s"
                            % (name, line, [m.group(0) for m in diags]))
        if not all(int(m["col"]) >= 1 for m in diags):
            problems.append("%s: a column < 1: %s" % (name, [m.group(0) for m in diags]))

    # All at once: each file's problem is reported.
    cfg = config(d, [os.path.join(rules_dir, "*.yml")])
    rc, out, err = run([KLAXON, "check", "-c", cfg], timeout=30)
    err = err.decode("utf-8", "replace")
    log("all at once: exit %d:\n%s" % (rc, err))
    if rc != 1:
        problems.append("all at once: exit %d, expected 1" % rc)
    for name in CASES:
        if not diagnostics(err, name):
            problems.append("all at once: nothing reported for %s.yml" % name)
    if "Fine" in err:
        problems.append("all at once: a good rule (Fine1, Fine2) was reported: %r" % err)

    # The shipped configs are valid.
    for cfg, env in ((os.path.join(SRC, "examples", "klaxon.yml"), {}),
                     (os.path.join(SRC, "examples", "demo", "klaxon.yml"), {"KLAXON_DEMO_DIR": d})):
        if not os.path.exists(cfg):
            problems.append("missing %s" % os.path.relpath(cfg, SRC))
            continue
        rc, out, err = run([KLAXON, "check", "-c", cfg], timeout=30, env=env)
        log("check %s: exit %d %s" % (os.path.relpath(cfg, SRC), rc, err.decode(errors="replace").strip()))
        if rc != 0:
            problems.append("klaxon check -c %s exited %d:\n%s"
                            % (os.path.relpath(cfg, SRC), rc, err.decode(errors="replace")))

    if problems:
        fail("\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main(body)
