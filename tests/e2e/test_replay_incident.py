#!/usr/bin/env python3
"""Replay a generated log with a known incident through the example rule pack.

Two hours of Debt Profile traffic at 20 lines/s (bench/gen_nginx, seeded),
with 20% of requests failing with 5xx for 10 minutes starting one hour in.
`klaxon replay` with examples/rules/nginx.yml (HighErrorRate: ratio(status >=
500) > 5%, window 5m, for 1m, keep_firing_for 2m) must:
  - fire HighErrorRate exactly once, between the incident's start and start +
    window + for + 1 min (one bucket and the evaluation step fit in the minute);
  - resolve it after the incident ends, within window + keep_firing_for + 2 min;
  - count every line as an event (the generator's rejected-request lines
    included: nginx writes them, so they are events, not parse errors);
  - give the same transitions for the same file gzipped, and twice in a row.
A clean log (same traffic, no incident) must give no firing line at all.
"""
import gzip
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, SRC, alerts, check, fail, gen_nginx, log, main,  # noqa: E402
                    replay_summary, rfc3339, run, tmpdir, write)

START = 1699999200          # gen_nginx's default start, 2023-11-14T22:00:00Z
RATE = 20
LINES = 2 * 3600 * RATE     # two hours
INC_AT, INC_FOR = 3600, 600
WINDOW, FOR, KEEP = 300, 60, 120


def make_config(d, log_path):
    rules = os.path.join(SRC, "examples", "rules", "nginx.yml")
    check(os.path.exists(rules), "no example rule pack at examples/rules/nginx.yml")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [%s]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
""" % (os.path.join(d, "state"), rules, log_path))
    return cfg


def replay(cfg, path, what):
    rc, out, err = run([KLAXON, "replay", "-c", cfg, "--source", "nginx=" + path], timeout=120)
    check(rc == 0, "%s: klaxon replay exited %d; stderr:\n%s" % (what, rc, err.decode("utf-8", "replace")))
    return alerts(out, what), replay_summary(err), out


def generate(path, incident):
    args = [gen_nginx(), "--lines", str(LINES), "--rate", str(RATE), "--seed", "7"]
    if incident:
        args += ["--incident", "%d:%d:5xx:0.2" % (INC_AT, INC_FOR)]
    with open(path, "wb") as f:
        rc, out, err = run(args, timeout=60)
        check(rc == 0, "gen_nginx failed: %r" % err)
        f.write(out)
    return out.count(b"\n")


def body():
    d = tmpdir()
    os.makedirs(os.path.join(d, "state"))

    # ---- the incident
    path = os.path.join(d, "incident.log")
    n = generate(path, incident=True)
    cfg = make_config(d, path)
    got, summary, raw = replay(cfg, path, "incident replay")
    log("incident replay:", summary)
    for a in got:
        log("  ", a)
    check(summary["lines"] == n, "summary counts %d lines, the file has %d" % (summary["lines"], n))
    check(summary["parse_errors"] == 0 and summary["too_long"] == 0,
          "every generated line is one nginx writes, yet: %s" % summary)
    check(summary["events"] == n, "%d lines but %d events" % (n, summary["events"]))

    her = [a for a in got if a["alert"] == "HighErrorRate"]
    check(her, "HighErrorRate never fired over a 10-minute 20%% 5xx incident; all transitions: %s" % got)
    label_sets = {tuple(sorted(a["labels"].items())) for a in her}
    if len(label_sets) > 1:  # a page and a warning variant: follow the page
        her = [a for a in her if a["labels"].get("severity") == "page"] or her
    firing = [a for a in her if a["status"] == "firing"]
    resolved = [a for a in her if a["status"] == "resolved"]
    check(len(firing) == 1, "HighErrorRate should fire exactly once, got %d: %s" % (len(firing), her))
    check(len(resolved) == 1, "HighErrorRate should resolve exactly once, got %d: %s" % (len(resolved), her))
    t_fire = rfc3339(firing[0]["at"]) - START
    t_res = rfc3339(resolved[0]["at"]) - START
    inc_end = INC_AT + INC_FOR
    log("HighErrorRate fired at +%ds (incident from +%ds), resolved at +%ds (incident ended +%ds)"
        % (t_fire, INC_AT, t_res, inc_end))
    check(INC_AT <= t_fire <= INC_AT + WINDOW + FOR + 60,
          "fired at +%ds, outside [+%d, +%d]" % (t_fire, INC_AT, INC_AT + WINDOW + FOR + 60))
    check(inc_end < t_res <= inc_end + WINDOW + KEEP + 120,
          "resolved at +%ds, outside (+%d, +%d]" % (t_res, inc_end, inc_end + WINDOW + KEEP + 120))
    check(firing[0]["value"] > 0.05, "firing value %r is not above 5%%" % firing[0]["value"])
    check(her.index(firing[0]) < her.index(resolved[0]), "resolved before it fired: %s" % her)

    # ---- the same again: deterministic
    got2, _, raw2 = replay(cfg, path, "second replay")
    check(raw2 == raw, "two replays of the same file differ:\n%s\n---\n%s"
          % (raw.decode(errors="replace"), raw2.decode(errors="replace")))

    # ---- gzipped: the same transitions
    gz = path + ".gz"
    with open(path, "rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    got3, summary3, raw3 = replay(cfg, gz, "gzip replay")
    check(summary3["lines"] == n and summary3["events"] == n, "gzip replay summary: %s" % summary3)
    check(raw3 == raw, "the .gz replay differs from the plain one:\n%s\n---\n%s"
          % (raw.decode(errors="replace"), raw3.decode(errors="replace")))

    # ---- clean traffic: nothing fires
    clean = os.path.join(d, "clean.log")
    n = generate(clean, incident=False)
    got, summary, _ = replay(make_config(d, clean), clean, "clean replay")
    log("clean replay:", summary)
    check(summary["events"] == n, "clean: %d lines but %d events" % (n, summary["events"]))
    fired = [a for a in got if a["status"] == "firing"]
    if fired:
        fail("clean traffic fired %d alert(s): %s" % (len(fired), fired))


if __name__ == "__main__":
    main(body)
