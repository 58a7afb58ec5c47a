#!/usr/bin/env python3
"""`klaxon run` rotates a live log by size while a writer appends, and its own
tailer follows every rotation: nothing lost, nothing read twice.

The writer is a separate process that behaves like nginx: it writes its pid
to a pidfile, appends numbered lines, reopens its log by path on SIGUSR1, and
stays up (reopening) until the test stops it.
klaxon follows the log (source from: beginning, a jsonl events sink) and
rotates it (`method: rename`, `max_size`, `signal: {pidfile, sig: USR1}`,
`keep`, and `compress_after: 1s` for the rotated generations), scanning every
200 ms. At the end:
  - the events sink holds every sequence number exactly once;
  - the files on disk (the live log, its rotated generations, gzipped ones
    read with zcat) hold every line exactly once;
  - there were several rotations, and generations were compressed.
"""
import collections
import gzip
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, fail, json_lines, log, main, read_bytes, start, stop,  # noqa: E402
                    tail, tmpdir, wait_for, write)

N = 20000

WRITER = r'''
import os, signal, sys, time
path, pidfile, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
reopen = [False]
def on_usr1(sig, frame):
    reopen[0] = True
signal.signal(signal.SIGUSR1, on_usr1)
f = open(path, "a")
with open(pidfile + ".tmp", "w") as p:
    p.write("%d\n" % os.getpid())
os.rename(pidfile + ".tmp", pidfile)
stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
for i in range(n):
    if reopen[0]:
        reopen[0] = False
        f.close()
        f = open(path, "a")
    f.write('127.0.0.1 - - [%s] "GET /seq/%d HTTP/1.1" 200 15 "-" "w/1" rt=0.010 urt="0.010"\n'
            % (stamp, i))
    f.flush()
    if i % 20 == 0:
        time.sleep(0.005)
f.flush()
open(pidfile + ".done", "w").close()
# like nginx, it stays up (and reopens on USR1) until it is stopped
while True:
    time.sleep(0.02)
    if reopen[0]:
        reopen[0] = False
        f.close()
        f = open(path, "a")
'''


def body():
    d = tmpdir()
    logs = os.path.join(d, "logs")
    os.mkdir(logs, 0o755)
    app = os.path.join(logs, "app.log")
    pidfile = os.path.join(d, "writer.pid")
    events = os.path.join(d, "events.jsonl")
    write(os.path.join(d, "writer.py"), WRITER)
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
rotate_interval: 200ms
sources:
  - {name: app, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: ev, type: jsonl, path: %s, what: events}
rotate:
  - path: %s
    max_size: 150KB
    keep: 1000
    compress_after: 1s
    signal: {pidfile: %s, sig: USR1}
""" % (os.path.join(d, "state"), app, events, app, pidfile))
    err = os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "klaxon.out"), stderr=err)
    wait_for(lambda: b"rotator: 1 rule(s)" in read_bytes(err), 20, "klaxon to start its rotator",
             proc=kl, proc_log=err)

    w = start([sys.executable, os.path.join(d, "writer.py"), app, pidfile, str(N)])
    wait_for(lambda: os.path.exists(pidfile + ".done"), 120, "the writer to write its lines", proc=w)
    log("the writer wrote %d lines" % N)

    def seen():
        return len(json_lines(events, "events sink", complete_only=True))
    wait_for(lambda: seen() >= N, 60, "klaxon to read all %d lines" % N, proc=kl, proc_log=err)
    # the rotated generations get compressed once drained and 1 s old
    wait_for(lambda: not any(re.match(r"^app\.log\.\d+$", n) for n in os.listdir(logs)), 30,
             "every rotated generation to be compressed", proc=kl, proc_log=err)
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err))))
    stop(w)
    klog = read_bytes(err).decode("utf-8", "replace")
    rotations = klog.count("rotate: rotate ")
    compressions = klog.count("rotate: compress ")
    signals = klog.count("rotate: signal USR1 to pid")
    log("klaxon logged %d rotations, %d signals, %d compressions" % (rotations, signals, compressions))
    check(rotations >= 3, "only %d rotations for %d lines:\n%s" % (rotations, N, tail(klog)))
    check(signals == rotations, "%d rotations but %d signals" % (rotations, signals))
    check(compressions >= 2, "only %d generations compressed" % compressions)
    check("rotate: error" not in klog, "the rotator reported an error:\n" + tail(klog))

    got = collections.Counter()
    for e in json_lines(events, "events sink"):
        p = e.get("fields", {}).get("path", "")
        m = re.match(r"^/seq/(\d+)$", p)
        check(m, "unexpected event %s" % e)
        got[int(m.group(1))] += 1
    missing = [i for i in range(N) if got[i] == 0]
    dup = [i for i, c in got.items() if c > 1]
    if missing or dup:
        fail("events: %d missing (%s), %d read twice (%s)" % (len(missing), missing[:10], len(dup), dup[:10]))

    on_disk = collections.Counter()
    names = sorted(os.listdir(logs))
    for n in names:
        data = gzip.open(os.path.join(logs, n)).read() if n.endswith(".gz") else read_bytes(os.path.join(logs, n))
        for line in data.splitlines():
            m = re.search(rb"GET /seq/(\d+) ", line)
            check(m, "a line that is not the writer's in %s: %r" % (n, line[:100]))
            on_disk[int(m.group(1))] += 1
    missing = [i for i in range(N) if on_disk[i] == 0]
    dup = [i for i, c in on_disk.items() if c > 1]
    if missing or dup:
        fail("on disk (%s): %d lines missing (%s), %d twice (%s)" % (names, len(missing), missing[:10], len(dup), dup[:10]))
    log("every line once in the events and once on disk, across %d files" % len(names))


if __name__ == "__main__":
    main(body)
