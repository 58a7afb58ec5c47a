#!/usr/bin/env python3
"""`klaxon run` follows a file through rotations without losing or repeating a line.

klaxon starts before the file exists (late creation), then the test, acting
as nginx and logrotate:
  A. appends 1000 lines to app.log (in batches)
  B. renames app.log to app.log.1 and goes on writing 200 lines through the
     old descriptor (nginx before its USR1 reopen), then creates a new app.log
     and writes 500 lines to it
  C. copytruncate: once klaxon has read everything so far (copytruncate loses
     what was not read before the truncate, by design), copies app.log to
     app.log.2, truncates app.log and writes 300 lines into it
  D. renames app.log to app.log.3, creates app.log, writes 100 lines, and
     deletes app.log.1
  E. once those are read, truncates app.log and at once writes 300 lines,
     more than it held: the size alone no longer shows the truncation, the
     content does (the file's identity is more than its name and size)
  F. the real logrotate (`create` mode, -f) rotates app.log while a writer
     thread appends a line every half millisecond; the writer reopens the
     path after the rotation, as nginx does on USR1
  G. the real logrotate in `copytruncate` mode, the writer paused (lines
     written between its copy and its truncate are lost by design), then
     more lines
Every line carries a unique id in its path (/rot/PHASE/N). The jsonl events
sink must hold every id exactly once. SIGTERM stops klaxon with status 0.
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, fail, json_lines, log, main, nginx_line, read_bytes,  # noqa: E402
                    start, stop, tail, tmpdir, wait_for, write)


def lines(phase, lo, hi):
    return "".join(nginx_line("/rot/%s/%d" % (phase, i), rt=0.01) for i in range(lo, hi))


def logrotate_run(d, logrotate, app, mode):
    conf = os.path.join(d, "logrotate-%s.conf" % mode)
    write(conf, """\
%s {
    rotate 20
    %s
    nocompress
    missingok
    notifempty
}
""" % (app, "create 0644" if mode == "create" else "copytruncate"))
    os.chmod(conf, 0o644)
    r = subprocess.run([logrotate, "-f", "-s", os.path.join(d, "logrotate.state"), conf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "logrotate (%s) failed: %s%s" % (mode, r.stdout, r.stderr))


def real_logrotate(d, app, logrotate, expected, wait_seen):
    # F: create mode, under load
    n_lines = 3000
    rotated = threading.Event()
    reopened = threading.Event()
    progress = [0]

    def writer():
        f = open(app, "a", encoding="utf-8")
        for i in range(n_lines):
            if rotated.is_set() and not reopened.is_set() and i % 50 == 0:
                f.close()                     # USR1: reopen the log by its path
                f = open(app, "a", encoding="utf-8")
                reopened.set()
            f.write(nginx_line("/rot/G/%d" % i, rt=0.01))
            f.flush()
            progress[0] = i + 1
            time.sleep(0.0005)
        f.close()
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while progress[0] < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    logrotate_run(d, logrotate, app, "create")
    rotated.set()
    log("F: logrotate (create) ran with the writer at line %d" % progress[0])
    t.join(60)
    check(not t.is_alive(), "the writer thread did not finish")
    expected.update("/rot/G/%d" % i for i in range(n_lines))
    wait_seen(sum(expected.values()), "klaxon to read through the logrotate rotation")

    # G: copytruncate, writer paused, then more lines
    logrotate_run(d, logrotate, app, "copytruncate")
    with open(app, "a", encoding="utf-8") as g:
        g.write(lines("H", 0, 200))
    expected.update("/rot/H/%d" % i for i in range(200))
    log("G: logrotate (copytruncate) ran, 200 lines written after it")
    wait_seen(sum(expected.values()), "klaxon to read after logrotate's copytruncate")


def body():
    d = tmpdir()
    app = os.path.join(d, "app.log")
    events = os.path.join(d, "events.jsonl")
    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: Anything
    source: app
    expr: count() > 1000000
    window: 1m
""")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
sources:
  - {name: app, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: ev, type: jsonl, path: %s, what: events}
""" % (os.path.join(d, "state"), app, events))
    err = os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "klaxon.out"), stderr=err)
    expected = collections.Counter()

    def seen():
        return len(json_lines(events, "events sink", complete_only=True))

    def wait_seen(n, what):
        wait_for(lambda: seen() >= n, 30, "%s (%d events)" % (what, n), proc=kl, proc_log=err)

    time.sleep(0.5)   # let klaxon start watching before the file exists

    # A: appends, in batches
    f = open(app, "a", encoding="utf-8")
    for b in range(10):
        f.write(lines("A", b * 100, (b + 1) * 100))
        f.flush()
        time.sleep(0.02)
    expected.update("/rot/A/%d" % i for i in range(1000))
    log("A: 1000 lines appended")

    # B: rename, write to the old file, then create the new one
    os.rename(app, app + ".1")
    f.write(lines("B", 0, 200))
    f.flush()
    f.close()
    expected.update("/rot/B/%d" % i for i in range(200))
    with open(app, "a", encoding="utf-8") as g:
        for b in range(5):
            g.write(lines("C", b * 100, (b + 1) * 100))
            g.flush()
            time.sleep(0.02)
    expected.update("/rot/C/%d" % i for i in range(500))
    log("B: renamed, 200 lines to the old file, 500 to the new")
    wait_seen(sum(expected.values()), "klaxon to read the rotated and the new file")

    # C: copytruncate
    shutil.copyfile(app, app + ".2")
    with open(app, "r+b") as g:
        g.truncate(0)
    with open(app, "a", encoding="utf-8") as g:
        g.write(lines("D", 0, 300))
    expected.update("/rot/D/%d" % i for i in range(300))
    log("C: copied, truncated, 300 lines written")
    wait_seen(sum(expected.values()), "klaxon to read after the truncation")

    # D: rename + create again, and delete an old rotated file
    os.rename(app, app + ".3")
    with open(app, "a", encoding="utf-8") as g:
        g.write(lines("E", 0, 100))
    os.unlink(app + ".1")
    expected.update("/rot/E/%d" % i for i in range(100))
    log("D: renamed, created, 100 lines written, app.log.1 deleted")
    wait_seen(sum(expected.values()), "klaxon to read the last file")

    # E: truncate, and grow past the old size before klaxon looks
    with open(app, "r+b") as g:
        g.truncate(0)
        g.write(lines("F", 0, 300).encode())
    expected.update("/rot/F/%d" % i for i in range(300))
    log("E: truncated and refilled with 300 lines at once")
    wait_seen(sum(expected.values()), "klaxon to read the refilled file")

    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if os.access("/usr/sbin/logrotate", os.X_OK) else None)
    if logrotate:
        real_logrotate(d, app, logrotate, expected, wait_seen)
    else:
        log("logrotate is not installed: phases F and G skipped")

    time.sleep(1.5)   # a line read twice would show up now
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err))))

    got = collections.Counter()
    for e in json_lines(events, "events sink"):
        p = e.get("fields", {}).get("path")
        check(isinstance(p, str) and re.match(r"^/rot/[A-H]/\d+$", p), "unexpected event: %s" % e)
        got[p] += 1
    missing = sorted(set(expected) - set(got))
    dup = sorted(p for p, n in got.items() if n > 1)
    if missing or dup:
        def show(xs):
            return "%d %s" % (len(xs), xs[:20])
        fail("after rotations: missing %s; read more than once %s; klaxon stderr:\n%s"
             % (show(missing), show(dup), tail(read_bytes(err))))
    log("all %d lines read exactly once" % sum(expected.values()))


if __name__ == "__main__":
    main(body)
