#!/usr/bin/env python3
"""Five days of diurnal traffic with relative incidents through the anomaly
rule pack (examples/rules/anomaly.yml), in `klaxon replay`.

bench/gen_diurnal writes the days one file each (seeded; a day's bytes do not
depend on the others): nginx at 1.5 req/s at 04:00 to 12 req/s at 16:00 (a
fifth of the issue's 5 → 60 req/s, to keep the test near 2.5 M lines), 0.5%
5xx, 2% 4xx, request_time lognormal around 150 ms; the Django app log beside
it (a usual traceback every 30 minutes, four classes). Days from 2023-11-14:

  day 1  warm-up. Incidents the rules must NOT judge yet: 5xx +4% at 06:00
         (zscore(…, 1d) has no verdict before 12:00), traffic −50% at 18:00
         (baseline(…, 1d) none before day 2).
  day 2  clean nginx; the app throws TypeError at 09:00 (new(…, 7d) still
         learning: 3.5 days from its first value)
  day 3  5xx +4% at 03:00 (the night low) for 30 m; latency ×2.5 at 15:00
  day 4  4xx +5% at 03:00 for 30 m; traffic −50% at 12:00 for 30 m; the app
         throws KeyError from 14:00 for 20 m (a class it never threw)
  day 5  clean

Asserted:
  - each incident fires its rule once, within FIRE_MAX = 8 min of its start
    (window 5 m for the share to build up, for 2 m, and a minute for the
    bucket and the evaluation step), and resolves after it ends, within
    window + keep_firing_for + 2 m; NewExceptionType fires within 2 minutes of
    the first KeyError and resolves once the window has passed it (later
    KeyErrors are not new);
  - no other transition at all: none on days 1, 2 and 5 (night lows, the
    first hours after the warm-up, the warm-up incidents, the learning one);
  - a restart: `replay --state` over days 1–3, then days 4–5 continuing from
    the saved state, prints exactly the lines of one pass over days 1–5.
"""
import calendar
import gzip
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, SRC, _procs, alerts, check, fail, gen_bench, log, main,  # noqa: E402
                    replay_summary, rfc3339, tmpdir, write)

START = calendar.timegm((2023, 11, 14, 0, 0, 0))   # gen_diurnal's default, a midnight
DAYS = 5
RATES = ["--night", "1.5", "--peak", "12"]
MIN = 60
NGINX_INCIDENTS = [
    "day1@06:00+30m:5xx=+4%", "day1@18:00+30m:drop=50%",           # warm-up: no verdict
    "day3@03:00+30m:5xx=+4%", "day3@15:00+30m:latency=x2.5",
    "day4@03:00+30m:4xx=+5%", "day4@12:00+30m:drop=50%",
]
APP_INCIDENTS = ["day2@09:00+10m:exception=TypeError", "day4@14:00+20m:exception=KeyError"]
# (alert, day, HH:MM, minutes) of each incident that must page
EXPECTED = [
    ("ErrorShareAnomaly", 3, "03:00", 30),
    ("LatencyAnomaly", 3, "15:00", 30),
    ("ClientErrorShareAnomaly", 4, "03:00", 30),
    ("TrafficDrop", 4, "12:00", 30),
    ("NewExceptionType", 4, "14:00", 20),
]
WINDOW, FOR, KEEP = 5 * MIN, 2 * MIN, 5 * MIN
FIRE_MAX = WINDOW + FOR + MIN
RESOLVE_MAX = WINDOW + KEEP + 2 * MIN


def at(day, hhmm):
    h, m = hhmm.split(":")
    return START + (day - 1) * 86400 + int(h) * 3600 + int(m) * 60


def when(t):
    t -= START
    return "day%d %02d:%02d:%02d" % (t // 86400 + 1, t % 86400 // 3600, t % 3600 // 60, t % 60)


def generate(d):
    """Every day of both sources, gzipped as they are written, in parallel."""
    gen = gen_bench("gen_diurnal")
    jobs = []
    for day in range(1, DAYS + 1):
        for src, extra, incs in (("nginx", [], NGINX_INCIDENTS), ("app", ["--app"], APP_INCIDENTS)):
            path = os.path.join(d, "%s-day%d.log.gz" % (src, day))
            argv = [gen, "--day", str(day), "--seed", "11"] + RATES + extra
            for i in incs:
                argv += ["--incident", i]
            jobs.append((argv, path))
    for k in range(0, len(jobs), 2):  # two at a time: two cores
        batch = []
        for argv, path in jobs[k:k + 2]:
            with open(path, "wb") as out:
                g = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
                z = subprocess.Popen(["gzip", "-1"], stdin=g.stdout, stdout=out, start_new_session=True)
            g.stdout.close()
            _procs.extend((g, z))
            batch.append((g, z, path))
        for g, z, path in batch:
            check(g.wait() == 0 and z.wait() == 0, "gen_diurnal | gzip failed for %s" % path)
            _procs.remove(g)
            _procs.remove(z)
    lines = 0
    for _, path in jobs:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                lines += chunk.count(b"\n")
    return lines


def make_config(d):
    rules = os.path.join(SRC, "examples", "rules", "anomaly.yml")
    check(os.path.exists(rules), "no example rule pack at examples/rules/anomaly.yml")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [%s]
sources:
  - {name: nginx, path: %s/none-nginx.log, parser: nginx_timed}
  - {name: app, path: %s/none-app.log, parser: django}
  - {name: postgres, path: %s/none-pg.log, parser: pg}
parsers:
  - {name: pg, type: postgres, log_line_prefix: '%%m [%%p] %%q%%u@%%d '}
sinks:
  - {name: out, type: stdout}
""" % (os.path.join(d, "state"), rules, d, d, d))
    return cfg


def replay_argv(cfg, d, days, state=None):
    argv = [KLAXON, "replay", "-c", cfg]
    for day in days:
        for src in ("nginx", "app"):
            argv += ["--source", "%s=%s" % (src, os.path.join(d, "%s-day%d.log.gz" % (src, day)))]
    if state:
        argv += ["--state", state]
    return argv


def start_replay(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _procs.append(p)
    return p


def finish(p, what, timeout=300):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("%s did not finish within %d s" % (what, timeout))
    _procs.remove(p)
    check(p.returncode == 0, "%s: klaxon replay exited %d; stderr:\n%s"
          % (what, p.returncode, err.decode("utf-8", "replace")))
    return out, replay_summary(err), err


def body():
    d = tmpdir()
    n = generate(d)
    log("generated %d lines over %d days (nginx and app)" % (n, DAYS))
    cfg = make_config(d)
    state = os.path.join(d, "replay-state")

    # One pass over days 1-5 and, beside it (two cores), days 1-3 saving
    # their state, then days 4-5 continuing from it.
    full = start_replay(replay_argv(cfg, d, range(1, DAYS + 1)))
    raw1, _, _ = finish(start_replay(replay_argv(cfg, d, range(1, 4), state)),
                        "replay of days 1-3 with --state")
    check(os.path.exists(os.path.join(state, "rules.state")), "replay --state wrote no rules.state")
    raw2, _, _ = finish(start_replay(replay_argv(cfg, d, range(4, DAYS + 1), state)),
                        "replay of days 4-5 continuing from the state")
    raw, summary, err = finish(full, "replay of days 1-5")
    log("full replay:", err.decode().strip().splitlines()[-1])
    check(summary["parse_errors"] == 0, "parse errors in generated logs: %s" % summary)

    got = alerts(raw, "full replay")
    for a in got:
        log("  %-24s %-8s %s value=%.4g" % (a["alert"], a["status"], when(rfc3339(a["at"])), a["value"]))

    # ---- each incident: fired once, in time; resolved after it ended
    used = set()
    for alert, day, hhmm, minutes in EXPECTED:
        t0 = at(day, hhmm)
        t1 = t0 + minutes * MIN
        mine = [(i, a) for i, a in enumerate(got) if a["alert"] == alert and t0 <= rfc3339(a["at"]) <= t1 + RESOLVE_MAX]
        fired = [(i, a) for i, a in mine if a["status"] == "firing"]
        resolved = [(i, a) for i, a in mine if a["status"] == "resolved"]
        check(len(fired) == 1 and len(resolved) == 1,
              "%s: expected one firing and one resolved around the incident of day %d %s, got %s"
              % (alert, day, hhmm, [a for _, a in mine]))
        tf, tr = rfc3339(fired[0][1]["at"]), rfc3339(resolved[0][1]["at"])
        log("%s: incident day%d %s-%s, fired after %.1f min, resolved %.1f min after %s"
            % (alert, day, hhmm, when(t1)[5:10], (tf - t0) / 60.0,
               ((tr - tf) if alert == "NewExceptionType" else (tr - t1)) / 60.0,
               "it fired (the window passed the first one)" if alert == "NewExceptionType" else "its end"))
        if alert == "NewExceptionType":
            check(fired[0][1]["labels"].get("exception") == "KeyError",
                  "NewExceptionType fired for %s" % fired[0][1]["labels"])
            check(tf - t0 <= 2 * MIN, "NewExceptionType fired %.0f s after the first KeyError could come" % (tf - t0))
            check(tf < tr <= tf + WINDOW + MIN,
                  "NewExceptionType should resolve once the window has passed the first KeyError: %s"
                  % [a for _, a in mine])
        else:
            check(t0 < tf <= t0 + FIRE_MAX, "%s fired at %s, not within %d min of the incident at %s"
                  % (alert, when(tf), FIRE_MAX // MIN, when(t0)))
            check(t1 < tr <= t1 + RESOLVE_MAX, "%s resolved at %s: not after the incident's end %s, or later than %d min"
                  % (alert, when(tr), when(t1), RESOLVE_MAX // MIN))
        used.update((fired[0][0], resolved[0][0]))

    # ---- nothing else: clean days, night lows, the warm-up and learning incidents
    stray = [a for i, a in enumerate(got) if i not in used]
    if stray:
        fail("%d transition(s) outside the incidents (false alerts, or a verdict during the warm-up): %s"
             % (len(stray), ["%s %s %s" % (a["alert"], a["status"], when(rfc3339(a["at"]))) for a in stray]))

    # ---- a restart in the middle: the same transitions, byte for byte
    if raw1 + raw2 != raw:
        fail("days 1-3 then 4-5 with --state differ from one pass:\n--- one pass\n%s--- in two\n%s"
             % (raw.decode(errors="replace"), (raw1 + raw2).decode(errors="replace")))
    log("restart: days 1-3 (%d transitions) + days 4-5 (%d) = one pass (%d)"
        % (raw1.count(b"\n"), raw2.count(b"\n"), raw.count(b"\n")))


if __name__ == "__main__":
    main(body)
