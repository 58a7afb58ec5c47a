#!/usr/bin/env python3
"""`klaxon run` resumes every followed file where it stopped (state_dir/checkpoint).

A writer thread appends numbered nginx lines (/ck/N) to app.log at a steady
rate, some of them in two writes with a pause between (so a stop often finds
a partial line pending); klaxon's jsonl events sink records what it read.
  A. klaxon is stopped with SIGTERM and restarted 5 times while the writer
     runs: every number exactly once.
  B. klaxon is killed with SIGKILL and restarted 5 times while the writer
     runs: no number missing; a number read twice must have been written
     shortly before a kill (within the checkpoint interval plus slack); the
     duplicates are counted and printed.
  C. while klaxon is stopped (SIGTERM), lines are appended, app.log is renamed
     to app.log.1 and a new app.log is written: on restart the rest of
     app.log.1 is read, then the new app.log, every number exactly once.
  D. the same after a SIGKILL, with a dateext name (app.log-20260101).
  E. a corrupt checkpoint is logged with its name, and klaxon starts as on a
     first start.
"""
import collections
import json
import os
import random
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, log, main, nginx_line, read_bytes,  # noqa: E402
                    start, stop, tail, tmpdir, wait_for, write)

CHECKPOINT_INTERVAL = 1.0
DUP_WINDOW = CHECKPOINT_INTERVAL + 1.5   # interval + the time to read a line and slack


class Writer:
    """Appends /ck/N lines to a path; remembers when each number was written."""

    def __init__(self, path):
        self.path = path
        self.n = 0
        self.times = []          # times[i]: when line i was complete
        self.lock = threading.Lock()
        self.run = threading.Event()
        self.quit = False
        self.f = open(path, "a", encoding="utf-8")
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def line(self):
        text = nginx_line("/ck/%d" % self.n, rt=0.01)
        if self.n % 37 == 0:
            # a partial line for a while
            cut = len(text) // 2
            self.f.write(text[:cut])
            self.f.flush()
            time.sleep(0.003)
            text = text[cut:]
        self.f.write(text)
        self.f.flush()
        self.times.append(time.monotonic())
        self.n += 1

    def loop(self):
        end = time.monotonic() + 300     # bounded, whatever happens
        while not self.quit and time.monotonic() < end:
            if not self.run.wait(0.05):
                continue
            with self.lock:
                for _ in range(5):
                    self.line()
            time.sleep(0.002)

    def pause(self):
        self.run.clear()
        with self.lock:    # the batch in progress is complete
            pass

    def resume(self):
        self.run.set()

    def write_now(self, k):
        with self.lock:
            for _ in range(k):
                self.line()

    def reopen(self):
        with self.lock:
            self.f.close()
            self.f = open(self.path, "a", encoding="utf-8")

    def close(self):
        self.quit = True
        self.run.set()
        self.t.join(10)
        self.f.close()


def body():
    d = tmpdir()
    app = os.path.join(d, "app.log")
    events = os.path.join(d, "events.jsonl")
    state = os.path.join(d, "state")
    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: Anything
    source: app
    expr: count() > 100000000
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
""" % (state, app, events))
    err = os.path.join(d, "klaxon.err")
    runs = [0]

    def launch():
        runs[0] += 1
        return start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "klaxon.out"),
                     stderr=err + ".%d" % runs[0])

    def cur_err():
        return err + ".%d" % runs[0]

    killed = [False]
    torn = [0]

    def counts():
        """Numbers in the events sink. A SIGKILL can cut the sink's write of a
        batch short; the next run appends after the torn record (its lines
        come after the last checkpoint, so they are read and written again).
        Torn records are tolerated only once klaxon has been killed."""
        got = collections.Counter()
        data = read_bytes(events)
        if data and not data.endswith(b"\n"):
            data = data[:data.rfind(b"\n") + 1]     # a line still being written
        nt = 0
        for raw in data.split(b"\n"):
            if not raw:
                continue
            try:
                objs = [json.loads(raw.decode("utf-8", "strict"))]
            except ValueError:
                objs = []
                for piece in re.split(rb'(?=\{"time":)', raw):
                    try:
                        objs.append(json.loads(piece.decode("utf-8", "strict")))
                    except ValueError:
                        if piece:
                            nt += 1
                check(killed[0], "events sink: an invalid line without a kill: %r" % raw[:300])
            for e in objs:
                p = e.get("fields", {}).get("path") if isinstance(e, dict) else None
                m = re.match(r"^/ck/(\d+)$", p or "")
                check(m, "unexpected event: %s" % e)
                got[int(m.group(1))] += 1
        torn[0] = nt
        return got

    def wait_all(kl, n, what):
        wait_for(lambda: len(set(counts()) & set(range(n))) >= n, 60,
                 "%s (%d numbers)" % (what, n), proc=kl, proc_log=cur_err())

    def verify(n, what, allowed_dups=None):
        got = counts()
        missing = [i for i in range(n) if got[i] == 0]
        dups = sorted(i for i, c in got.items() if c > 1)
        extra = sorted(i for i in got if i >= n)
        check(not extra, "%s: numbers never written: %s" % (what, extra[:20]))
        check(not missing, "%s: %d missing, e.g. %s" % (what, len(missing), missing[:20]))
        if allowed_dups is None:
            check(not dups, "%s: %d read more than once, e.g. %s" % (what, len(dups), dups[:20]))
        else:
            bad = [i for i in dups if i not in allowed_dups]
            check(not bad, "%s: %d read more than once that were not written within %.1f s "
                  "before a kill, e.g. %s" % (what, len(bad), DUP_WINDOW, bad[:20]))
        return got, dups

    def stop_term(kl):
        rc = stop(kl, timeout=15)
        check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(cur_err()))))

    w = Writer(app)
    w.write_now(100)

    # A: SIGTERM and restart while writing
    kl = launch()
    w.resume()
    for i in range(5):
        time.sleep(random.uniform(0.4, 1.2))
        stop_term(kl)
        time.sleep(random.uniform(0.1, 0.5))   # the writer goes on meanwhile
        kl = launch()
        wait_for(lambda: b"resuming" in read_bytes(cur_err()), 15,
                 "klaxon to log that it resumes app.log", proc=kl, proc_log=cur_err())
    w.pause()
    n = w.n
    wait_all(kl, n, "A: klaxon to read everything after 5 SIGTERM restarts")
    time.sleep(1.5)   # a line read twice would show up now
    verify(n, "A (SIGTERM restarts)")
    log("A: %d lines written, each read exactly once across 5 SIGTERM restarts" % n)

    # B: SIGKILL and restart while writing
    w.resume()
    kills = []
    for i in range(5):
        time.sleep(random.uniform(0.5, 2.0))
        killed[0] = True
        stop(kl, sig=signal.SIGKILL, timeout=15)
        kills.append((time.monotonic(), w.n))
        time.sleep(random.uniform(0.1, 0.5))
        kl = launch()
    w.pause()
    n = w.n
    wait_all(kl, n, "B: klaxon to read everything after 5 SIGKILL restarts")
    time.sleep(1.5)
    allowed = set()
    for when, upto in kills:
        for j in range(upto - 1, -1, -1):
            if w.times[j] < when - DUP_WINDOW:
                break
            allowed.add(j)
    got, dups = verify(n, "B (SIGKILL restarts)", allowed)
    # Each duplicate is charged to the first kill after it was written (a kill
    # soon after a restart, before that run's first checkpoint, also repeats
    # what the previous run read after its last one).
    per_kill = [0] * len(kills)
    for j in dups:
        for k, (when, upto) in enumerate(kills):
            if j < upto:
                per_kill[k] += 1
                break
    for k, (when, upto) in enumerate(kills):
        recent = sum(1 for j in range(max(0, upto - 20000), upto)
                     if w.times[j] >= when - CHECKPOINT_INTERVAL)
        log("B: kill %d at line %d: %d read twice; %d lines were written in the %.1f s "
            "before it" % (k + 1, upto, per_kill[k], recent, CHECKPOINT_INTERVAL))
    log("B: %d lines written, none missing; %d read twice after 5 SIGKILLs, %d events torn "
        "by a kill in the sink's write (%s)"
        % (n, len(dups), torn[0], ", ".join("%d" % x for x in dups[:40]) + (" ..." if len(dups) > 40 else "")))
    # From here on the duplicates of B are known; count only new ones.
    base_dups = set(dups)

    def verify_more(n, what):
        got = counts()
        missing = [i for i in range(n) if got[i] == 0]
        dups = sorted(i for i, c in got.items() if c > 1 and i not in base_dups)
        check(not missing, "%s: %d missing, e.g. %s" % (what, len(missing), missing[:20]))
        check(not dups, "%s: %d read more than once, e.g. %s; this run's log:\n%s"
              % (what, len(dups), dups[:20], tail(read_bytes(cur_err()), 30)))

    # C: rotation (rename + create) while stopped
    stop_term(kl)
    w.write_now(200)                        # the rest of the old file, unread
    os.rename(app, app + ".1")
    w.write_now(50)                         # the writer still holds the old file
    w.reopen()                              # a new app.log
    w.write_now(300)
    kl = launch()
    n = w.n
    wait_all(kl, n, "C: klaxon to read the rotated file's rest and the new file")
    time.sleep(1.5)
    verify_more(n, "C (rotated while stopped)")
    check(b"while we were stopped" in read_bytes(cur_err()),
          "C: klaxon did not log that it found the rotated file; stderr:\n"
          + tail(read_bytes(cur_err())))
    log("C: rotated while stopped: the old file's last 250 lines and the new file's 300 read once")

    # D: SIGKILL, then a dateext rotation while stopped
    w.resume()
    time.sleep(1.5)                         # several checkpoints
    w.pause()
    wait_all(kl, w.n, "D: klaxon to catch up")
    time.sleep(CHECKPOINT_INTERVAL * 2)     # the checkpoint holds everything read
    stop(kl, sig=signal.SIGKILL, timeout=15)
    w.write_now(100)
    os.rename(app, app + "-20260101")
    w.reopen()
    w.write_now(100)
    kl = launch()
    n = w.n
    wait_all(kl, n, "D: klaxon to read the dateext-rotated file and the new one")
    time.sleep(1.5)
    verify_more(n, "D (SIGKILL, dateext rotation while stopped)")
    log("D: killed, rotated to a dateext name while stopped: nothing lost or read twice")

    # E: a corrupt checkpoint
    stop_term(kl)
    ck = os.path.join(state, "checkpoint")
    check(os.path.exists(ck), "no checkpoint file %s after a clean stop" % ck)
    write(ck, "klaxon-checkpoint 1\nsource app\nfile dev=x\n")
    kl = launch()
    wait_for(lambda: b"checkpoint" in read_bytes(cur_err()) and ck.encode() in read_bytes(cur_err())
             and b"error" in read_bytes(cur_err()), 15,
             "klaxon to log the corrupt checkpoint by name", proc=kl, proc_log=cur_err())
    stop_term(kl)
    log("E: a corrupt checkpoint is reported with its name; klaxon starts anyway")
    w.close()


if __name__ == "__main__":
    main(body)
