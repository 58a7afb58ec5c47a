#!/usr/bin/env python3
"""`klaxon run` under real logrotate at a high line rate: nothing lost, nothing read twice.

For each of three logrotate modes, in its own folder with a fresh klaxon:
  - a writer process (this file run with --writer) appends nginx_timed lines
    (e2elib.nginx_line) whose path carries a unique sequence number (/seq/N)
    with O_APPEND, at WRITE_RATE lines/s for LOAD_SECONDS (1.5 times that in
    dateext mode, whose rotations take longer; bounded in count and time;
    python keeps up by writing up to MAX_BATCH lines per write(2)),
    and records every write (first number, count, wall time) in a file;
  - a thread runs Debian's logrotate (-f, -s a state file in the folder, a
    config in the folder, `rotate 1000` so nothing is deleted, `ifempty`)
    every ROTATE_GAP seconds, hundreds of times, in one of the modes:
      create      rename app.log to app.log.1 (shifting the others), create
                  a new app.log; postrotate sends SIGUSR1 and the writer
                  reopens the path (nginx's USR1), so lines it writes between
                  the rename and the reopen go to the renamed file;
      copytruncate  copy app.log to app.log.1, truncate app.log in place; the
                  writer keeps its descriptor; logrotate loses, by design,
                  what the writer appends between the copy and the truncate;
      dateext     create, with `dateext`, `dateformat -%Y%m%d-%H%M%S`,
                  `compress` and `delaycompress`: app.log-STAMP, gzipped at
                  the next rotation (while klaxon may still be draining it).
                  Stamps have a one second resolution and logrotate refuses to
                  rotate onto an existing name ("destination ... already
                  exists, skipping rotation"); %s is seconds too. So each run
                  gets its own TZ, an offset that makes logrotate's local time
                  a virtual clock two seconds further than the last run's:
                  every name is unique and sorts in rotation order, as
                  logrotate's delaycompress and `rotate` expect.
  - klaxon follows app.log (nginx_timed, from: beginning) into a jsonl events
    sink; once the writer and logrotate are done and klaxon caught up, it is
    stopped with SIGTERM.
Then what was on disk is rebuilt from every file in the folder (rotated ones,
.gz decompressed, and the live one; complete lines only) and compared with the
writer's record and with the numbers in klaxon's events:
  create, dateext: every number written is seen exactly once (klaxon holds the
      renamed file open, so even a line written after gzip removed it counts);
  copytruncate: every number that was on disk is seen exactly once, those
      klaxon had not read yet when app.log was truncated included (they are in
      logrotate's copy); numbers logrotate's copy-then-truncate lost are
      counted, and so are those among them klaxon had read before the
      truncate (fine: they were there when read); a number never written, or
      seen twice, fails.
Figures (written, on disk, seen, lost, duplicated, rotations) are printed as a
table. No assertion is timed: every wait polls with a generous deadline. Every
assertion is evaluated and printed, then the test fails if any did; a failure
says where the missing or repeated numbers were on disk and what klaxon logged
about that file.
test_logrotate_restart.py reuses these pieces for SIGKILLs under the same load
and for files rotated twice while klaxon is stopped.

Environment: LOAD_SEED (the seed of the rotation gaps and kill moments; printed).
"""
import collections
import gzip
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, fail, log, main, nginx_line, read_bytes, run,  # noqa: E402
                    skip, start, stop, tail, tmpdir, wait_for, write)

# KLAXON_LOAD_SCALE=N (the ASan lane: its build runs several times slower)
# divides the write rate and the rotation frequency by N.
LOAD_SCALE = max(1.0, float(os.environ.get("KLAXON_LOAD_SCALE") or 1))
WRITE_RATE = int(25000 / LOAD_SCALE)  # lines per second the writer aims at
LOAD_SECONDS = 10.0         # how long it writes, per mode
MAX_BATCH = 400             # lines per write(2) at most
# seconds between two logrotate runs, each of which takes 10-40 ms more here:
# one rotation every ~50 ms
ROTATE_GAP = (0.005 * LOAD_SCALE, 0.025 * LOAD_SCALE)
MAX_ROTATIONS = 1000        # per load, whatever happens (`rotate 1000` keeps them all)
CHECKPOINT_INTERVAL = 1.0   # src/cmd_run.c
BASE = "app.log"
SEQ_PATH = re.compile(r"^/seq/(\d+)$")
# One event of a writer's line, as the jsonl sink writes it (anything else is
# decoded as JSON and checked field by field).
EVENT_LINE = re.compile(rb'^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","source":"app",'
                        rb'"fields":\{"remote_addr":"127\.0\.0\.1","request":"GET /seq/(\d+) '
                        rb'HTTP/1\.1","method":"GET","path":"/seq/(\d+)","protocol":"HTTP/1\.1",'
                        rb'"status":200,"bytes":15,"referer":"-","agent":"e2e/1\.0",'
                        rb'"request_time":0\.01,"upstream_response_time":0\.01\}\}$')
# A complete line as the writer writes it (e2elib.nginx_line).
DISK_LINE = re.compile(rb'^127\.0\.0\.1 - - \[[^\]]+\] "GET /seq/(\d+) HTTP/1\.1" 200 15 "-" '
                       rb'"e2e/1\.0" rt=0\.010 urt="0\.010"$', re.M)

MODES = {
    "create": {"reopen": True, "tz": False, "directives": "create 0644\n    nocompress"},
    "copytruncate": {"reopen": False, "tz": False, "directives": "copytruncate\n    nocompress"},
    # each of its runs also forks gzip, so a rotation takes twice as long:
    # it writes longer, for as many rotations
    "dateext": {"reopen": True, "tz": True, "seconds": 1.5 * LOAD_SECONDS,
                "directives": "create 0644\n    dateext\n    dateformat -%Y%m%d-%H%M%S\n"
                              "    compress\n    delaycompress"},
}
MODE_TITLE = {"create": "create", "copytruncate": "copytruncate",
              "dateext": "dateext+compress+delaycompress"}


# ---------------------------------------------------------------------------
# The writer process: python3 THIS_FILE --writer PATH RECORD FIRST COUNT SECONDS RATE

def writer_main(argv):
    path, record = argv[0], argv[1]
    first, count = int(argv[2]), int(argv[3])
    seconds, rate = float(argv[4]), float(argv[5])
    flags = {"reopen": False, "stop": False}

    def on_usr1(signum, frame):
        flags["reopen"] = True

    def on_term(signum, frame):
        flags["stop"] = True
    signal.signal(signal.SIGUSR1, on_usr1)   # before the file exists: nothing rotates it sooner
    signal.signal(signal.SIGTERM, on_term)
    oflags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    fd = os.open(path, oflags, 0o644)
    rec = open(record, "w", encoding="ascii")
    n = reopens = 0
    stamp_sec, template = None, None
    t0 = time.monotonic()
    end = t0 + seconds
    while n < count and not flags["stop"]:
        now = time.monotonic()
        if now >= end:
            break
        if flags["reopen"]:            # logrotate's postrotate: the path is a new file
            flags["reopen"] = False
            os.close(fd)
            fd = os.open(path, oflags, 0o644)
            reopens += 1
        k = min(int((now - t0) * rate) + 1, count) - n
        if k <= 0:
            time.sleep(0.001)
            continue
        k = min(k, MAX_BATCH)
        sec = int(time.time())
        if sec != stamp_sec:
            line = nginx_line("/seq/@SEQ@", rt=0.01, when=sec)
            template = line.replace("%", "%%").replace("@SEQ@", "%d")
            stamp_sec = sec
        data = "".join(template % i for i in range(first + n, first + n + k)).encode()
        view = memoryview(data)
        while view:                     # a regular file: short only on a full disk
            view = view[os.write(fd, view):]
        rec.write("%d %d %.6f\n" % (first + n, k, time.time()))
        n += k
    # logrotate may still signal after the last line: ignore it from here on
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    rec.write("end %d %d %.3f\n" % (n, reopens, time.monotonic() - t0))
    rec.close()
    os.close(fd)
    return 0


class Writer:
    """The writer process and, once it exited, what it wrote."""

    def __init__(self, d, path, first, count, seconds, rate):
        self.path = path
        self.first = first
        self.record = os.path.join(d, "writer.record")
        self.errlog = os.path.join(d, "writer.err")
        self.p = start([sys.executable, os.path.abspath(__file__), "--writer", path, self.record,
                        str(first), str(count), str(seconds), str(rate)],
                       stdout=self.errlog, stderr=self.errlog)
        self.n = None
        self.times = None
        wait_for(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 60,
                 "the writer's first lines in %s" % path, proc=self.p, proc_log=self.errlog)

    def running(self):
        return self.p.poll() is None

    def wait(self, deadline):
        wait_for(lambda: not self.running(), deadline, "the writer to finish")
        rc = stop(self.p)
        check(rc == 0, "the writer exited %s:\n%s" % (rc, tail(read_bytes(self.errlog))))
        times = []
        end = None
        with open(self.record, encoding="ascii") as f:
            for raw in f:
                parts = raw.split()
                if parts[0] == "end":
                    end = parts
                    continue
                s, k, t = int(parts[0]), int(parts[1]), float(parts[2])
                check(s == self.first + len(times), "writer record out of order at %r" % raw)
                times.extend([t] * k)
        check(end is not None and int(end[1]) == len(times), "the writer's record is incomplete")
        self.n = len(times)
        self.times = times              # times[i]: wall time line first+i was complete
        self.reopens = int(end[2])
        self.elapsed = float(end[3])
        return self.n

    def written(self):
        return range(self.first, self.first + self.n)

    def time_of(self, seq):
        return self.times[seq - self.first]


# ---------------------------------------------------------------------------
# logrotate

def find_logrotate():
    lr = shutil.which("logrotate")
    if not lr and os.access("/usr/sbin/logrotate", os.X_OK):
        lr = "/usr/sbin/logrotate"
    if not lr:
        skip("logrotate is not installed (Debian package logrotate)")
    return lr


def logrotate_conf(d, path, directives, writer_pid=None, name="logrotate.conf"):
    """A config in d rotating path with the given directives; with writer_pid,
    postrotate tells the writer to reopen the path (nginx's USR1)."""
    post = ""
    if writer_pid:
        # the writer may have exited by the last rotation: not an error
        post = ("\n    postrotate\n        kill -USR1 %d 2>/dev/null || true\n    endscript"
                % writer_pid)
    conf = os.path.join(d, name)
    write(conf, """\
%s {
    rotate %d
    %s
    missingok
    ifempty%s
}
""" % (path, MAX_ROTATIONS, directives, post))
    os.chmod(conf, 0o644)   # logrotate ignores a config others may write
    return conf


class VirtualClock:
    """TZ values that make logrotate's local time (its dateext stamp) advance
    two seconds per run, whatever the real clock does in between; two, so a
    second boundary crossed between computing the offset and logrotate's own
    time() still cannot give two runs one name."""

    def __init__(self):
        self.base = int(time.time())
        self.k = 0

    def next_tz(self):
        self.k += 1
        offset = int(time.time()) - (self.base + 2 * self.k)   # local = UTC - offset
        sign = "+" if offset >= 0 else "-"
        a = abs(offset)
        return "VRT%s%d:%02d:%02d" % (sign, a // 3600, a // 60 % 60, a % 60)


class Rotator(threading.Thread):
    """Runs logrotate -f every ROTATE_GAP seconds until stopped (bounded)."""

    def __init__(self, logrotate, d, conf, mode, rng, deadline):
        super().__init__(daemon=True)
        self.argv = [logrotate, "-f", "-s", os.path.join(d, "logrotate.state"), conf]
        self.clock = VirtualClock() if MODES[mode]["tz"] else None
        self.rng = rng
        self.deadline = time.monotonic() + deadline
        self.quit = threading.Event()
        self.count = 0
        self.times = []     # wall time each successful rotation ended
        self.took = []      # seconds each logrotate run took
        self.errors = []

    def run(self):
        try:
            while (not self.quit.is_set() and self.count < MAX_ROTATIONS
                   and time.monotonic() < self.deadline):
                if self.quit.wait(self.rng.uniform(*ROTATE_GAP)):
                    break
                env = {"TZ": self.clock.next_tz()} if self.clock else None
                t0 = time.monotonic()
                rc, out, err = run(self.argv, timeout=60, env=env)
                self.took.append(time.monotonic() - t0)
                if rc == 0:
                    self.count += 1
                    self.times.append(time.time())
                else:
                    self.errors.append("exit %d: %s" % (rc, (out + err).decode("utf-8", "replace")))
        except Exception as e:   # noqa: BLE001 — reported by the test, not lost in a thread
            self.errors.append("rotator: %r" % e)

    def finish(self):
        self.quit.set()
        self.join(90)
        check(not self.is_alive(), "the logrotate thread did not finish")


def rotated_files(d):
    """Names of the rotated siblings of BASE in d (plain and .gz)."""
    return sorted(n for n in os.listdir(d)
                  if n.startswith(BASE + ".") or n.startswith(BASE + "-"))


class Disk:
    """Where each number was at the end: its file, line index and byte offset
    there (uncompressed), and each file's line count."""

    def __init__(self):
        self.file = {}
        self.pos = {}
        self.lines = {}

    def __contains__(self, s):
        return s in self.file

    def __iter__(self):
        return iter(self.file)

    def __len__(self):
        return len(self.file)

    def get(self, s, default=None):
        return self.file.get(s, default)


def scan_disk(d):
    """Every number on disk (a Disk), from complete lines of the live file and
    of every rotated one (.gz decompressed). Also returns problems: numbers
    found twice, lines that are not the writer's, partial last lines."""
    where = Disk()
    twice = []
    junk = []
    partial = 0
    for name in [BASE] + rotated_files(d):
        p = os.path.join(d, name)
        data = read_bytes(p)
        if name.endswith(".gz") and data:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as e:
                junk.append("%s: cannot decompress: %s" % (name, e))
                continue
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            partial += 1           # copytruncate: the copy ended inside a write
        data = data[:cut]
        nl = data.count(b"\n")
        found = 0
        for m in DISK_LINE.finditer(data):
            s = int(m.group(1))
            if s in where:
                twice.append((s, where.get(s), name))
            else:
                where.file[s] = name
                where.pos[s] = (found, m.start())
            found += 1
        where.lines[name] = found
        if found != nl:
            junk.append("%s: %d of its %d lines are not the writer's" % (name, nl - found, nl))
    return where, twice, junk, partial


# ---------------------------------------------------------------------------
# klaxon and its events

class Events:
    """klaxon's jsonl events sink, read incrementally: counts per number.
    A SIGKILL can cut the sink's write of a batch short; the next run appends
    after the torn record (its lines come after the last checkpoint, so they
    are read and written again). Torn records are tolerated only when the
    test says klaxon was killed."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.counts = collections.Counter()
        self.events = 0
        self.torn = 0
        self.killed = False
        self.last_growth = time.monotonic()
        # when each copy of a number was first seen in the sink (wall time of
        # the update that found it: an upper bound on when klaxon wrote it)
        self.seen_at = collections.defaultdict(list)

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            return
        self.off += cut
        self.last_growth = time.monotonic()
        now = time.time()
        counts = self.counts
        seen_at = self.seen_at
        for raw in data[:cut].split(b"\n")[:-1]:
            m = EVENT_LINE.match(raw)
            if m and m.group(1) == m.group(2):
                n = int(m.group(1))
                counts[n] += 1      # the usual line: no need to decode it
                seen_at[n].append(now)
                self.events += 1
                continue
            try:
                objs = [json.loads(raw)]
            except ValueError:
                if not self.killed:
                    fail("events sink: an invalid line, and klaxon was never killed: %r" % raw[:300])
                objs = []
                for piece in re.split(rb'(?=\{"time":)', raw):
                    try:
                        objs.append(json.loads(piece))
                    except ValueError:
                        if piece:
                            self.torn += 1
            for e in objs:
                p = e.get("fields", {}).get("path") if isinstance(e, dict) else None
                m = SEQ_PATH.match(p) if isinstance(p, str) else None
                if not m or e.get("source") != "app":
                    fail("events sink: unexpected event: %s" % json.dumps(e)[:300])
                counts[int(m.group(1))] += 1
                seen_at[int(m.group(1))].append(now)
                self.events += 1

    def idle_for(self):
        return time.monotonic() - self.last_growth


class Klaxon:
    """One klaxon configuration in folder d, started and stopped many times."""

    def __init__(self, d, app):
        self.d = d
        self.state = os.path.join(d, "state")
        self.ckpt = os.path.join(self.state, "checkpoint")
        self.events = Events(os.path.join(d, "events.jsonl"))
        write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: Anything
    source: app
    expr: count() > 1000000000
    window: 1m
""")
        self.cfg = os.path.join(d, "klaxon.yml")
        write(self.cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
sources:
  - {name: app, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: ev, type: jsonl, path: %s, what: events}
""" % (self.state, app, self.events.path))
        self.runs = 0
        self.p = None
        self.launched = None

    def err(self, i=None):
        return os.path.join(self.d, "klaxon.err.%d" % (i or self.runs))

    def launch(self):
        self.runs += 1
        self.p = start([KLAXON, "run", "-c", self.cfg], stdout=os.path.join(self.d, "klaxon.out"),
                       stderr=self.err())
        self.launched = time.time()

    def alive(self):
        if self.p.poll() is not None:
            fail("klaxon run exited (status %s) on its own; its stderr:\n%s"
                 % (self.p.returncode, tail(read_bytes(self.err()))))

    def kill(self):
        self.alive()
        self.events.killed = True
        stop(self.p, sig=signal.SIGKILL, timeout=15)

    def term(self):
        self.alive()
        rc = stop(self.p, timeout=30)
        check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(self.err()))))

    def stderr_all(self):
        return b"".join(read_bytes(self.err(i)) for i in range(1, self.runs + 1)).decode(
            "utf-8", "replace")

    def catch_up(self, want, deadline=180.0, idle=3.0, settle=1.5):
        """Poll the sink until every number of want was seen, then until it
        stayed quiet for `settle` s (a line read twice would show by then);
        or, if some never come, until it stayed quiet for `idle` s. Returns
        the numbers still missing. Never an assertion on time."""
        missing = set(want)
        end = time.monotonic() + deadline
        while True:
            self.events.update()
            missing = {s for s in missing if s not in self.events.counts}
            self.alive()
            quiet = self.events.idle_for()
            if (not missing and quiet >= settle) or quiet >= idle:
                return missing
            if time.monotonic() > end:
                log("gave up waiting for klaxon after %.0f s: %d numbers never came"
                    % (deadline, len(missing)))
                return missing
            time.sleep(0.2)


# ---------------------------------------------------------------------------
# Verdicts and figures

class Verdicts:
    """Every assertion is evaluated and printed; the test fails at the end if
    any did, listing them all (so one run shows everything that holds)."""

    def __init__(self):
        self.items = []

    def check(self, ok, name, detail=""):
        self.items.append((bool(ok), name, detail))
        log("%s %s%s" % ("ok    " if ok else "FAILED", name, (": " + detail) if detail else ""))

    def finish(self):
        bad = [(n, dt) for ok, n, dt in self.items if not ok]
        log("%d of %d assertions hold" % (len(self.items) - len(bad), len(self.items)))
        if bad:
            fail("%d assertion(s) failed:\n%s" % (len(bad), "\n".join(
                "  - %s%s" % (n, (": " + dt) if dt else "") for n, dt in bad)))


def ranges(nums, limit=12):
    """'5-9, 14, 20-31 (+3 more ranges)' for a collection of ints."""
    nums = sorted(nums)
    out = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append("%d" % nums[i] if i == j else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    more = len(out) - limit
    return ", ".join(out[:limit]) + (" (+%d more ranges)" % more if more > 0 else "")


def where_missing(missing, where):
    """The missing numbers grouped by the file they were in at the end, with
    their place in it (line indexes from 0, and the byte offset of the first)."""
    by = collections.defaultdict(list)
    for s in missing:
        by[where.get(s, "(not on disk)")].append(s)
    out = []
    for name in sorted(by, key=lambda n: -len(by[n]))[:10]:
        xs = sorted(by[name])
        place = ""
        if xs[0] in where.pos:
            idx = sorted(where.pos[s][0] for s in xs)
            place = ", its lines %d-%d of %d, from byte %d" % (
                idx[0], idx[-1], where.lines[name], where.pos[xs[0]][1])
        out.append("%d in %s (%s%s)" % (len(xs), name, ranges(xs, 4), place))
    if len(by) > 10:
        out.append("... %d more files" % (len(by) - 10))
    return "; ".join(out)


FIGURE_COLS = [("mode", "%-34s"), ("written", "%8s"), ("on disk", "%8s"), ("seen", "%8s"),
               ("lost", "%6s"), ("dup", "%7s"), ("lr lost", "%7s"), ("lr lost seen", "%12s"),
               ("rotations", "%9s"), ("kills", "%5s"), ("lines/s", "%7s")]


def print_figures(rows, title):
    head = " ".join(fmt % name for name, fmt in FIGURE_COLS)
    lines = [title, head, "-" * len(head)]
    for r in rows:
        lines.append(" ".join(fmt % (r.get(name, ""),) for name, fmt in FIGURE_COLS))
    lines.append("written: lines the writer wrote; on disk: numbers in complete lines of the "
                 "files at the end; seen: distinct numbers in klaxon's events; lost: numbers "
                 "klaxon had to see and did not; dup: events beyond the first per number; "
                 "lr lost: written but not on disk (copytruncate's copy-then-truncate window, "
                 "or a line written to a file gzip had already removed); lr lost seen: of "
                 "those, read by klaxon before they went")
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------
# One load

class Load:
    """A folder, a klaxon, a writer and logrotate in one mode, run to the end.
    kill_plan(load) may kill and restart klaxon while the writer runs."""

    def __init__(self, logrotate, mode, rng, first, seconds=LOAD_SECONDS, rate=WRITE_RATE,
                 tag=None):
        self.mode = mode
        self.tag = tag or mode
        self.rng = rng
        self.d = tmpdir("klaxon-lr-" + self.tag)
        self.app = os.path.join(self.d, BASE)
        self.kl = Klaxon(self.d, self.app)
        self.logrotate = logrotate
        self.first = first
        self.seconds = seconds
        self.rate = rate
        self.kills = []

    def go(self, kill_plan=None):
        self.t_start = time.time()
        self.kl.launch()
        wait_for(lambda: b"source(s)" in read_bytes(self.kl.err()), 30,
                 "klaxon to start following", proc=self.kl.p, proc_log=self.kl.err())
        count = int(self.rate * self.seconds)
        self.writer = Writer(self.d, self.app, self.first, count, self.seconds, self.rate)
        m = MODES[self.mode]
        conf = logrotate_conf(self.d, self.app, m["directives"],
                              self.writer.p.pid if m["reopen"] else None)
        self.rot = Rotator(self.logrotate, self.d, conf, self.mode, random.Random(self.rng.random()),
                           deadline=self.seconds + 60)
        self.rot.start()
        log("%s: writer (pid %d) at %d lines/s for %.0f s; logrotate every %g-%g s"
            % (self.tag, self.writer.p.pid, self.rate, self.seconds, ROTATE_GAP[0], ROTATE_GAP[1]))
        try:
            if kill_plan:
                kill_plan(self)
            while self.writer.running():
                self.pause(0.5)
        except BaseException:
            self.rot.quit.set()       # no logrotate run into a folder being removed
            self.rot.join(10)
            raise
        n = self.writer.wait(self.seconds + 60)
        self.rot.finish()
        log("%s: the writer wrote %d lines in %.1f s (%d reopens); logrotate rotated %d times, "
            "%.0f ms a run on average"
            % (self.tag, n, self.writer.elapsed, self.writer.reopens, self.rot.count,
               1000 * sum(self.rot.took) / max(len(self.rot.took), 1)))
        self.where, self.disk_twice, self.disk_junk, self.partial = scan_disk(self.d)
        return n

    def pause(self, seconds):
        """Sleep while the load runs, keeping up with the sink (bounded)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.kl.alive()
            self.kl.events.update()
            # often: the times of the sink's lines are known to this step
            time.sleep(max(0.0, min(0.05, end - time.monotonic())))

    def finish(self, required):
        """Wait until klaxon saw `required` (or went quiet), stop it, and
        return the figures."""
        t0 = time.monotonic()
        left = self.kl.catch_up(required)
        self.kl.term()
        self.kl.events.update()
        log("%s: klaxon %s in %.1f s after the writer stopped; stopped with SIGTERM"
            % (self.tag, "caught up" if not left else "went quiet, %d numbers short," % len(left),
               time.monotonic() - t0))
        ev = self.kl.events
        written = set(self.writer.written())
        disk = set(self.where)
        seen = set(ev.counts)
        lr_lost = written - disk
        self.row = {
            "mode": MODE_TITLE[self.mode] + (" + SIGKILL" if self.kills else ""),
            "written": len(written), "on disk": len(disk), "seen": len(seen),
            "lost": len(set(required) - seen), "dup": sum(c - 1 for c in ev.counts.values() if c > 1),
            "lr lost": len(lr_lost), "lr lost seen": len(lr_lost & seen),
            "rotations": self.rot.count, "kills": len(self.kills),
            "lines/s": "%.0f" % (len(written) / max(self.writer.elapsed, 0.001)),
        }
        self.missing = sorted(set(required) - seen)
        self.never_written = sorted(seen - written)
        self.dups = {s: c for s, c in ev.counts.items() if c > 1}
        return self.row

    def harness_checks(self, v):
        """What must hold for the figures to mean anything (not klaxon's job)."""
        t = self.tag
        v.check(not self.rot.errors, "%s: logrotate ran without errors" % t,
                "%d failed runs, first: %s" % (len(self.rot.errors), self.rot.errors[:1])
                if self.rot.errors else "%d rotations" % self.rot.count)
        nfiles = len(rotated_files(self.d))
        v.check(nfiles == self.rot.count, "%s: one rotated file per rotation" % t,
                "%d files for %d rotations" % (nfiles, self.rot.count))
        v.check(not self.disk_twice and not self.disk_junk,
                "%s: the files on disk hold only the writer's lines, each once" % t,
                "%s %s" % (self.disk_twice[:3], self.disk_junk[:3]))
        lost = sorted(set(self.writer.written()) - set(self.where))
        if self.mode == "create":     # nothing is ever removed: all of it must be there
            v.check(not lost, "%s: every line written is on disk (logrotate lost none)" % t,
                    "%d not on disk: %s" % (len(lost), ranges(lost)) if lost else "")
        elif self.mode == "dateext" and lost:
            # The writer reopens on SIGUSR1 from postrotate; if it is slower than
            # the next rotation (tens of ms), what it still appends to the renamed
            # file after gzip read it is removed with it. Only a reader holding
            # that file open (klaxon) can still see those lines.
            log("%s: NOTE: %d lines were written to a renamed file after gzip had compressed "
                "and removed it (the writer reopened late): %s" % (t, len(lost), ranges(lost)))

    def lifetime(self, name):
        """For app.log.N (numbered rotations, none deleted): how long it was
        the live app.log, from the end of the logrotate run that created it
        to the end of the one that renamed it (approximately)."""
        m = re.match(r"^%s\.(\d+)$" % re.escape(BASE), name)
        r = len(self.rot.times)
        if not m or not 0 < int(m.group(1)) <= r:
            return ""
        k = r - int(m.group(1))      # rotations before the one that renamed it
        born = self.rot.times[k - 1] if k > 0 else self.t_start
        return ", the live %s for %.3f s between rotations %d and %d" % (
            BASE, self.rot.times[k] - born, k, k + 1)

    def inode_history(self, missing, files=3, n=12):
        """For the (uncompressed) files holding the most missing numbers from
        some offset on, what each klaxon run logged about their inode."""
        by = collections.Counter(self.where.get(s) for s in missing)
        out = []
        for name, cnt in by.most_common():
            if len(out) >= files:
                break
            if not name or name.endswith(".gz"):
                if name:
                    out.append("%s (%d missing): compressed since, its inode is gone" % (name, cnt))
                continue
            try:
                ino = os.stat(os.path.join(self.d, name)).st_ino
            except FileNotFoundError:
                continue
            pat = re.compile(r"\(inode %d[,)]" % ino)
            hits = []
            for i in range(1, self.kl.runs + 1):
                for ln in read_bytes(self.kl.err(i)).decode("utf-8", "replace").splitlines():
                    if pat.search(ln):
                        hits.append("run %d: %s" % (i, ln.replace(self.d + "/", "")))
            out.append("%s (inode %d, %d missing%s), klaxon logged:\n    %s" % (
                name, ino, cnt, self.lifetime(name),
                "\n    ".join(hits[:n] + (["... %d more" % (len(hits) - n)]
                                        if len(hits) > n else [])) or "nothing about it"))
        return "\n".join(out)

    def klaxon_log_excerpt(self, pattern, n=8):
        text = self.kl.stderr_all()
        hits = [ln for ln in text.splitlines() if re.search(pattern, ln)]
        return "\n".join(hits[:n]) + ("\n... %d such lines" % len(hits) if len(hits) > n else "")


def truncation_evidence(ld, missing):
    """For copytruncate: for each copy holding missing numbers, the line klaxon
    logged when it found app.log truncated while at the byte where they begin
    (it was behind logrotate's copy, and went back to 0 past the rest)."""
    firsts = {}
    for s in sorted(missing):
        name = ld.where.get(s)
        if name and name not in firsts:
            firsts[name] = ld.where.pos[s][1]
    text = ld.kl.stderr_all()
    out = []
    for name, b in sorted(firsts.items()):
        hits = [ln for ln in text.splitlines() if "was truncated" in ln and "we were at %d)" % b in ln]
        out.append("%s from byte %d: %s" % (name, b, hits[0].strip() if hits else
                                             "(no truncation logged at that offset)"))
    return "\n".join(out)


def steady(logrotate, mode, rng, first, v):
    """One mode, no restarts: exactly once (what copytruncate loses aside)."""
    ld = Load(logrotate, mode, rng, first, seconds=MODES[mode].get("seconds", LOAD_SECONDS))
    ld.go()
    if mode == "copytruncate":
        required = set(ld.where)
    else:
        required = set(ld.writer.written())
    row = ld.finish(required)
    ld.harness_checks(v)
    t = mode
    v.check(not ld.never_written, "%s: klaxon saw no number that was never written" % t,
            ranges(ld.never_written))
    what = ("every number that was on disk" if mode == "copytruncate"
            else "every number written")
    v.check(not ld.missing, "%s: klaxon saw %s" % (t, what),
            "%d missing: %s; klaxon logged:\n%s" % (
                len(ld.missing), where_missing(ld.missing, ld.where),
                truncation_evidence(ld, ld.missing) if mode == "copytruncate"
                else ld.inode_history(ld.missing) + "\nand in general:\n"
                + ld.klaxon_log_excerpt(r"lost|error|warn|overflow"))
            if ld.missing else "%d numbers" % len(required))
    v.check(not ld.dups, "%s: klaxon saw every number at most once" % t,
            "%d numbers seen more than once: %s; klaxon logged:\n%s" % (
                len(ld.dups), ranges(ld.dups), ld.klaxon_log_excerpt(r"truncated|error|warn"))
            if ld.dups else "")
    if mode == "copytruncate":
        log("copytruncate: logrotate lost %d lines between its copy and its truncate; klaxon "
            "had read %d of them before they went; %d copies ended inside a write"
            % (row["lr lost"], row["lr lost seen"], ld.partial))
    return row


def body():
    logrotate = find_logrotate()
    seed = int(os.environ.get("LOAD_SEED") or random.randrange(1 << 30))
    log("seed %d (LOAD_SEED=%d reproduces the rotation gaps)" % (seed, seed))
    rng = random.Random(seed)
    v = Verdicts()
    rows = []
    only = os.environ.get("KLAXON_LOAD_MODES", " ".join(MODES)).split()
    for i, mode in enumerate(MODES):
        if mode not in only:
            continue
        rows.append(steady(logrotate, mode, rng, (i + 1) * 10_000_000, v))
    print_figures(rows, "rotation under load (seed %d)" % seed)
    v.finish()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        sys.exit(writer_main(sys.argv[2:]))
    main(body)
