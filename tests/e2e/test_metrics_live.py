#!/usr/bin/env python3
"""klaxon watched: `listen:` serves /metrics, /healthz and /alerts.

One `klaxon run` on a free 127.0.0.1 port, two sources (nginx: access.log;
app: app/app.log, both nginx_timed), two rules over nginx — Boom =
count(status >= 500) >= 1 (fires at once) and Slow, the same with `for: 1h`
(stays pending) — a stdout sink and a webhook sink to tests/e2e/receiver.py
(group_wait 0s). Traffic: 40 lines of 200, 3 lines that do not parse, one
503, and 5 lines on app. Then:

  /metrics   parsed by prometheus_client's text-format parser (Debian's
             python3-prometheus-client); every family klaxon documents is
             there with its type; the per-source counters equal what was
             written (lines, bytes, events, parse errors; nothing behind); Boom
             has 1 firing and 0 pending alerts, Slow 0 firing and 1 pending;
             the webhook sink sent and spooled >= 1 and failed 0; the
             line-to-page histogram has count >= 1, cumulative buckets, and
             its +Inf bucket equals its count.
  /alerts    a JSON array with Boom firing (its labels, since, value 1) and
             Slow pending.
  /healthz   200 "ok"; after app's directory is removed, 503 naming the
             source and the directory.
  others     404 for an unknown path, 405 for a POST.
  bind       a second klaxon with the same `listen:` exits 1, naming the
             address; with the default (no `listen:`) taken, klaxon runs
             on and says so.

No timed assertion: deadlines only guard against a hang.
"""
import json
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, free_port, log, main, run, skip, tail,  # noqa: E402
                    tmpdir, wait_for, write, yaml_str)
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None

RULES = """\
rules:
  - alert: Boom
    source: nginx
    expr: count(status >= 500) >= 1
    window: 10m
    labels: {severity: page}
  - alert: Slow
    source: nginx
    expr: count(status >= 500) >= 1
    window: 10m
    for: 1h
"""

FAMILIES = {   # family name as prometheus_client reports it → type
    "klaxon_build_info": "gauge",
    "klaxon_source_lines": "counter",
    "klaxon_source_bytes": "counter",
    "klaxon_source_events": "counter",
    "klaxon_source_parse_errors": "counter",
    "klaxon_source_bytes_behind": "gauge",
    "klaxon_source_seconds_behind": "gauge",
    "klaxon_rule_evaluations": "counter",
    "klaxon_rule_evaluation_seconds": "counter",
    "klaxon_rule_alerts": "gauge",
    "klaxon_rules_groups_dropped": "counter",
    "klaxon_rules_late_events": "counter",
    "klaxon_sink_sent": "counter",
    "klaxon_sink_failed": "counter",
    "klaxon_sink_retried": "counter",
    "klaxon_sink_spooled": "counter",
    "klaxon_line_to_page_seconds": "histogram",
}


def get(port, path, method="GET"):
    """(status, content type, body text) of one request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8")


def scrape(port):
    """/metrics parsed: ({family: type}, {(sample name, frozen labels): value})."""
    st, ctype, text = get(port, "/metrics")
    check(st == 200, "/metrics answered %d:\n%s" % (st, text))
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "/metrics content type %r" % ctype)
    types, samples = {}, {}
    try:
        for fam in text_string_to_metric_families(text):
            check(fam.name not in types, "family %s twice" % fam.name)
            types[fam.name] = fam.type
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                check(key not in samples, "sample %s%s twice" % (s.name, s.labels))
                samples[key] = s.value
    except ValueError as e:
        check(False, "prometheus_client cannot parse /metrics (%s):\n%s" % (e, text))
    return types, samples, text


def value(samples, name, **labels):
    want = {k: v for k, v in labels.items()}
    hits = [v for (n, ls), v in samples.items()
            if n == name and all(dict(ls).get(k) == x for k, x in want.items())]
    check(len(hits) == 1, "%d samples %s%s (want 1)" % (len(hits), name, labels))
    return hits[0]


def body():
    if text_string_to_metric_families is None:
        skip("python3-prometheus-client is not installed (scripts/bootstrap installs it; "
             "scripts/test runs the tests with Debian's python3)")
    d = tmpdir()
    state = os.path.join(d, "state")
    os.makedirs(state)
    access = os.path.join(d, "access.log")
    appdir = os.path.join(d, "app")
    os.makedirs(appdir)
    applog = os.path.join(appdir, "app.log")
    write(access, "")
    write(applog, "")
    write(os.path.join(d, "rules.yml"), RULES)
    rv = Receiver(d).start()
    port = free_port()
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: 127.0.0.1:%d
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
  - {name: app, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
  - {name: hook, type: webhook, url: %s}
notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
""" % (yaml_str(state), port, yaml_str(access), yaml_str(applog), yaml_str(rv.url("/hook"))))
    kl = Klaxon(d, cfg).start()
    kl.wait_log("listen 127.0.0.1:%d: serving" % port)

    lines = [nginx_bytes("/ok/%d" % i) for i in range(40)]
    junk = [b"this is not an nginx line\n", b"neither is this\n", b"\n"]
    boom = nginx_bytes("/boom", status=503)
    data = b"".join(lines[:20] + junk + lines[20:] + [boom])
    append(access, data)
    app = b"".join(nginx_bytes("/app/%d" % i) for i in range(5))
    append(applog, app)

    kl.wait(lambda: any(a["status"] == "firing" for r in rv.accepted("/hook")
                        for a in r.json().get("alerts", [])), "Boom's page at the receiver")

    # ---- /metrics
    def settled():
        _, s, _ = scrape(port)
        return (value(s, "klaxon_source_lines_total", source="nginx") == 44
                and value(s, "klaxon_source_lines_total", source="app") == 5
                and value(s, "klaxon_line_to_page_seconds_count") >= 1)
    kl.wait(settled, "the counters to reach what was written")
    types, s, text = scrape(port)
    log("/metrics: %d families, %d samples" % (len(types), len(s)))
    for fam, typ in FAMILIES.items():
        check(types.get(fam) == typ, "family %s: type %r, want %r" % (fam, types.get(fam), typ))
    check(value(s, "klaxon_source_bytes_total", source="nginx") == len(data), "nginx bytes")
    check(value(s, "klaxon_source_bytes_total", source="app") == len(app), "app bytes")
    check(value(s, "klaxon_source_events_total", source="nginx") == 41, "nginx events")
    check(value(s, "klaxon_source_parse_errors_total", source="nginx") == 3, "nginx parse errors")
    check(value(s, "klaxon_source_events_total", source="app") == 5, "app events")
    check(value(s, "klaxon_source_parse_errors_total", source="app") == 0, "app parse errors")
    for src in ("nginx", "app"):
        check(value(s, "klaxon_source_bytes_behind", source=src) == 0, "%s bytes behind" % src)
        check(value(s, "klaxon_source_seconds_behind", source=src) == 0, "%s seconds behind" % src)
    check(value(s, "klaxon_rule_alerts", rule="Boom", state="firing") == 1, "Boom firing")
    check(value(s, "klaxon_rule_alerts", rule="Boom", state="pending") == 0, "Boom pending")
    check(value(s, "klaxon_rule_alerts", rule="Slow", state="firing") == 0, "Slow firing")
    check(value(s, "klaxon_rule_alerts", rule="Slow", state="pending") == 1, "Slow pending")
    check(value(s, "klaxon_rule_evaluations_total", rule="Boom") >= 1, "Boom evaluations")
    check(value(s, "klaxon_rule_evaluation_seconds_total", rule="Boom") > 0, "Boom eval time")
    check(value(s, "klaxon_sink_sent_total", sink="hook", type="webhook") >= 1, "hook sent")
    check(value(s, "klaxon_sink_spooled_total", sink="hook") >= 1, "hook spooled")
    check(value(s, "klaxon_sink_failed_total", sink="hook") == 0, "hook failed")
    check(value(s, "klaxon_sink_sent_total", sink="out", type="stdout") >= 1, "stdout lines")
    count = value(s, "klaxon_line_to_page_seconds_count")
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in s.items()
                      if n == "klaxon_line_to_page_seconds_bucket"))
    check(len(buckets) == 14 and buckets[0][0] == 0.001 and buckets[-2][0] == 10
          and buckets[-1][0] == float("inf"), "histogram bounds: %s" % buckets)
    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets not cumulative")
    check(buckets[-1][1] == count, "+Inf bucket %s != count %s" % (buckets[-1][1], count))
    check(value(s, "klaxon_line_to_page_seconds_sum") >= 0, "histogram sum")
    log("line to page: count %d, sum %.4f s; buckets %s" % (
        count, value(s, "klaxon_line_to_page_seconds_sum"),
        ", ".join("le %g: %d" % b for b in buckets)))

    # ---- /alerts
    st, ctype, text = get(port, "/alerts")
    check(st == 200 and ctype.startswith("application/json"), "/alerts: %d %s" % (st, ctype))
    alerts = json.loads(text)
    check(isinstance(alerts, list), "/alerts is not a JSON array: %s" % text)
    by = {a["alert"]: a for a in alerts}
    check(set(by) == {"Boom", "Slow"}, "/alerts lists %s" % sorted(by))
    b = by["Boom"]
    check(b["state"] == "firing" and b["labels"] == {"source": "nginx", "severity": "page"}
          and b["value"] == 1 and b["since"].endswith("Z"), "Boom in /alerts: %s" % b)
    check(by["Slow"]["state"] == "pending", "Slow in /alerts: %s" % by["Slow"])

    # ---- /healthz, other paths and methods
    st, _, text = get(port, "/healthz")
    check(st == 200 and text == "ok\n", "/healthz: %d %r" % (st, text))
    st, _, _ = get(port, "/nothing")
    check(st == 404, "/nothing answered %d" % st)
    st, _, _ = get(port, "/metrics", method="POST")
    check(st == 405, "POST /metrics answered %d" % st)
    shutil.rmtree(appdir)
    st, _, text = get(port, "/healthz")
    want = "source 'app': %s does not exist" % appdir
    check(st == 503 and want in text, "/healthz without app's directory: %d %r (want 503 "
          "with %r)" % (st, text, want))
    check("source 'nginx'" not in text, "/healthz blames nginx: %r" % text)
    log("/healthz: 503 %r" % text.strip())

    # ---- bind failures
    other = os.path.join(d, "other")
    os.makedirs(os.path.join(other, "state"))
    base = """\
state_dir: %s
rule_files: [%s]
sources:
  - {name: nginx, path: %s, parser: nginx_timed}
""" % (yaml_str(os.path.join(other, "state")), yaml_str(os.path.join(d, "rules.yml")),
       yaml_str(access))
    cfg2 = os.path.join(other, "explicit.yml")
    write(cfg2, base + "listen: 127.0.0.1:%d\n" % port)
    rc, _, err = run([KLAXON, "run", "-c", cfg2], timeout=60)
    err = err.decode("utf-8", "replace")
    check(rc == 1 and "listen 127.0.0.1:%d: cannot bind: Address already in use" % port in err,
          "a second klaxon on the same address: exit %d, stderr:\n%s" % (rc, tail(err)))
    check("AddressSanitizer" not in err and "runtime error" not in err, "sanitizer:\n" + err)
    check(kl.alive(), "the first klaxon died")

    # the default address taken: klaxon runs on without it, and says so
    cfg3 = os.path.join(other, "default.yml")
    write(cfg3, base)
    hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        hold.bind(("127.0.0.1", 9731))
        hold.listen(1)
        ours = True
    except OSError:
        ours = False   # someone else has it: taken all the same, unless they let go
    try:
        k3 = Klaxon(other, cfg3).start()
        k3.wait(lambda: "listen 127.0.0.1:9731" in k3.stderr(), "klaxon to tell about 9731")
        if ours:
            check("listen 127.0.0.1:9731 (the default): not served" in k3.stderr(),
                  "the default address taken:\n" + tail(k3.stderr()))
        check(k3.alive(), "klaxon stopped over the default address")
        check(k3.stop() == 0, "klaxon (default address taken) did not stop cleanly")
    finally:
        hold.close()
    kl.stop()
    check("ERROR: AddressSanitizer" not in kl.stderr(), "sanitizer:\n" + tail(kl.stderr()))


if __name__ == "__main__":
    main(body)
