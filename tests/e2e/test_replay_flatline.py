#!/usr/bin/env python3
"""Flatline in replay: `count() == 0` fires when a source goes silent.

An hour of traffic at 20 lines/s with a 10-minute silence at +20 min. In
replay the clock is event time, and evaluation steps through every tick of a
gap (it does not jump to the next event), so NoTraffic (window 2m, for 30s)
must fire once, between silence start + window + for and one more minute, and
resolve once, after traffic is back, within a minute of it.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, alerts, check, gen_nginx, log, main, replay_summary,  # noqa: E402
                    rfc3339, run, tmpdir, write)

START = 1699999200
SIL_AT, SIL_FOR = 1200, 600
WINDOW, FOR = 120, 30


def body():
    d = tmpdir()
    path = os.path.join(d, "access.log")
    rc, out, err = run([gen_nginx(), "--lines", str(3600 * 20), "--rate", "20", "--seed", "3",
                        "--incident", "%d:%d:silence" % (SIL_AT, SIL_FOR)])
    check(rc == 0, "gen_nginx failed: %r" % err)
    with open(path, "wb") as f:
        f.write(out)
    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: NoTraffic
    source: nginx
    expr: count() == 0
    window: 2m
    for: 30s
    labels: {severity: page}
""")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
""" % (os.path.join(d, "state"), path))
    rc, out, err = run([KLAXON, "check", "-c", cfg])
    check(rc == 0, "klaxon check rejects the flatline config:\n" + err.decode(errors="replace"))
    rc, out, err = run([KLAXON, "replay", "-c", cfg, "--source", "nginx=" + path], timeout=60)
    check(rc == 0, "klaxon replay exited %d:\n%s" % (rc, err.decode(errors="replace")))
    summary = replay_summary(err)
    got = alerts(out)
    log(summary)
    for a in got:
        log("  ", a)
    nt = [a for a in got if a["alert"] == "NoTraffic"]
    firing = [a for a in nt if a["status"] == "firing"]
    resolved = [a for a in nt if a["status"] == "resolved"]
    check(len(firing) == 1 and len(resolved) == 1,
          "NoTraffic should fire once and resolve once over a 10-minute silence: %s" % nt)
    t_fire = rfc3339(firing[0]["at"]) - START
    t_res = rfc3339(resolved[0]["at"]) - START
    lo = SIL_AT + WINDOW + FOR
    check(lo - 5 <= t_fire <= lo + 60,
          "fired at +%ds; the window empties at +%d and `for` holds %d s more, so expected "
          "[+%d, +%d]" % (t_fire, SIL_AT + WINDOW, FOR, lo - 5, lo + 60))
    back = SIL_AT + SIL_FOR
    check(back <= t_res <= back + 60,
          "resolved at +%ds; traffic is back at +%d, expected [+%d, +%d]" % (t_res, back, back, back + 60))


if __name__ == "__main__":
    main(body)
