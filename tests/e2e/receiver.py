#!/usr/bin/env python3
"""receiver.py — a webhook receiver on 127.0.0.1 for klaxon's notification tests.

As a program (python3 standard library only):

    receiver.py --log FILE [--port N] [--port-file FILE] [--control FILE]
                [--rule JSON ...]

It answers every request on 127.0.0.1 (HTTP/1.1, keep-alive, `Expect:
100-continue`, chunked bodies) and appends one JSON line per request to
--log, flushed before the answer is sent:

    {"seq": 1, "t_ms": 1700000000123.4, "method": "POST", "path": "/hook",
     "query": "", "headers": {"content-type": "application/json", ...},
     "body_b64": "...", "status": 200, "retry_after": null}

`t_ms` is the wall clock (ms since the epoch) once the whole body was read:
the instant the receiver holds the notification. Header names are lower
case. The body is kept as base64 so that bytes that are not UTF-8 are
recorded as they came, not repaired.

What it answers is decided per request by rules, first match wins; a request
no rule takes is answered 200 `{"status":"ok"}`. A rule is a JSON object:

    {"path": "/hook",         # exact path, or "*" (default) for any
     "status": 503,           # the answer
     "count": 3,              # for the next 3 requests it takes (default: no limit)
     "while_exists": "FILE",  # only while FILE exists (default: always)
     "retry_after": "1",      # a Retry-After header (default: none)
     "body": "text"}          # the answer's body (default: a short JSON)

Rules come from --rule (repeatable, fixed for the process's life) and from the
--control file (a JSON list of rules; re-read when it changes, so a test can
swap them while klaxon runs; a rule's count restarts when its text changes).

--port 0 (the default) binds a free port; the port in use is written to
--port-file (atomically) once the server listens, which is how a test knows it
is up.

As a module, `Receiver` starts this program through e2elib (so it is killed
with everything else the test started) and reads what it recorded.
"""

import argparse
import base64
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time

# ---------------------------------------------------------------- the program


class Rules:
    def __init__(self, fixed, control):
        self.fixed = fixed
        self.control = control
        self.control_sig = None
        self.control_rules = []
        self.used = {}   # rule text → requests it took
        self.lock = threading.Lock()

    def _reload(self):
        if not self.control:
            return
        try:
            st = os.stat(self.control)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            sig = None
        if sig == self.control_sig:
            return
        self.control_sig = sig
        rules = []
        if sig is not None:
            try:
                with open(self.control, encoding="utf-8") as f:
                    loaded = json.load(f)
                rules = loaded if isinstance(loaded, list) else [loaded]
            except (OSError, ValueError) as e:
                print("receiver: cannot read %s: %s" % (self.control, e), file=sys.stderr, flush=True)
                rules = self.control_rules
        self.control_rules = rules

    def decide(self, path):
        """(status, retry_after or None, body bytes) for a request to path."""
        with self.lock:
            self._reload()
            for rule in list(self.fixed) + list(self.control_rules):
                want = rule.get("path", "*")
                if want != "*" and want != path:
                    continue
                flag = rule.get("while_exists")
                if flag and not os.path.exists(flag):
                    continue
                key = json.dumps(rule, sort_keys=True)
                count = rule.get("count")
                if count is not None and self.used.get(key, 0) >= int(count):
                    continue
                self.used[key] = self.used.get(key, 0) + 1
                status = int(rule.get("status", 200))
                ra = rule.get("retry_after")
                body = rule.get("body")
                if body is None:
                    body = json.dumps({"status": "receiver rule", "code": status})
                return status, (str(ra) if ra is not None else None), body.encode("utf-8")
        return 200, None, b'{"status":"ok"}'


class Recorder:
    def __init__(self, path):
        self.seq = 0
        try:   # a restarted receiver goes on counting
            with open(path, "rb") as f:
                self.seq = f.read().count(b"\n")
        except FileNotFoundError:
            pass
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.f.write(json.dumps(rec, sort_keys=True) + "\n")
            self.f.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "klaxon-e2e-receiver/1"

    def log_message(self, fmt, *args):   # quiet: the JSON lines are the log
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _any(self):
        body = self._read_body()
        t_ms = time.time() * 1000.0
        path, _, query = self.path.partition("?")
        status, retry_after, answer = self.server.rules.decide(path)
        self.server.recorder.write({
            "t_ms": t_ms,
            "method": self.command,
            "path": path,
            "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_b64": base64.b64encode(body).decode("ascii"),
            "status": status,
            "retry_after": retry_after,
        })
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(answer)
        self.wfile.flush()

    do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(argv=None):
    ap = argparse.ArgumentParser(description="webhook receiver for klaxon's tests")
    ap.add_argument("--log", required=True, help="JSON lines, one per request")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="written with the port once listening")
    ap.add_argument("--control", help="a JSON list of answer rules, re-read when it changes")
    ap.add_argument("--rule", action="append", default=[], help="a JSON answer rule (repeatable)")
    a = ap.parse_args(argv)

    srv = None
    for attempt in range(50):   # the port may be in TIME_WAIT or briefly taken
        try:
            srv = Server(("127.0.0.1", a.port), Handler)
            break
        except OSError as e:
            if a.port == 0 or attempt == 49:
                print("receiver: cannot listen on 127.0.0.1:%d: %s" % (a.port, e),
                      file=sys.stderr, flush=True)
                return 2
            time.sleep(0.1)
    srv.rules = Rules([json.loads(r) for r in a.rule], a.control)
    srv.recorder = Recorder(a.log)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


# ---------------------------------------------------------------- the module


class Request:
    """One recorded request."""

    def __init__(self, rec):
        self.rec = rec
        self.seq = rec["seq"]
        self.t_ms = rec["t_ms"]
        self.path = rec["path"]
        self.headers = rec["headers"]
        self.status = rec["status"]
        self.body = base64.b64decode(rec["body_b64"])

    def json(self):
        """The body as strict UTF-8 JSON (raises ValueError otherwise)."""
        return json.loads(self.body.decode("utf-8", "strict"))

    def __repr__(self):
        return "<%s %s → %d: %s>" % (self.rec["method"], self.path, self.status,
                                      self.body[:300].decode("utf-8", "replace"))


class Receiver:
    """The receiver program, started and read by a test.

        r = Receiver(tmp)            # a free port; r.url("/hook")
        r.start()
        r.set_rules([{"path": "/hook", "status": 503, "count": 2}])
        r.requests("/hook")          # [Request, ...] in arrival order
        r.stop(); r.start()          # down, then up again on the same port
    """

    def __init__(self, d, name="receiver", rules=None):
        self.dir = d
        self.name = name
        self.log_path = os.path.join(d, name + ".jsonl")
        self.control = os.path.join(d, name + ".control.json")
        self.port_file = os.path.join(d, name + ".port")
        self.err_path = os.path.join(d, name + ".err")
        self.fixed = list(rules or [])
        self.port = 0
        self.proc = None
        open(self.log_path, "a").close()

    def url(self, path="/"):
        if not self.port:
            raise RuntimeError("the receiver has no port yet: start() it first, or reserve_port()")
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def reserve_port(self):
        """Choose the port now (a free one), e.g. to write a URL into a config
        before the receiver is up."""
        import e2elib
        if not self.port:
            self.port = e2elib.free_port()
        return self.port

    def start(self, deadline_s=20):
        import e2elib
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        argv = [sys.executable, os.path.abspath(__file__), "--log", self.log_path,
                "--port", str(self.port), "--port-file", self.port_file, "--control", self.control]
        for r in self.fixed:
            argv += ["--rule", json.dumps(r)]
        self.proc = e2elib.start(argv, stdout=self.err_path + ".out", stderr=self.err_path)
        e2elib.wait_for(lambda: os.path.exists(self.port_file), deadline_s,
                        "the receiver to listen", interval=0.02, proc=self.proc,
                        proc_log=self.err_path)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        return self

    def stop(self):
        """Stop it: the port is closed (connections are refused) until start()."""
        import e2elib
        if self.proc is not None:
            e2elib.stop(self.proc, timeout=5)
            self.proc = None

    def set_rules(self, rules):
        tmp = self.control + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rules, f)
        os.rename(tmp, self.control)

    def requests(self, path=None):
        """Every complete recorded request (optionally to one path), in order."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue   # a line being written
            r = Request(rec)
            if path is None or r.path == path:
                out.append(r)
        return out

    def accepted(self, path=None):
        """The requests answered 2xx: the notifications delivered."""
        return [r for r in self.requests(path) if 200 <= r.status < 300]


# ---------------------------------------------------------------- test helpers
# Shared by tests/e2e/test_notify_*.py and bench/time_to_page (they import
# this file; e2elib must be importable, i.e. tests/e2e on sys.path).


def nginx_bytes(path, status=200, when=None, ip=b"127.0.0.1", agent=b"klaxon-e2e/1.0",
                referer=b"-", method=b"GET"):
    """One nginx_timed line as bytes; path, agent and referer may be any bytes
    (nginx's `\\xHH` escapes are the caller's to write, or raw bytes)."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("utf-8")
    t = time.gmtime(when if when is not None else time.time())
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t).encode("ascii")
    return (b(ip) + b" - - [" + stamp + b"] \"" + b(method) + b" " + b(path) + b" HTTP/1.1\" "
            + str(int(status)).encode() + b" 15 \"" + b(referer) + b"\" \"" + b(agent)
            + b"\" rt=0.012 urt=\"0.011\"\n")


def append(path, data):
    """Append bytes (or str, or a list of them) in one write, flushed."""
    if isinstance(data, (list, tuple)):
        data = b"".join(x if isinstance(x, bytes) else x.encode("utf-8") for x in data)
    elif isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "ab") as f:
        f.write(data)
        f.flush()


class Klaxon:
    """`klaxon run -c CONFIG` with its stdout (a stdout sink's transitions) and
    stderr in files; each start gets new files (klaxon.N.out / .err)."""

    def __init__(self, d, config_path):
        self.dir = d
        self.config = config_path
        self.proc = None
        self.runs = 0
        self.out = self.err = None

    def start(self):
        import e2elib
        self.runs += 1
        self.out = os.path.join(self.dir, "klaxon.%d.out" % self.runs)
        self.err = os.path.join(self.dir, "klaxon.%d.err" % self.runs)
        self.proc = e2elib.start([e2elib.KLAXON, "run", "-c", self.config],
                                 stdout=self.out, stderr=self.err)
        self.wait_log("run: ", "klaxon to start")
        return self

    def stop(self):
        """SIGTERM; returns the exit status."""
        import e2elib
        rc = e2elib.stop(self.proc, timeout=15)
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, no goodbye."""
        import e2elib
        import signal
        rc = e2elib.stop(self.proc, sig=signal.SIGKILL, timeout=15)
        self.proc = None
        return rc

    def stderr(self):
        import e2elib
        return e2elib.read_bytes(self.err).decode("utf-8", "replace")

    def transitions(self, alert=None, status=None):
        import e2elib
        return [a for a in e2elib.alerts(self.out, "klaxon stdout", complete_only=True)
                if (alert is None or a["alert"] == alert)
                and (status is None or a["status"] == status)]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, pred, what, deadline_s=30, interval=0.05):
        import e2elib
        return e2elib.wait_for(pred, deadline_s, what, interval=interval, proc=self.proc,
                               proc_log=self.err)

    def wait_log(self, text, what=None, deadline_s=30, count=1):
        return self.wait(lambda: self.stderr().count(text) >= count,
                         what or ("%r in klaxon's log" % text), deadline_s)

    def wait_transition(self, alert, status, what=None, deadline_s=30, pred=None, count=1):
        def got():
            ts = [t for t in self.transitions(alert, status) if pred is None or pred(t)]
            return ts if len(ts) >= count else None
        return self.wait(got, what or "a %s transition of %s on klaxon's stdout" % (status, alert),
                         deadline_s)

    def cli(self, *args, timeout=60):
        """Another klaxon command on the same config: (rc, stdout, stderr) as text."""
        import e2elib
        argv = [e2elib.KLAXON] + list(args) + ["-c", self.config]
        rc, out, err = e2elib.run(argv, timeout=timeout)
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def webhook_alerts(req):
    """The alerts of an Alertmanager webhook payload, as (alertname, path,
    status) tuples."""
    body = req.json()
    return [(a["labels"].get("alertname"), a["labels"].get("path"), a["status"])
            for a in body.get("alerts", [])]


if __name__ == "__main__":
    sys.exit(serve())
