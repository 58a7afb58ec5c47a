#!/usr/bin/env python3
"""Probes against real servers on 127.0.0.1, with the example pack's rules.

An HTTPS server (python3's http.server + ssl) with a certificate the test makes
(`openssl req -x509 -days 20`, for IP 127.0.0.1), a redis-server, a backup
folder, and `klaxon run` with the probes web (https, verified with the test's
certificate as its CA), web_unverified (the same URL with the system's CAs:
verification fails), webport (tcp), redis, host, backups (file), every one
at a short interval, and examples/rules/probes.yml's rules over web, redis,
host and backups (every `for:` 0s; BackupStale's 26h scaled to 1h). Asserts:
  - CertificateExpiring fires (about 20 days left); web_unverified reports
    up 0 with the verification error and still the certificate's expiry;
  - the HTTPS server stopped: SiteDown fires (and webport reports refused);
    started again on the same port: it resolves;
  - redis-server stopped: RedisDown fires; started again: it resolves;
    its events carry used_memory, connected_clients, rdb_last_bgsave_status;
  - host events carry mem_used_pct, cpu_used_pct, load1;
  - backups: a fresh good .gz is intact 1; then a newer truncated one:
    BackupCorrupt fires; then every file older than the scaled age:
    BackupStale fires; then none: BackupMissing fires.
Skips (77) only when openssl or redis-server is missing. Deadlines only guard
against a hang.
"""
import gzip
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, free_port, log, main, run, skip, start, stop, tail,  # noqa: E402
                    tmpdir, wait_for, write, read_bytes)
import probelib  # noqa: E402

HTTPS_SERVER = r"""
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("listening", flush=True)
s.serve_forever()
"""


def body():
    openssl = shutil.which("openssl") or skip("openssl is not installed (Debian package openssl)")
    redis_bin = shutil.which("redis-server") or skip("redis-server is not installed")
    d = tmpdir("klaxon-probe")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    rc, out, err = run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "20", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"])
    check(rc == 0, "openssl req failed: %s" % tail(err))
    srv_py = os.path.join(d, "https_server.py")
    write(srv_py, HTTPS_SERVER)
    hport, rport = free_port(), free_port()

    def start_https():
        p = start([sys.executable, srv_py, str(hport), cert, key], stdout=os.path.join(d, "https.out"),
                  stderr=os.path.join(d, "https.err"))
        wait_for(lambda: b"listening" in read_bytes(os.path.join(d, "https.out")), 30,
                 "the HTTPS server to listen", proc=p, proc_log=os.path.join(d, "https.err"))
        return p

    def start_redis():
        p = start([redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", d], stdout=os.path.join(d, "redis.out"))
        return p

    https = start_https()
    redis = start_redis()
    backups = os.path.join(d, "backups")
    os.makedirs(backups)
    good = os.path.join(backups, "daily_20231113.sql.gz")
    with gzip.open(good, "wb") as f:
        f.write(b"-- PostgreSQL database dump\n" + b"INSERT INTO loans_loan VALUES (1, 1, 10);\n" * 50000)

    url = "https://127.0.0.1:%d/healthz" % hport
    probes = "\n".join("  - " + p for p in (
        "{name: web, http: '%s', interval: 1s, ca_file: %s}" % (url, cert),
        "{name: web_unverified, http: '%s', interval: 1s}" % url,
        "{name: webport, tcp: '127.0.0.1:%d', interval: 500ms}" % hport,
        "{name: redis, redis: 'redis://127.0.0.1:%d/0', interval: 500ms}" % rport,
        "{name: host, host: true, interval: 500ms}",
        "{name: backups, file: '%s/daily_*.sql.gz', interval: 500ms}" % backups,
    ))
    rules = probelib.pack_rules({"web", "redis", "host", "backups"},
                                replace=[("expr: last(age) > 26h", "expr: last(age) > 1h")])
    cfg = probelib.config(d, probes, rules)
    rc, out, err = run([KLAXON, "check", "-c", cfg])
    check(rc == 0, "klaxon check failed: %s" % tail(err))
    out_path, err_path = os.path.join(d, "klaxon.out"), os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out_path, stderr=err_path)
    w = probelib.Watch(d, out_path)

    def firing(alert, status="firing", what=None, deadline=30):
        wait_for(lambda: w.state(alert) == status, deadline, what or "%s %s" % (alert, status),
                 proc=kl, proc_log=err_path)

    # --- certificate
    firing("CertificateExpiring")
    ev = w.last_event("web", lambda f: "cert_days_left" in f and f["up"] == 1)
    check(ev["up"] == 1 and ev["status"] == 200, "web: %s" % ev)
    check(19 < ev["cert_days_left"] <= 20, "web: cert_days_left %s, expected about 20" % ev["cert_days_left"])
    check(w.state("CertificateExpiresThisWeek") is None, "CertificateExpiresThisWeek fired at 20 days")
    # (a check that timed out on a slow machine says so: wait for one that ran)
    raw = wait_for(lambda: w.last_event("web_unverified", lambda f: "timed out" not in f.get("error", "")),
                   30, "a finished check of web_unverified")
    check(raw["up"] == 0 and "certificate" in raw.get("error", ""),
          "web_unverified: expected up 0 with a verification error, got %s" % raw)
    check(19 < raw.get("cert_days_left", 0) <= 20,
          "web_unverified: the expiry is read even when verification fails: %s" % raw)
    log("certificate: %s; unverified: %s" % (ev, raw))

    # --- downtime
    check(w.state("SiteDown") is None, "SiteDown fired while the server was up")
    stop(https)
    firing("SiteDown")
    down = w.last_event("web", lambda f: f["up"] == 0)
    log("web down: %s; webport: %s" % (down, w.last_event("webport", lambda f: f["up"] == 0)))
    check("refused" in down.get("error", "") or "connect" in down.get("error", "").lower(),
          "SiteDown's event has no reason: %s" % down)
    https = start_https()
    firing("SiteDown", "resolved")

    # --- redis
    ev = wait_for(lambda: w.last_event("redis", lambda f: f["up"] == 1), 30, "redis up")
    for k in ("used_memory", "connected_clients", "rdb_last_bgsave_status", "latency"):
        check(k in ev, "redis event without %s: %s" % (k, ev))
    stop(redis)
    firing("RedisDown")
    redis = start_redis()
    firing("RedisDown", "resolved")

    # --- host
    ev = wait_for(lambda: w.last_event("host", lambda f: "cpu_used_pct" in f), 30, "a host event with CPU")
    for k in ("mem_used_pct", "cpu_used_pct", "load1"):
        check(k in ev and ev[k] >= 0, "host event without %s: %s" % (k, ev))
    check(0 <= ev["mem_used_pct"] <= 100 and 0 <= ev["cpu_used_pct"] <= 100, "host: %s" % ev)

    # --- backups
    ev = wait_for(lambda: w.last_event("backups", lambda f: "intact" in f), 30, "a backups verdict")
    check(ev["intact"] == 1 and ev["count"] == 1, "the good backup: %s" % ev)
    check(w.state("BackupCorrupt") is None, "BackupCorrupt fired on a good backup")
    data = read_bytes(good)
    cut = os.path.join(backups, "daily_20231114.sql.gz")
    write_bytes = data[: len(data) // 2]
    with open(cut, "wb") as f:
        f.write(write_bytes)
    firing("BackupCorrupt")
    log("truncated: %s" % w.last_event("backups"))
    now = time.time()
    os.utime(good, (now - 3 * 3600, now - 3 * 3600))
    os.utime(cut, (now - 2 * 3600, now - 2 * 3600))
    firing("BackupStale")
    ev = w.last_event("backups", lambda f: f.get("age", 0) > 3600)
    check(ev and ev["path"].endswith("daily_20231114.sql.gz"), "the newest backup: %s" % ev)
    os.unlink(good)
    os.unlink(cut)
    firing("BackupMissing")

    rc = stop(kl)
    check(rc == 0, "klaxon run exited %s on SIGTERM: %s" % (rc, tail(read_bytes(err_path))))
    log("alerts: %s" % [(a["alert"], a["status"]) for a in w.alerts()])


if __name__ == "__main__":
    main(body)
