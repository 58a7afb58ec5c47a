#!/usr/bin/env python3
"""The rotator never compresses a file its tailer has not read to its end.

A. `klaxon run`: a followed log, 9 days old, whose last line has no newline
   yet: the tailer has read every byte but handed on all but that line, so
   the file is not "read to its end". The rotator (compress_after: 7d on that
   very file, the guide's `find -mtime +7 -exec gzip`) must skip it, scan
   after scan (seen in the debug log). Once the line is finished, the tailer
   hands it on and the next scan compresses the file: the .gz holds all its
   bytes and the events sink has every line, the last one included.
B. `klaxon rotate` (no tailer in the process): it reads the checkpoint that
   `klaxon run` keeps in state_dir. A file recorded there with an offset below
   its size is skipped, with how far the tailer got; with the offset at its
   size, it is compressed.
"""
import gzip
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, json_lines, log, main, nginx_line, read_bytes, run, start,  # noqa: E402
                    stop, tail, tmpdir, wait_for, write)

DAY = 86400


def age(path, days):
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def part_a(d):
    logs = os.path.join(d, "a")
    os.mkdir(logs, 0o755)
    app = os.path.join(logs, "app.log")
    body = "".join(nginx_line("/a/%d" % i) for i in range(1000))
    last = nginx_line("/a/last").rstrip("\n")
    write(app, body + last)            # the last line is not finished
    age(app, 9)
    events = os.path.join(d, "events.jsonl")
    write(os.path.join(d, "rules.yml"), "rules:\n  - {alert: X, source: app, expr: count() > 100000000, window: 1m}\n")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
rotate_interval: 100ms
sources:
  - {name: app, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: ev, type: jsonl, path: %s, what: events}
rotate:
  - {path: %s, compress_after: 7d}
""" % (os.path.join(d, "state"), app, events, app))
    err = os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "klaxon.out"), stderr=err,
               env={"KLAXON_DEBUG": "1"})
    skip = ("skip %s: the tailer has read %d of its %d bytes"
            % (app, len(body), len(body) + len(last))).encode()
    wait_for(lambda: read_bytes(err).count(skip) >= 3, 30, "three scans that skip the unread file",
             proc=kl, proc_log=err)
    check(os.path.exists(app) and not os.path.exists(app + ".gz"),
          "the file was compressed before the tailer read it")
    check(len(json_lines(events, "events", complete_only=True)) == 1000, "expected 1000 events so far")
    log("A: three scans skipped the file the tailer is behind on")

    with open(app, "a", encoding="utf-8") as f:
        f.write("\n")
    age(app, 9)
    wait_for(lambda: os.path.exists(app + ".gz") and not os.path.exists(app), 30,
             "the file to be compressed once read", proc=kl, proc_log=err)
    check(gzip.open(app + ".gz").read() == (body + last + "\n").encode(), "the archive lacks bytes")
    wait_for(lambda: len(json_lines(events, "events", complete_only=True)) >= 1001, 10,
             "the last line's event", proc=kl, proc_log=err)
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s; stderr:\n%s" % (rc, tail(read_bytes(err))))
    paths = [e["fields"]["path"] for e in json_lines(events, "events")]
    check(len(paths) == 1001 and paths[-1] == "/a/last" and len(set(paths)) == 1001,
          "events: %d, last %r" % (len(paths), paths[-1:]))
    log("A: compressed once read; 1001 events, the last line included")


def part_b(d):
    logs = os.path.join(d, "b")
    state = os.path.join(d, "state-b")
    os.mkdir(logs, 0o755)
    os.mkdir(state, 0o700)
    old = os.path.join(logs, "app.log.1")
    write(old, "".join(nginx_line("/b/%d" % i) for i in range(500)))
    age(old, 9)
    st = os.stat(old)
    cfg = os.path.join(d, "rotate-b.yml")
    write(cfg, "state_dir: %s\nrotate:\n  - {path: '%s/app.log.*', compress_after: 7d}\n" % (state, logs))

    def checkpoint(off):
        write(os.path.join(state, "checkpoint"),
              "klaxon-checkpoint 1\nsource app\n"
              "file dev=%d ino=%d off=%d fplen=0 fp=0000000000000000 skip=0 path=%s\nend\n"
              % (st.st_dev, st.st_ino, off, old))

    checkpoint(st.st_size - 100)
    rc, out, err = run([KLAXON, "rotate", "-c", cfg])
    text = out.decode()
    check(rc == 0, "klaxon rotate exited %d: %s%s" % (rc, text, tail(err)))
    want = "skip %s: the tailer has read %d of its %d bytes" % (old, st.st_size - 100, st.st_size)
    check(want in text, "expected %r in:\n%s" % (want, text))
    check(os.path.exists(old) and not os.path.exists(old + ".gz"), "compressed while unread")
    checkpoint(st.st_size)
    rc, out, err = run([KLAXON, "rotate", "-c", cfg])
    check(rc == 0 and os.path.exists(old + ".gz") and not os.path.exists(old),
          "not compressed once the checkpoint says it is read: %s%s" % (out.decode(), tail(err)))
    log("B: klaxon rotate follows the checkpoint")


def body():
    d = tmpdir()
    part_a(d)
    part_b(d)


if __name__ == "__main__":
    main(body)
