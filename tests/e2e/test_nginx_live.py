#!/usr/bin/env python3
"""A real nginx, real requests, `klaxon run` following the access log.

Debian's nginx runs on 127.0.0.1 (a free port) from a config written here,
logging in the nginx_timed format: /ok returns 200, /fail returns 503.
klaxon follows the log with HighErrorRate (ratio(status >= 500) > 5%, window
10s, min_events 20, for 0s, keep_firing_for 0s) and a jsonl events sink.
The test sends 200 requests to /ok, then 100 to /fail mixed with 100 to /ok,
then /ok requests until the alert resolves (bounded), then 2 seconds of load
from wrk (when installed; 2 threads, 8 connections), and asserts:
  - a firing HighErrorRate line, then a resolved one, on klaxon's stdout;
  - the events sink holds exactly as many events as nginx logged lines, and
    exactly 100 of them have status 503;
  - klaxon stops cleanly on SIGTERM (exit 0).
The deadlines only guard against a hang; nothing here asserts a duration.
"""
import http.client
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, alerts, check, free_port, json_lines, log, main, read_bytes,  # noqa: E402
                    skip, start, stop, tail, tmpdir, wait_for, write)

LOG_FORMAT = ("'$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
              "\"$http_referer\" \"$http_user_agent\" rt=$request_time urt=\"$upstream_response_time\"'")


def nginx_binary():
    for cand in ("/usr/sbin/nginx", shutil.which("nginx")):
        if cand and os.access(cand, os.X_OK):
            return cand
    skip("nginx is not installed (Debian package nginx-light or nginx)")


def nginx_temp_paths(prefix, nginx):
    """The temp-path directives, under prefix, of the modules this nginx has."""
    v = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    temps = ["client_body_temp_path %s/client_body;" % prefix]
    for mod in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if "--without-http_%s_module" % mod not in v:
            temps.append("%s_temp_path %s/%s;" % (mod, prefix, mod))
    return "\n    ".join(temps)


def nginx_config(prefix, port, nginx):
    return """\
worker_processes 1;
pid %(p)s/nginx.pid;
error_log %(p)s/error.log info;
events { worker_connections 256; }
http {
    log_format timed %(fmt)s;
    access_log %(p)s/access.log timed;
    %(temps)s
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%(port)d;
        location = /ok   { return 200 "ok\\n"; }
        location = /fail { return 503; }
        location /       { return 404; }
    }
}
""" % {"p": prefix, "fmt": LOG_FORMAT, "temps": nginx_temp_paths(prefix, nginx), "port": port}


class Client:
    """Keep-alive HTTP/1.1 client; reconnects when nginx closes."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.sent = {200: 0, 503: 0}

    def get(self, path):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("GET", path, headers={"User-Agent": "klaxon-e2e/1.0"})
                r = self.conn.getresponse()
                r.read()
                self.sent[r.status] = self.sent.get(r.status, 0) + 1
                return r.status
            except (http.client.HTTPException, OSError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def body():
    nginx = nginx_binary()
    d = tmpdir()
    prefix = os.path.join(d, "nginx")
    os.makedirs(prefix)
    os.chmod(d, 0o755)
    os.chmod(prefix, 0o755)
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    write(conf, nginx_config(prefix, port, nginx))
    access = os.path.join(prefix, "access.log")

    rc = subprocess.run([nginx, "-t", "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf],
                        capture_output=True, text=True)
    check(rc.returncode == 0, "nginx -t rejects the test config:\n" + rc.stderr)
    ng = start([nginx, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf,
                "-g", "daemon off;"], stdout=os.path.join(d, "nginx.out"), stderr=os.path.join(d, "nginx.err"))
    c = Client(port)

    def up():
        try:
            return c.get("/") == 404
        except OSError:
            return False
    wait_for(up, 20, "nginx to answer on 127.0.0.1:%d" % port, interval=0.1, proc=ng,
             proc_log=os.path.join(prefix, "error.log"))
    log("nginx %s up on 127.0.0.1:%d" % (nginx, port))

    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: HighErrorRate
    source: nginx
    expr: ratio(status >= 500) > 5%
    window: 10s
    min_events: 20
    for: 0s
    keep_firing_for: 0s
    labels: {severity: page}
""")
    events = os.path.join(d, "events.jsonl")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
eval_interval: 1s
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
  - {name: ev, type: jsonl, path: %s, what: events}
""" % (os.path.join(d, "state"), access, events))
    out = os.path.join(d, "alerts.jsonl")
    err = os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out, stderr=err)

    def firing_seen():
        return [a for a in alerts(out, "klaxon stdout", complete_only=True)
                if a["alert"] == "HighErrorRate"]

    # 200 good requests, then 100 failures mixed with 100 good ones.
    for _ in range(200):
        c.get("/ok")
    for i in range(200):
        c.get("/fail" if i % 2 == 0 else "/ok")
    log("sent %s" % c.sent)
    check(c.sent.get(503) == 100, "nginx did not answer 503 to /fail: %s" % c.sent)

    got = wait_for(lambda: [a for a in firing_seen() if a["status"] == "firing"], 30,
                   "a firing HighErrorRate line", proc=kl, proc_log=err)
    log("firing:", got[0])

    # Good traffic, bounded, until the 10 s window has slid past the failures.
    def resolved():
        hs = firing_seen()
        fi = [i for i, a in enumerate(hs) if a["status"] == "firing"]
        return fi and any(a["status"] == "resolved" for a in hs[fi[0] + 1:])
    deadline = time.monotonic() + 60
    while not resolved():
        check(kl.poll() is None, "klaxon exited (%s) while waiting to resolve:\n%s"
              % (kl.returncode, tail(read_bytes(err))))
        check(time.monotonic() < deadline, "HighErrorRate did not resolve within 60 s of good "
              "traffic; stdout:\n%s\nstderr:\n%s" % (read_bytes(out).decode(errors="replace"),
                                                     tail(read_bytes(err))))
        for _ in range(10):
            c.get("/ok")
        time.sleep(0.1)
    log("resolved after %s requests in all" % c.sent)

    # Real load: every line must still be one event.
    wrk = shutil.which("wrk")
    if wrk:
        r = subprocess.run([wrk, "-t2", "-c8", "-d2s", "http://127.0.0.1:%d/ok" % port],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "wrk failed: %s%s" % (r.stdout, r.stderr))
        log("wrk: " + " | ".join(l.strip() for l in r.stdout.splitlines() if "requests in" in l
                                 or "Requests/sec" in l))
    else:
        log("wrk is not installed: no load phase")

    # Every line nginx logged is one event, exactly once.
    def logged():
        return read_bytes(access).count(b"\n")
    n = logged()
    wait_for(lambda: len(json_lines(events, "events sink", complete_only=True)) >= n, 30,
             "the events sink to reach %d events" % n, proc=kl, proc_log=err)
    time.sleep(1.5)   # a duplicate would show up now
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err))))
    stop(ng, timeout=15)
    n = logged()
    ev = json_lines(events, "events sink")
    check(len(ev) == n, "nginx logged %d lines, the events sink has %d events" % (n, len(ev)))
    n503 = sum(1 for e in ev if e["fields"].get("status") == 503)
    check(n503 == 100, "expected 100 events with status 503 (an int), got %d" % n503)
    check(all(isinstance(e["fields"].get("request_time"), (int, float)) for e in ev),
          "request_time is not a number in every event")
    hs = [a for a in alerts(out, "klaxon stdout") if a["alert"] == "HighErrorRate"]
    log("transitions:", hs)
    check(hs[0]["status"] == "firing", "the first HighErrorRate transition is not firing: %s" % hs)
    log("stderr of klaxon:\n" + tail(read_bytes(err), 15))


if __name__ == "__main__":
    main(body)
