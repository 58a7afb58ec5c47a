#!/usr/bin/env python3
"""Limits and hostile input (issue 6): none of these crash `klaxon run` or stop
the other files, and each is logged once, not per line.

One `klaxon run` follows five sources (each a glob in its own folder, parser
nginx_timed, from: beginning, one jsonl events sink); two more run in user
namespaces whose inotify watch limit is tiny. Every line the test writes
carries a unique id in its request path, so the events sink shows exactly
which lines arrived and how often. The cases run at the same time, each in
its own thread; each reports PASS, FAIL or SKIP on its own, and the test
fails if any case failed (a skipped case does not hide the others).

  1. many     a glob matching 1,000 files of 5 lines each, then 50 files
              created later, then lines appended to a sample of 110 of them:
              every line arrives exactly once; each file is opened once.
  2. limit    klaxon inside `unshare --user --map-root-user` with
              user.max_inotify_watches = 8 (2a: the directory and a few files
              get a watch) and = 0 (2b: not even the directory), 40 files,
              then appends, then 5 more files: one log line says inotify
              cannot watch and it checks on a timer instead (once, not per
              file), and every line of every file arrives (the stat fallback).
              Skipped if user namespaces or their inotify limit are not
              available here; the other cases run anyway.
  3. lines    max_line 4KiB; a file of good lines mixed with over-long lines
              (5 KiB, 4097 bytes, 1 MiB at once and 1 MiB written in 64 KiB
              pieces), NUL bytes, invalid UTF-8, control characters and binary
              junk, next to a normal file: the normal file's lines and the
              good lines all arrive once, a line of exactly 4096 bytes is an
              event, no event is longer than the cap, the sink is strict JSON,
              the bad file is not logged per line, and the over-long lines are
              reported in the log (once, or twice with a summary at stop).
  4. replaced a followed file replaced by a directory, then by a FIFO, and
              another replaced directly by a FIFO, for several glob and stat
              intervals each: the loop is not blocked (a steady file in the
              same glob keeps arriving, line after line), each name is logged
              as ignored exactly once, and once the names are regular files
              again they are followed (lines, then appends). Then a restart
              whose checkpoint names a file that is now a FIFO (and a FIFO
              where its rotated sibling would be): those are opened by name,
              klaxon starts anyway, logs the name once, follows the rest.
  5. vanish   a 24 MB file moved into the glob and unlinked while klaxon is
              reading it (klaxon's read count, /proc/PID/io, shows it is past
              2 MB and not at the end): every one of its lines still arrives,
              once, and klaxon reads it to its last byte before closing it; a
              16 MB file truncated to 0 mid-read, then written again: nothing
              comes twice, the new lines arrive; a steady file alongside is
              unaffected.
  6. latedir  the source's directory does not exist at start; it is created
              2 s later with a file in it: its lines arrive, then appends, then
              a second file; "no directory ... yet" is logged exactly once.

Counters: the tailer counts lines, bytes, over-long lines, files and read
errors (struct ingest_tail_stats), but `klaxon run` never reads them
(ingest_tail_get_stats has no caller; /metrics is a later issue), so this
test cannot observe "counted in the metrics" from outside.

Known to fail on the current code (marked "REQUIREMENT NOT MET"): case 3's
over-long lines are never logged by `klaxon run` (see HostileLines.verify).
"""
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, Failure, check, fail, log, main, nginx_line, read_bytes,  # noqa: E402
                    start, stop, tail, tmpdir, wait_for, write, yaml_str)

MAX_LINE = 4096
# Every wait is a guard against a hang, not a timing assertion.
WAIT = 60
WAIT_BIG = 90

_HEAD, _TAIL = nginx_line("\x01", rt=0.01).encode().split(b"\x01")


def line(path):
    """One nginx_timed line (bytes) whose request path is path (str or bytes)."""
    if isinstance(path, str):
        path = path.encode()
    return _HEAD + path + _TAIL


def lines(prefix, lo, hi):
    return b"".join(line("%s%d" % (prefix, i)) for i in range(lo, hi))


def ids(prefix, lo, hi):
    return ["%s%d" % (prefix, i) for i in range(lo, hi)]


def append(path, data):
    with open(path, "ab") as f:
        f.write(data)


# ---------------------------------------------------------------------------
# What klaxon writes: the events sink (read incrementally) and its stderr log.

class Sink:
    """The jsonl events sink, read as it grows by a poller thread: every
    complete line must be strict UTF-8 JSON; events are counted by (source,
    request path)."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.partial = b""
        self.lock = threading.Lock()
        self.count = collections.Counter()
        self.bad = []          # (line number, reason, first bytes)
        self.nlines = 0
        self.stopping = threading.Event()
        self.thread = None

    def poll(self):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.off)
                    data = f.read(64 << 20)
            except FileNotFoundError:
                return
            if not data:
                return
            self.off += len(data)
            data = self.partial + data
            cut = data.rfind(b"\n") + 1
            self.partial = data[cut:]
            for raw in data[:cut].split(b"\n")[:-1]:
                self.nlines += 1
                try:
                    obj = json.loads(raw.decode("utf-8", "strict"))
                    check(isinstance(obj, dict), "not a JSON object")
                    src = obj["source"]
                    path = obj["fields"].get("path")
                except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError,
                        Failure) as e:
                    self.bad.append((self.nlines, str(e), raw[:160]))
                    continue
                self.count[(src, path)] += 1

    def run_poller(self):
        def loop():
            while not self.stopping.is_set():
                self.poll()
                self.stopping.wait(0.05)
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop_poller(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(30)
        self.poll()

    def missing(self, src, paths):
        with self.lock:
            return [p for p in paths if self.count[(src, p)] == 0]

    def paths(self, src):
        with self.lock:
            return {p: n for (s, p), n in self.count.items() if s == src}


class Klaxon:
    def __init__(self, proc, err, sink):
        self.proc, self.err, self.sink = proc, err, sink

    def log_text(self):
        return read_bytes(self.err).decode("utf-8", "replace")

    def log_lines(self, regex):
        r = re.compile(regex)
        return [ln for ln in self.log_text().splitlines() if r.search(ln)]

    def rchar(self):
        """Bytes klaxon has read so far (/proc/PID/io), or None."""
        try:
            with open("/proc/%d/io" % self.proc.pid) as f:
                for ln in f:
                    if ln.startswith("rchar:"):
                        return int(ln.split()[1])
        except OSError:
            return None
        return None

    def wait_lines(self, src, paths, what, deadline=WAIT):
        def done():
            return not self.sink.missing(src, paths)
        try:
            wait_for(done, deadline, what, proc=self.proc, proc_log=self.err)
        except Failure as e:
            m = self.sink.missing(src, paths)
            raise Failure("%s; %d of %d lines missing, e.g. %s" % (e, len(m), len(paths), m[:5]))

    def wait_log(self, regex, what, deadline=WAIT):
        return wait_for(lambda: self.log_lines(regex), deadline, what, proc=self.proc,
                        proc_log=self.err)


def exactly_once(case, k, src, expected, what):
    """Every expected path of source src arrived exactly once."""
    got = k.sink.paths(src)
    missing = [p for p in expected if got.get(p, 0) == 0]
    dup = sorted(p for p in expected if got.get(p, 0) > 1)
    case.expect(not missing, "%s: %d of %d lines never arrived, e.g. %s"
                % (what, len(missing), len(expected), missing[:8]))
    case.expect(not dup, "%s: %d lines arrived more than once, e.g. %s"
                % (what, len(dup), [(p, got[p]) for p in dup[:8]]))


# ---------------------------------------------------------------------------
# Cases. Each has setup() before klaxon starts, run() in its own thread while
# klaxon runs, verify() after klaxon stopped. expect() records a failure and
# goes on; fail()/check()/wait_for() abort the case's run().

class Case:
    name = "?"
    title = "?"

    def __init__(self, d):
        self.d = d
        self.failures = []
        self.notes = []
        self.skipped = None
        self.k = None

    def expect(self, cond, msg):
        if not cond:
            self.failures.append(msg)
            log("[%s] FAILED: %s" % (self.name, msg))
        return cond

    def note(self, msg):
        self.notes.append(msg)
        log("[%s] note: %s" % (self.name, msg))

    def source(self):
        """The YAML of its source in the main klaxon, or None."""
        return None

    def setup(self):
        pass

    def run(self):
        pass

    def verify(self):
        pass


class Many(Case):
    name = "many"
    title = "a glob matching 1,000 files, files created later, appends"
    N, LATE, PER = 1000, 50, 5

    def __init__(self, d):
        super().__init__(d)
        self.dir = os.path.join(d, "many")
        self.expected = []

    def f(self, i):
        return os.path.join(self.dir, "f%04d.log" % i)

    def source(self):
        return "  - {name: many, path: %s, parser: nginx_timed, from: beginning}\n" % yaml_str(
            os.path.join(self.dir, "*.log"))

    def setup(self):
        os.mkdir(self.dir)
        for i in range(self.N):
            with open(self.f(i), "wb") as f:
                f.write(lines("/m/%d/" % i, 0, self.PER))
            self.expected += ids("/m/%d/" % i, 0, self.PER)

    def initial(self):
        return list(self.expected)

    def run(self):
        k = self.k
        k.wait_lines("many", self.expected, "the %d lines of the %d files" % (len(self.expected), self.N))
        log("[many] the %d files are read" % self.N)
        late = range(self.N, self.N + self.LATE)
        for i in late:          # created while klaxon runs: partly, then the rest
            append(self.f(i), lines("/m/%d/" % i, 0, 3))
        for i in late:
            append(self.f(i), lines("/m/%d/" % i, 3, self.PER))
            self.expected += ids("/m/%d/" % i, 0, self.PER)
        k.wait_lines("many", self.expected, "the lines of %d files created later" % self.LATE)
        log("[many] %d files created later are read" % self.LATE)
        rnd = random.Random(6)
        sample = rnd.sample(range(self.N), 100) + rnd.sample(list(late), 10)
        for i in sample:
            append(self.f(i), lines("/m/%d/" % i, self.PER, self.PER + 3))
            self.expected += ids("/m/%d/" % i, self.PER, self.PER + 3)
        k.wait_lines("many", self.expected, "lines appended to %d of the files" % len(sample))
        log("[many] appends to %d files are read" % len(sample))

    def verify(self):
        k = self.k
        exactly_once(self, k, "many", self.expected, "many")
        extra = set(k.sink.paths("many")) - set(self.expected)
        self.expect(not extra, "many: unexpected events %s" % sorted(extra, key=str)[:5])
        opened = k.log_lines(r'tail .*many/\*\.log: following "')
        self.expect(len(opened) == self.N + self.LATE,
                    "many: %d 'following' log lines for %d files (each should be opened once)"
                    % (len(opened), self.N + self.LATE))
        bad = k.log_lines(r"(error|warning): tail .*many/")
        self.expect(not bad, "many: errors or warnings logged: %s" % bad[:5])


class WatchLimit(Case):
    """One klaxon in a user namespace whose user.max_inotify_watches is
    `limit`: 8 (the directory and a few files get a watch, the rest do not)
    or 0 (not even the directory: new files are found by polling only)."""
    N, LATE, PER = 40, 5, 5

    def __init__(self, d, limit, tag):
        super().__init__(d)
        self.limit, self.tag, self.name = limit, tag, tag
        self.title = ("the inotify watch limit reached (user namespace, max_inotify_watches=%d%s)"
                      % (limit, ": not even the directory" if limit == 0 else ""))
        self.dir = os.path.join(d, tag)
        self.expected = []

    def f(self, i):
        return os.path.join(self.dir, "w%02d.log" % i)

    def shell(self):
        return 'echo %d > /proc/sys/user/max_inotify_watches && exec "$0" "$@"' % self.limit

    def probe(self):
        """Why the sub-case cannot run here, or None."""
        if not shutil.which("unshare"):
            return "no unshare(1)"
        # Inside the namespace: lower the limit, then add watches until one fails.
        code = ("import ctypes, os, sys\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "fd = libc.inotify_init1(0)\n"
                "n = 0\n"
                "for name in sorted(os.listdir(sys.argv[1])):\n"
                "    if libc.inotify_add_watch(fd, os.path.join(sys.argv[1], name).encode(), 2) < 0:\n"
                "        break\n"
                "    n += 1\n"
                "print(n)\n")
        pd = os.path.join(self.d, "probe-" + self.tag)
        os.mkdir(pd)
        for i in range(self.limit + 4):
            write(os.path.join(pd, "p%02d" % i), "")
        try:
            r = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", self.shell(),
                                sys.executable, "-c", code, pd],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "unshare failed: %s" % e
        finally:
            shutil.rmtree(pd, ignore_errors=True)
        if r.returncode != 0:
            return ("cannot lower user.max_inotify_watches in a user namespace here: %s"
                    % (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1])
        try:
            n = int(r.stdout.strip())
        except ValueError:
            return "the namespace probe printed %r" % r.stdout
        if n > self.limit:
            return "the kernel does not apply the per-namespace watch limit (%d watches added)" % n
        return None

    def setup(self):
        self.skipped = self.probe()
        if self.skipped:
            return
        os.mkdir(self.dir)
        for i in range(self.N):
            with open(self.f(i), "wb") as f:
                f.write(lines("/w/%d/" % i, 0, self.PER))
            self.expected += ids("/w/%d/" % i, 0, self.PER)
        t = self.tag
        write(os.path.join(self.d, t + "-rules.yml"), RULES % "ns")
        self.cfg = os.path.join(self.d, t + ".yml")
        write(self.cfg, """\
state_dir: %s
listen: off
rule_files: [%s-rules.yml]
sources:
  - {name: ns, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: ev, type: jsonl, path: %s, what: events}
""" % (yaml_str(os.path.join(self.d, t + "-state")), t, yaml_str(os.path.join(self.dir, "*.log")),
            yaml_str(os.path.join(self.d, t + "-events.jsonl"))))

    def start(self):
        t = self.tag
        err = os.path.join(self.d, t + ".err")
        p = start(["unshare", "--user", "--map-root-user", "sh", "-c", self.shell(),
                   KLAXON, "run", "-c", self.cfg],
                  stdout=os.path.join(self.d, t + ".out"), stderr=err)
        self.k = Klaxon(p, err, Sink(os.path.join(self.d, t + "-events.jsonl")))
        self.k.sink.run_poller()

    def run(self):
        k, t = self.k, self.tag
        k.wait_log(r"run: \d+ source", "the namespaced klaxon to start")
        k.wait_lines("ns", self.expected, "the %d files' lines under the watch limit" % self.N)
        log("[%s] the %d files are read" % (t, self.N))
        for i in range(self.N):
            append(self.f(i), lines("/w/%d/" % i, self.PER, self.PER + 2))
            self.expected += ids("/w/%d/" % i, self.PER, self.PER + 2)
        k.wait_lines("ns", self.expected, "lines appended to all %d files (most unwatched)" % self.N)
        log("[%s] appends to all files are read" % t)
        for i in range(self.N, self.N + self.LATE):
            append(self.f(i), lines("/w/%d/" % i, 0, 3))
            self.expected += ids("/w/%d/" % i, 0, 3)
        k.wait_lines("ns", self.expected, "%d files created under the watch limit" % self.LATE)
        for i in range(self.N + self.LATE):
            append(self.f(i), lines("/w/%d/" % i, 10, 11))
            self.expected += ids("/w/%d/" % i, 10, 11)
        k.wait_lines("ns", self.expected, "one more line in each of the %d files" % (self.N + self.LATE))
        log("[%s] files created later and appends are read" % t)

    def verify(self):
        k, t = self.k, self.tag
        rc = stop(k.proc, timeout=20)
        k.sink.stop_poller()
        self.expect(rc == 0, "%s: klaxon in the namespace exited %s on SIGTERM; stderr:\n%s"
                    % (t, rc, tail(read_bytes(k.err))))
        exactly_once(self, k, "ns", self.expected, t)
        self.expect(not k.sink.bad, "%s: invalid events sink lines: %s" % (t, k.sink.bad[:3]))
        fallback = k.log_lines(r"inotify.*(checking every|instead)")
        self.expect(len(fallback) == 1,
                    "%s: expected one log line saying inotify cannot watch and files are "
                    "checked on a timer instead, found %d: %s" % (t, len(fallback), fallback[:5]))
        noisy = k.log_lines(r"inotify")
        self.expect(len(noisy) <= 1, "%s: inotify is logged %d times (per file?): %s"
                    % (t, len(noisy), noisy[:5]))
        if fallback:
            log("[%s] the fallback line: %s" % (t, fallback[0]))
            why = re.search(r"with inotify \((.*?)\)", fallback[0])
            if why and not re.search(r"(?i)limit|max_user_watches|max_inotify", why.group(1)):
                self.note("the line gives the reason as %r; it does not name the watch limit "
                          "(fs.inotify.max_user_watches)" % why.group(1))


class HostileLines(Case):
    name = "lines"
    title = "over-long lines, NUL bytes, invalid UTF-8 and junk next to a normal file"

    def __init__(self, d):
        super().__init__(d)
        self.dir = os.path.join(d, "hostile")
        self.normal = os.path.join(self.dir, "normal.log")
        self.bad = os.path.join(self.dir, "bad.log")
        self.expected_normal = ids("/h/n/", 0, 50)
        self.expected_good = []
        self.overlong = 0
        self.hostile = 0

    def source(self):
        return ("  - {name: hostile, path: %s, parser: nginx_timed, from: beginning, max_line: 4KiB}\n"
                % yaml_str(os.path.join(self.dir, "*.log")))

    def setup(self):
        os.mkdir(self.dir)
        with open(self.normal, "wb") as f:
            f.write(lines("/h/n/", 0, 50))
        rnd = random.Random(42)
        parts = []
        for i in range(40):
            parts.append(line("/h/g/%d" % i))
            self.expected_good.append("/h/g/%d" % i)
            k = i % 8
            if k == 0:      # over the cap: a well-formed line with a 5 KiB path
                parts.append(line("/h/long/%d/%s" % (i, "x" * 5000)))
                self.overlong += 1
            elif k == 1:    # NUL bytes inside a line, and a line of NULs
                parts.append(line(b"/h/n\x00ul/%d" % i).replace(b"e2e/1.0", b"e2e\x00/1.0"))
                parts.append(b"\x00" * 300 + b"\n")
                self.hostile += 2
            elif k == 2:    # invalid UTF-8: overlong forms, a surrogate, 0xFF, a cut sequence
                parts.append(line(b"/h/utf/%d/\xff\xfe\xc0\xaf\xed\xa0\x80\xe2\x82" % i))
                parts.append(b"\xc3\x28 \xa0\xa1 \xf0\x28\x8c\xbc\n")
                self.hostile += 2
            elif k == 3:    # 1 MiB at once, then one byte over the cap
                if i == 3:
                    parts.append(b"A" * (1 << 20) + b"\n")
                    self.overlong += 1
                body = line("/h/over/%d/" % i)
                parts.append(line("/h/over/%d/%s" % (i, "y" * (MAX_LINE + 2 - len(body)))))
                self.overlong += 1
            elif k == 4:    # exactly the cap: handed out whole, an event
                body = line("/h/edge/%d/" % i)
                p = "/h/edge/%d/%s" % (i, "z" * (MAX_LINE + 1 - len(body)))
                parts.append(line(p))
                check(len(line(p)) == MAX_LINE + 1, "edge line is not max_line long")
                self.expected_good.append(p)
            elif k == 5:    # binary junk, no newline inside
                parts.append(bytes(b for b in rnd.randbytes(3000) if b != 10) + b"\n")
                self.hostile += 1
            elif k == 6:    # control characters
                parts.append(line("/h/ctl/%d/\x1b[31m\x07\x08\x7f\x0b\x0c" % i))
                parts.append(b"\r\r\r\x1b]0;title\x07\n")
                self.hostile += 2
        with open(self.bad, "wb") as f:
            f.write(b"".join(parts))

    def initial(self):
        return self.expected_normal + self.expected_good

    def run(self):
        k = self.k
        k.wait_lines("hostile", self.expected_normal + self.expected_good,
                     "the normal file and the good lines of the bad one")
        log("[lines] both files are read")
        # A second 1 MiB line, written in 64 KiB pieces: klaxon reads its start,
        # cuts it, and must skip the rest across reads up to its newline.
        with open(self.bad, "ab") as f:
            for j in range(16):
                f.write(b"B" * (64 << 10))
                f.flush()
                append(self.normal, lines("/h/n/", 50 + j, 51 + j))
                time.sleep(0.05)
            f.write(b"\n")
            f.write(lines("/h/g2/", 0, 10))
        self.overlong += 1
        self.expected_normal += ids("/h/n/", 50, 66)
        self.expected_good += ids("/h/g2/", 0, 10)
        k.wait_lines("hostile", self.expected_normal + self.expected_good,
                     "the lines after a 1 MiB line written in pieces, and the normal file's")
        log("[lines] the lines after the second 1 MiB line are read")
        # Give a per-line or per-interval logger time to show itself.
        t = time.monotonic()
        wait_for(lambda: time.monotonic() - t > 3, 10, "a few stat intervals")

    def verify(self):
        k = self.k
        exactly_once(self, k, "hostile", self.expected_normal, "lines: the normal file")
        exactly_once(self, k, "hostile", self.expected_good, "lines: the good lines of the bad file")
        got = k.sink.paths("hostile")
        longest = max((len(p.encode("utf-8", "surrogatepass")) for p in got if isinstance(p, str)), default=0)
        self.expect(longest <= MAX_LINE, "lines: an event's path is %d bytes, over max_line" % longest)
        self.expect(not k.sink.bad, "lines: %d events sink lines are not strict JSON, e.g. %s"
                    % (len(k.sink.bad), k.sink.bad[:3]))
        # Not per line: the bad file holds dozens of hostile and over-long lines.
        about = k.log_lines(re.escape(self.bad))
        self.expect(len(about) <= 3, "lines: %d log lines name the bad file, which holds %d "
                    "hostile and %d over-long lines (per line?): %s"
                    % (len(about), self.hostile, self.overlong, about[:6]))
        # The over-long lines are reported, once (a summary at stop may follow).
        # FAILS on the current code: `klaxon run` never logs a cut line (the
        # tailer only counts it in ingest_tail_stats.too_long, which nothing
        # reads), and the parse errors they cause are reported only every 60 s
        # (REPORT_INTERVAL), never at stop.
        cut = k.log_lines(r"(?i)too long|longer than|over-?long|max_line|\bcut\b|truncat.*line")
        cut = [c for c in cut if "hostile" in c]
        self.expect(1 <= len(cut) <= 2,
                    "lines: REQUIREMENT NOT MET: %d over-long lines (> max_line %d) were read, "
                    "and klaxon logged %d lines about them (expected 1, or 2 with a summary at "
                    "stop): %s" % (self.overlong, MAX_LINE, len(cut), cut[:4]))
        pe = k.log_lines(r"source 'hostile'.*did not match")
        if not pe:
            self.note("no parse-error report for source 'hostile' in this run: "
                      "`run` reports them every 60 s and not at stop")


class Replaced(Case):
    name = "replaced"
    title = "a followed file replaced by a directory, then a FIFO, then a file again"
    HOLD = 6.5   # > 3 glob intervals (2 s) and 6 stat intervals (1 s)

    def __init__(self, d):
        super().__init__(d)
        self.dir = os.path.join(d, "swap")
        self.steady = os.path.join(self.dir, "steady.log")
        self.victim = os.path.join(self.dir, "victim.log")
        self.fifo = os.path.join(self.dir, "fifo.log")
        self.expected = ids("/s/st/", 0, 5) + ids("/s/v1/", 0, 5) + ids("/s/f1/", 0, 5)
        self.nsteady = 5

    def source(self):
        return "  - {name: swap, path: %s, parser: nginx_timed, from: beginning}\n" % yaml_str(
            os.path.join(self.dir, "*.log"))

    def setup(self):
        os.mkdir(self.dir)
        write(self.steady, lines("/s/st/", 0, 5).decode())
        write(self.victim, lines("/s/v1/", 0, 5).decode())
        write(self.fifo, lines("/s/f1/", 0, 5).decode())

    def initial(self):
        return list(self.expected)

    def hold(self, what):
        """For HOLD seconds, a line to the steady file every 0.25 s, each
        awaited: the loop keeps serving the glob's other files."""
        t0 = time.monotonic()
        for _ in range(200):
            if time.monotonic() - t0 > self.HOLD:
                break
            p = "/s/st/%d" % self.nsteady
            self.nsteady += 1
            append(self.steady, line(p))
            self.expected.append(p)
            self.k.wait_lines("swap", [p], "the steady file's line %s while %s" % (p, what), deadline=30)
            time.sleep(0.25)

    def run(self):
        k = self.k
        k.wait_lines("swap", self.expected, "the three files' first lines")
        os.unlink(self.victim)
        os.mkdir(self.victim)
        os.unlink(self.fifo)
        os.mkfifo(self.fifo)
        log("[replaced] victim.log is a directory, fifo.log a FIFO")
        self.hold("victim.log is a directory and fifo.log a FIFO")
        os.rmdir(self.victim)
        os.mkfifo(self.victim)
        log("[replaced] victim.log is a FIFO")
        self.hold("victim.log and fifo.log are FIFOs")
        os.unlink(self.victim)
        write(self.victim, lines("/s/v2/", 0, 5).decode())
        os.unlink(self.fifo)
        write(self.fifo, lines("/s/f2/", 0, 5).decode())
        self.expected += ids("/s/v2/", 0, 5) + ids("/s/f2/", 0, 5)
        log("[replaced] both are regular files again")
        k.wait_lines("swap", self.expected, "the lines of victim.log and fifo.log, regular again")
        append(self.victim, lines("/s/v2/", 5, 8))
        append(self.fifo, lines("/s/f2/", 5, 8))
        self.expected += ids("/s/v2/", 5, 8) + ids("/s/f2/", 5, 8)
        k.wait_lines("swap", self.expected, "appends to victim.log and fifo.log, regular again")
        log("[replaced] both are followed again")

    def verify(self):
        k = self.k
        exactly_once(self, k, "swap", self.expected, "replaced")
        v = k.log_lines(r'ignoring "%s"' % re.escape(self.victim))
        f = k.log_lines(r'ignoring "%s"' % re.escape(self.fifo))
        self.expect(len(v) == 1 and "a directory" in v[0],
                    "replaced: victim.log (a directory, then a FIFO, for %.0f s each) should be "
                    "logged as ignored once, found %d: %s" % (self.HOLD, len(v), v))
        self.expect(len(f) == 1 and "a FIFO" in f[0],
                    "replaced: fifo.log (a FIFO for %.0f s) should be logged as ignored once, "
                    "found %d: %s" % (2 * self.HOLD, len(f), f))
        if len(v) == 1:
            self.note("victim.log's later FIFO phase is not logged (problems are reported once "
                      "per name, for the process's life)")
        for p in (self.victim, self.fifo):
            n = len(k.log_lines(r'following "%s"' % re.escape(p)))
            self.expect(n == 2, "replaced: %s followed %d times (expected 2: at start and as "
                        "a regular file again)" % (os.path.basename(p), n))
        errs = k.log_lines(r"error: tail .*swap/")
        self.expect(not errs, "replaced: errors logged: %s" % errs[:5])

    def restart(self, config):
        """After the stop: the checkpoint names victim.log, now a FIFO, and a
        FIFO sibling victim.log.1 is where a rotated file would be looked for.
        Restoring opens both by name (no stat first): klaxon must start (the
        open is O_NONBLOCK), ignore them, log the name once and follow the rest."""
        os.unlink(self.victim)
        os.mkfifo(self.victim)
        os.mkfifo(self.victim + ".1")
        events = os.path.join(self.d, "events-restart.jsonl")
        cfg = os.path.join(self.d, "klaxon-restart.yml")
        write(cfg, config(events))
        err = os.path.join(self.d, "klaxon-restart.err")
        p = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(self.d, "klaxon-restart.out"),
                  stderr=err)
        k = Klaxon(p, err, Sink(events))
        k.sink.run_poller()
        try:
            k.wait_log(r"run: \d+ source", "klaxon to start again, the checkpoint naming a FIFO",
                       deadline=30)
            append(self.steady, line("/s/st/restart"))
            k.wait_lines("swap", ["/s/st/restart"], "a line of the steady file after the restart")
            log("[replaced] restarted with victim.log a FIFO: not blocked")
        finally:
            rc = stop(p, timeout=10)
            k.sink.stop_poller()
        self.expect(rc == 0, "replaced: klaxon restarted over a FIFO exited %s on SIGTERM" % rc)
        v = k.log_lines(r'ignoring "%s"' % re.escape(self.victim))
        self.expect(len(v) == 1 and "a FIFO" in v[0],
                    "replaced: after the restart, victim.log (a FIFO) should be logged as "
                    "ignored once, found %d: %s" % (len(v), v))
        self.expect(not k.sink.bad, "replaced: invalid events sink lines after the restart: %s"
                    % k.sink.bad[:3])


class Vanish(Case):
    name = "vanish"
    title = "a 24 MB file unlinked mid-read, a 16 MB one truncated to 0 mid-read"
    UNLINK_MB, TRUNC_MB = 24, 16
    MID = 2 << 20   # act once klaxon has read this much of the file

    def __init__(self, d):
        super().__init__(d)
        self.dir = os.path.join(d, "big")
        self.steady = os.path.join(self.dir, "steady.log")
        self.steady_ids = ids("/b/st/", 0, 5)
        self.unlinked = os.path.join(self.dir, "unlinked.log")
        self.truncated = os.path.join(self.dir, "truncated.log")
        self.u_read = self.t_read = None
        self.t_started = False   # the truncation variant ran (verify it)

    def source(self):
        return "  - {name: big, path: %s, parser: nginx_timed, from: beginning}\n" % yaml_str(
            os.path.join(self.dir, "*.log"))

    def build(self, name, prefix, mb):
        path = os.path.join(self.dir, name + ".tmp")   # outside the glob until renamed
        n = (mb << 20) // len(line(prefix + "0000000"))
        data = lines(prefix, 0, n)
        with open(path, "wb") as f:
            f.write(data)
        return path, n, len(data)

    def setup(self):
        os.mkdir(self.dir)
        write(self.steady, lines("/b/st/", 0, 5).decode())
        self.u_tmp, self.u_n, self.u_size = self.build("unlinked", "/b/u/", self.UNLINK_MB)
        self.t_tmp, self.t_n, self.t_size = self.build("truncated", "/b/t/", self.TRUNC_MB)
        self.u_ids = ids("/b/u/", 0, self.u_n)
        self.t_ids = ids("/b/t/", 0, self.t_n)
        self.t2_ids = ids("/b/t2/", 0, 200)
        log("[vanish] built %d lines (%d bytes) and %d lines (%d bytes)"
            % (self.u_n, self.u_size, self.t_n, self.t_size))

    def initial(self):
        return list(self.steady_ids)

    def mid_read(self, tmp, path, act, what):
        """Move tmp into the glob as path; once klaxon follows it and has read
        MID bytes since (its read count, /proc/PID/io; else its first event),
        act(). Returns how much klaxon had read since the rename when act()
        ran (None: unknown)."""
        k = self.k
        r0 = k.rchar()
        os.rename(tmp, path)
        k.wait_log(r'following "%s"' % re.escape(path), "klaxon to follow %s" % what)
        if r0 is None:
            first = "/b/u/0" if "unlinked" in path else "/b/t/0"
            k.wait_lines("big", [first], "klaxon to start reading %s" % what)
            act()
            return None
        wait_for(lambda: (k.rchar() or 0) - r0 >= self.MID, WAIT,
                 "klaxon to read %d bytes of %s" % (self.MID, what), interval=0.001,
                 proc=k.proc, proc_log=k.err)
        act()
        return k.rchar() - r0

    def run(self):
        k = self.k
        stop_writer = threading.Event()

        def writer():   # the file next to them, a line every 0.2 s
            for j in range(5, 600):
                if stop_writer.is_set():
                    break
                append(self.steady, line("/b/st/%d" % j))
                self.steady_ids.append("/b/st/%d" % j)
                stop_writer.wait(0.2)
        wt = threading.Thread(target=writer, daemon=True)
        wt.start()
        try:
            self.u_read = self.mid_read(self.u_tmp, self.unlinked, lambda: os.unlink(self.unlinked), "the 24 MB file")
            log("[vanish] unlinked the 24 MB file after klaxon read %s bytes" % self.u_read)
            k.wait_lines("big", self.u_ids, "every line of the unlinked file", deadline=WAIT_BIG)
            self.done = k.wait_log(r'done with "%s" \(inode \d+\) at offset \d+' % re.escape(self.unlinked),
                                   "klaxon to close the unlinked file once read")
            log("[vanish] %s" % self.done[0])

            self.t_started = True

            def trunc():
                os.truncate(self.truncated, 0)
                append(self.truncated, lines("/b/t2/", 0, 200))
            self.t_read = self.mid_read(self.t_tmp, self.truncated, trunc, "the 16 MB file")
            log("[vanish] truncated the 16 MB file after klaxon read %s bytes" % self.t_read)
            k.wait_lines("big", self.t2_ids, "the lines written after the truncation", deadline=WAIT_BIG)
            k.wait_log(r'"%s" \(inode \d+\) was truncated' % re.escape(self.truncated),
                       "klaxon to log the truncation")
        finally:
            stop_writer.set()
            wt.join(10)
        k.wait_lines("big", self.steady_ids, "the steady file's lines")

    def verify(self):
        k = self.k
        if self.u_read is not None:
            if self.u_read >= self.u_size - (1 << 20):
                self.note("klaxon had read %d of %d bytes when the file was unlinked: not "
                          "mid-read this time" % (self.u_read, self.u_size))
        if self.t_read is not None and self.t_read >= self.t_size - (1 << 20):
            self.note("klaxon had read %d of %d bytes when the file was truncated: not "
                      "mid-read this time" % (self.t_read, self.t_size))
        exactly_once(self, k, "big", self.u_ids, "vanish: the unlinked file")
        done = k.log_lines(r'done with "%s" \(inode \d+\) at offset (\d+)' % re.escape(self.unlinked))
        self.expect(len(done) == 1 and done[0].endswith("at offset %d" % self.u_size),
                    "vanish: the unlinked file should be closed once at its end (offset %d): %s"
                    % (self.u_size, done))
        exactly_once(self, k, "big", self.steady_ids, "vanish: the steady file")
        errs = k.log_lines(r"error: tail .*big/")
        self.expect(not errs, "vanish: errors logged: %s" % errs[:5])
        if not self.t_started:
            return
        got = k.sink.paths("big")
        dup = [p for p in self.t_ids if got.get(p, 0) > 1]
        self.expect(not dup, "vanish: lines of the truncated file read twice: %s" % dup[:5])
        log("[vanish] %d of the truncated file's %d lines were read before the truncation"
            % (sum(1 for p in self.t_ids if got.get(p)), self.t_n))
        exactly_once(self, k, "big", self.t2_ids, "vanish: lines after the truncation")
        tr = k.log_lines(r'"%s" \(inode \d+\) was truncated' % re.escape(self.truncated))
        self.expect(len(tr) == 1, "vanish: the truncation logged %d times: %s" % (len(tr), tr[:3]))


class LateDir(Case):
    name = "latedir"
    title = "the log directory does not exist at start, created 2 s later"

    def __init__(self, d):
        super().__init__(d)
        self.dir = os.path.join(d, "late", "app")
        self.expected = []

    def source(self):
        return "  - {name: late, path: %s, parser: nginx_timed, from: beginning}\n" % yaml_str(
            os.path.join(self.dir, "*.log"))

    def run(self):
        k = self.k
        t = self.started + 2.0
        k.wait_log(r'no directory "%s" yet' % re.escape(self.dir),
                   "klaxon to log that the directory is missing")
        wait_for(lambda: time.monotonic() >= t, 10, "2 s after klaxon started")
        os.makedirs(self.dir)
        a = os.path.join(self.dir, "app.log")
        with open(a, "wb") as f:
            f.write(lines("/l/a/", 0, 20))
        self.expected += ids("/l/a/", 0, 20)
        log("[latedir] created the directory with a file")
        k.wait_lines("late", self.expected, "the lines of the file in the late directory")
        append(a, lines("/l/a/", 20, 30))
        self.expected += ids("/l/a/", 20, 30)
        k.wait_lines("late", self.expected, "lines appended in the late directory")
        with open(os.path.join(self.dir, "b.log"), "wb") as f:
            f.write(lines("/l/b/", 0, 5))
        self.expected += ids("/l/b/", 0, 5)
        k.wait_lines("late", self.expected, "a second file in the late directory")
        log("[latedir] read the late directory's files")

    def verify(self):
        k = self.k
        exactly_once(self, k, "late", self.expected, "latedir")
        missing = k.log_lines(r'no directory "%s" yet' % re.escape(self.dir))
        self.expect(len(missing) == 1, "latedir: expected one 'no directory ... yet' log line, "
                    "found %d: %s" % (len(missing), missing[:5]))
        errs = k.log_lines(r"(error|warning): tail .*late/")
        self.expect(not errs, "latedir: errors or warnings logged: %s" % errs[:5])


RULES = """\
rules:
  - alert: Anything
    source: %s
    expr: count() > 100000000
    window: 1m
"""


def body():
    d = tmpdir()
    many, hostile = Many(d), HostileLines(d)
    limits = [WatchLimit(d, 8, "limit"), WatchLimit(d, 0, "limit0")]
    replaced, vanish, late = Replaced(d), Vanish(d), LateDir(d)
    cases = [many] + limits + [hostile, replaced, vanish, late]
    nums = ["1", "2a", "2b", "3", "4", "5", "6"]
    for c in cases:
        c.setup()
    for c in limits:
        if c.skipped:
            log("[%s] SKIPPED: %s" % (c.name, c.skipped))

    events = os.path.join(d, "events.jsonl")
    write(os.path.join(d, "rules.yml"), RULES % "many")

    def config(sink):
        return ("state_dir: %s\nlisten: off\nrule_files: [rules.yml]\nsources:\n%s"
                "sinks:\n  - {name: ev, type: jsonl, path: %s, what: events}\n"
                % (yaml_str(os.path.join(d, "state")), "".join(c.source() or "" for c in cases),
                   yaml_str(sink)))
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, config(events))
    err = os.path.join(d, "klaxon.err")
    proc = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "klaxon.out"), stderr=err)
    k = Klaxon(proc, err, Sink(events))
    k.sink.run_poller()
    for c in cases:
        if c not in limits:
            c.k = k
    late.started = time.monotonic()
    for c in limits:
        if not c.skipped:
            c.start()
    k.wait_log(r"run: \d+ source", "klaxon to start")

    # The files present at start, read from the beginning.
    initial = [("many", many.initial()), ("hostile", hostile.initial()),
               ("swap", replaced.initial()), ("big", vanish.initial())]
    for src, paths in initial:
        k.wait_lines(src, paths, "the lines present at start in source %s" % src)
    log("the lines present at start arrived; running the cases")

    def run_case(c):
        try:
            c.run()
        except Failure as e:
            c.failures.append("%s: %s" % (c.name, e))
            log("[%s] FAILED: %s" % (c.name, e))
        except Exception as e:   # a bug in the test itself: report, do not hang
            c.failures.append("%s: %s: %s" % (c.name, type(e).__name__, e))
            log("[%s] ERROR: %r" % (c.name, e))
    threads = []
    for c in cases:
        if c.skipped:
            continue
        t = threading.Thread(target=run_case, args=(c,), daemon=True, name=c.name)
        t.start()
        threads.append((c, t))
    t_end = time.monotonic() + 150
    for c, t in threads:
        t.join(max(1.0, t_end - time.monotonic()))
        if t.is_alive():
            c.failures.append("%s: its steps did not finish in time" % c.name)

    # A line read twice would show up now.
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 2, 10, "a settling pause")
    alive = proc.poll() is None
    rc = stop(proc, timeout=20)
    k.sink.stop_poller()
    for c in [c for c in cases if c not in limits] + limits:
        if c.skipped:
            continue
        try:
            c.verify()
        except Exception as e:   # Failure, or a bug in the test: report it with the case
            c.failures.append("%s (verify): %s: %s" % (c.name, type(e).__name__, e))
    if alive and not replaced.failures:
        try:
            replaced.restart(config)
        except Failure as e:
            replaced.failures.append("replaced (restart): %s" % e)

    general = []
    if not alive:
        general.append("klaxon died during the test (status %s)" % rc)
    elif rc != 0:
        general.append("klaxon exited %s on SIGTERM" % rc)
    if k.sink.bad:
        general.append("%d events sink lines are not strict JSON, e.g. %s"
                       % (len(k.sink.bad), k.sink.bad[:3]))
    text = k.log_text().splitlines()
    log("klaxon wrote %d events; %d log lines" % (k.sink.nlines, len(text)))
    # Nothing is logged per line: beside one "following" per file opened, a
    # few dozen lines at most, for a quarter of a million lines read.
    other = [ln for ln in text if not re.search(r': following "', ln)]
    if len(other) > 150:
        general.append("klaxon logged %d lines besides 'following' (per line?), e.g. %s"
                       % (len(other), other[:5]))

    print("\n== summary", flush=True)
    failed = []
    for num, c in zip(nums, cases):
        if c.skipped:
            verdict = "SKIP"
        elif c.failures:
            verdict = "FAIL"
            failed.append(c.name)
        else:
            verdict = "PASS"
        print("%s  case %s (%s): %s%s" % (verdict, num, c.name, c.title,
                                          (": " + c.skipped) if c.skipped else ""), flush=True)
        for m in c.failures:
            print("        " + m.replace("\n", "\n        "), flush=True)
        for m in c.notes:
            print("        note: " + m, flush=True)
    for m in general:
        print("FAIL  " + m, flush=True)
    if failed or general:
        rest = "\n".join(other[-30:])
        print("klaxon stderr (its last lines but 'following'):\n" + rest, flush=True)
        fail("%d case(s) failed: %s%s" % (len(failed), ", ".join(failed),
                                           "; " + "; ".join(general) if general else ""))
    for num, c in zip(nums, cases):
        if c.skipped:
            print("(case %s was skipped: %s)" % (num, c.skipped), flush=True)


if __name__ == "__main__":
    main(body)
