"""e2elib — what klaxon's end-to-end tests share (python3 standard library only).

A test is a file tests/e2e/test_*.py (or .sh) that exits 0 when it passes, 77
when it must be skipped (a tool is missing), anything else when it fails. It
runs the real klaxon binary against real files and servers on 127.0.0.1, in a
temporary folder that is removed at exit, and kills every process it started
(by its own process id, never by name), including when it is interrupted or
timed out by scripts/test.

Environment (all optional): KLAXON_SRC (the source tree), KLAXON_BIN (the
binary, default build/src/klaxon), GEN_NGINX (bench/gen_nginx, built or
compiled on the fly), KLAXON_KEEP_TMP=1 (keep the temporary folder).
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.environ.get("KLAXON_SRC")
                      or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KLAXON = os.environ.get("KLAXON_BIN") or os.path.join(SRC, "build", "src", "klaxon")

SKIP = 77
_procs = []
_tmpdirs = []


def log(*args):
    print("[%s]" % time.strftime("%H:%M:%S"), *args, flush=True)


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def skip(msg):
    print("SKIP: " + msg, flush=True)
    sys.exit(SKIP)


def _cleanup(grace=10.0):
    for p in list(reversed(_procs)):
        stop(p, timeout=grace, quiet=True)
    del _procs[:]
    for d in _tmpdirs:
        if os.environ.get("KLAXON_KEEP_TMP"):
            print("kept " + d, flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)
    del _tmpdirs[:]


def _on_signal(signum, frame):
    _cleanup(grace=2.0)   # scripts/test's timeout follows up with SIGKILL
    os._exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def main(fn):
    """Run a test's body: Failure → exit 1 with its message; cleanup always."""
    try:
        if not os.access(KLAXON, os.X_OK):
            fail("no klaxon binary at %s (build it: scripts/bootstrap)" % KLAXON)
        log("klaxon binary: %s" % KLAXON)
        fn()
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
        _cleanup()
        sys.exit(1)
    _cleanup()
    print("PASS", flush=True)
    sys.exit(0)


def tmpdir(tag="klaxon-e2e"):
    d = tempfile.mkdtemp(prefix=tag + ".")
    _tmpdirs.append(d)
    return d


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def start(argv, stdout=None, stderr=None, env=None, cwd=None):
    """Start a process in its own session, remembered for the cleanup.
    stdout/stderr: a path (opened for writing) or None (inherited)."""
    outs = []
    for target in (stdout, stderr):
        outs.append(open(target, "wb") if isinstance(target, str) else target)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=outs[0], stderr=outs[1],
                         env=full_env, cwd=cwd, start_new_session=True)
    for f, target in zip(outs, (stdout, stderr)):
        if isinstance(target, str):
            f.close()
    p.argv0 = os.path.basename(argv[0])
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10.0, quiet=False):
    """Signal a process we started and wait for it; SIGKILL (its whole
    session) after `timeout`. Returns its exit status (negative: signal)."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if not quiet:
                log("%s (pid %d) ignored signal %d for %.0f s: killing it"
                    % (p.argv0, p.pid, sig, timeout))
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
    if p in _procs:
        _procs.remove(p)
    return p.returncode


def run(argv, timeout=120, env=None, cwd=None, stdin_bytes=None):
    """Run to completion; returns (returncode, stdout bytes, stderr bytes)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                         start_new_session=True)
    p.argv0 = os.path.basename(argv[0])
    _procs.append(p)
    try:
        out, err = p.communicate(input=stdin_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        _procs.remove(p)
        fail("%s did not finish within %d s; stderr:\n%s"
             % (" ".join(argv), timeout, tail(err)))
    _procs.remove(p)
    return p.returncode, out, err


def tail(data, n=40):
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    lines = data.splitlines()
    return "\n".join(lines[-n:])


def wait_for(pred, deadline_s, what, interval=0.1, proc=None, proc_log=None):
    """Poll pred() until true. The deadline is a guard against a hang, not a
    timing assertion. If proc dies meanwhile, fail with its log."""
    end = time.monotonic() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            fail("%s exited (status %s) while waiting for %s%s" % (
                proc.argv0, proc.returncode, what,
                ("; its stderr:\n" + tail(read_bytes(proc_log))) if proc_log else ""))
        if time.monotonic() > end:
            fail("gave up waiting for %s after %.0f s" % (what, deadline_s))
        time.sleep(interval)


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def json_lines(data, what, complete_only=False):
    """Parse klaxon's output as JSON lines, strictly: UTF-8 (no invalid
    bytes), no control characters inside strings, one object per line.
    complete_only: ignore a last line still being written (no newline)."""
    if isinstance(data, str):
        data = read_bytes(data)
    if complete_only and data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    out = []
    for i, raw in enumerate(data.split(b"\n")):
        if raw == b"" and i == data.count(b"\n"):
            break
        try:
            text = raw.decode("utf-8", "strict")
        except UnicodeDecodeError as e:
            fail("%s line %d is not valid UTF-8 (%s): %r" % (what, i + 1, e, raw[:200]))
        try:
            obj = json.loads(text)
        except ValueError as e:
            fail("%s line %d is not valid JSON (%s): %r" % (what, i + 1, e, raw[:200]))
        check(isinstance(obj, dict), "%s line %d is not a JSON object: %r" % (what, i + 1, raw[:200]))
        out.append(obj)
    return out


def alerts(data, what="alert output", complete_only=False):
    """Alert transitions, each checked for the contract's five keys."""
    out = json_lines(data, what, complete_only)
    for a in out:
        for k in ("at", "status", "alert", "labels", "value"):
            check(k in a, "%s: a transition without %r: %s" % (what, k, json.dumps(a)))
        check(a["status"] in ("firing", "resolved"), "%s: bad status in %s" % (what, json.dumps(a)))
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", a["at"]),
              "%s: `at` is not RFC 3339 UTC: %s" % (what, json.dumps(a)))
        check(isinstance(a["labels"], dict), "%s: labels not an object: %s" % (what, json.dumps(a)))
    return out


def rfc3339(ts):
    """'2023-11-14T22:19:05Z' (or with fractions) → epoch seconds (float)."""
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$", ts)
    check(m, "not an RFC 3339 UTC time: %r" % ts)
    import calendar
    t = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return t + (float(m.group(7)) if m.group(7) else 0.0)


REPLAY_SUMMARY = re.compile(
    r"replay: (\d+) lines, (\d+) events, (\d+) parse errors?, (\d+) too long")


def replay_summary(stderr):
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    m = None
    for m in REPLAY_SUMMARY.finditer(text):
        pass
    check(m, "no replay summary ('klaxon: replay: N lines, N events, N parse errors, "
          "N too long, ...') on stderr:\n" + tail(text))
    return {"lines": int(m.group(1)), "events": int(m.group(2)),
            "parse_errors": int(m.group(3)), "too_long": int(m.group(4))}


_gen = None


def gen_nginx():
    """Path of bench/gen_nginx: $GEN_NGINX, the meson-built one, or compiled
    here from bench/gen_nginx.c into a temporary folder."""
    global _gen
    if _gen:
        return _gen
    for cand in (os.environ.get("GEN_NGINX"), os.path.join(SRC, "build", "bench", "gen_nginx")):
        if cand and os.access(cand, os.X_OK):
            _gen = cand
            return _gen
    d = tmpdir("klaxon-gen")
    exe = os.path.join(d, "gen_nginx")
    rc, out, err = run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-o", exe,
                        os.path.join(SRC, "bench", "gen_nginx.c"), "-lm"])
    check(rc == 0, "cannot compile bench/gen_nginx.c:\n" + tail(err))
    _gen = exe
    return _gen


_gens = {}


def gen_bench(name):
    """Path of bench/NAME (a C generator): the meson-built one, or compiled
    here from bench/NAME.c into a temporary folder."""
    if name in _gens:
        return _gens[name]
    built = os.path.join(SRC, "build", "bench", name)
    if os.access(built, os.X_OK):
        _gens[name] = built
        return built
    d = tmpdir("klaxon-gen")
    exe = os.path.join(d, name)
    rc, out, err = run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-o", exe,
                        os.path.join(SRC, "bench", name + ".c"), "-lm"])
    check(rc == 0, "cannot compile bench/%s.c:\n%s" % (name, tail(err)))
    _gens[name] = exe
    return exe


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def yaml_str(s):
    """A YAML single-quoted scalar."""
    return "'" + s.replace("'", "''") + "'"


def nginx_line(path, status=200, rt=0.05, when=None, ip="127.0.0.1", agent="e2e/1.0"):
    """One nginx_timed line, as nginx writes it."""
    t = time.gmtime(when if when is not None else time.time())
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t)
    return ('%s - - [%s] "GET %s HTTP/1.1" %d 15 "-" "%s" rt=%.3f urt="%.3f"\n'
            % (ip, stamp, path, status, agent, rt, rt))
