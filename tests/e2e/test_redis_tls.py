"""Shared mode over rediss:// (TLS) against a real redis-server --tls-port.

hiredis 0.14 has no TLS: klaxon carries its connection through an in-process
bridge (sinks/redis_tls.c). The test makes its own CA and a server
certificate for localhost (openssl), starts redis-server with TLS only, and
runs three replicas:

  trusted  rediss://localhost:PORT with `ca_file` the test's CA: shared mode
           comes on; every event goes to the stream (`what: events`), read
           back over TLS by the test: exactly the lines written, in order.
  untrusted the same URL trusting another CA: the certificate is refused,
           said once (with the reason), and the replica goes on alone.
  insecure the other CA again, with `tls_verify: false`: it connects.

And `klaxon check` refuses `ca_file` with a redis:// URL. Then redis-server is restarted: the trusted replica reconnects through a new
bridge and streams again. Skipped (77) when
redis-server or openssl is missing, or redis-server was built without TLS.
"""
import os
import shutil
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, free_port, log, main, skip, start, stop, tail,  # noqa: E402
                    tmpdir, wait_for, write, yaml_str)
from receiver import Klaxon, append, nginx_bytes  # noqa: E402
from redislib import command  # noqa: E402

RULES = """\
rules:
  - alert: Errors5xx
    source: nginx
    expr: ratio(status >= 500) > 5%
    window: 1m
    min_events: 10
    shared: true
"""
LINES = 50


def openssl(d, *args):
    subprocess.run(["openssl"] + list(args), cwd=d, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".crt")
    return os.path.join(d, name + ".crt")


def make_server_cert(d):
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    write(os.path.join(d, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


def replica(d, name, port, extra):
    rd = os.path.join(d, name)
    os.makedirs(os.path.join(rd, "state"))
    access = os.path.join(rd, "access.log")
    write(access, "")
    write(os.path.join(rd, "rules.yml"), RULES)
    cfg = os.path.join(rd, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: 127.0.0.1:%d
rule_files: [rules.yml]
redis:
  url: rediss://localhost:%d
  replica: %s
%s
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
""" % (yaml_str(os.path.join(rd, "state")), free_port(), port, name, extra, yaml_str(access)))
    return Klaxon(rd, cfg), access


def body():
    for tool in ("redis-server", "openssl"):
        if not shutil.which(tool):
            skip("%s is not installed" % tool)
    d = tmpdir("klaxon-redis-tls")
    ca = make_ca(d, "ca")
    other = make_ca(d, "other")
    make_server_cert(d)
    port = free_port()
    rdir = os.path.join(d, "redis")
    os.makedirs(rdir)
    def redis_tls():
        return start(["redis-server", "--port", "0", "--tls-port", str(port), "--bind",
                      "127.0.0.1", "--tls-cert-file", os.path.join(d, "server.crt"),
                      "--tls-key-file", os.path.join(d, "server.key"),
                      "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
                      "--save", "", "--appendonly", "no", "--dir", rdir],
                     stdout=os.path.join(rdir, "out"), stderr=os.path.join(rdir, "err"))
    proc = redis_tls()
    try:
        def ping():
            try:
                return command(port, "PING", cafile=ca) == "PONG"
            except (OSError, ssl.SSLError):
                return False
        if not wait_for(lambda: ping() or proc.poll() is not None, 20, "redis-server (TLS)") \
                or proc.poll() is not None:
            skip("redis-server did not start with --tls-port (built without TLS?): %s"
                 % tail(open(os.path.join(rdir, "err"), errors="replace").read()))
        log("redis-server, TLS only, on 127.0.0.1:%d" % port)

        good, access = replica(d, "trusted", port, "  ca_file: %s\n  stream: {key: 'tls:events',"
                               " maxlen: 1000, what: events}" % yaml_str(ca))
        bad, _ = replica(d, "untrusted", port, "  ca_file: %s" % yaml_str(other))
        loose, _ = replica(d, "insecure", port, "  ca_file: %s\n  tls_verify: false"
                           % yaml_str(other))
        for k in (good, bad, loose):
            k.start()
        good.wait_log("shared mode on", "the trusted replica to connect over TLS")
        loose.wait_log("shared mode on", "the replica with tls_verify: false to connect")
        bad.wait_log("going on alone", "the untrusted replica to refuse the certificate")
        err = bad.stderr()
        check("not trusted" in err, "the refusal does not say the certificate is not trusted:\n%s"
              % tail(err))
        check("shared mode on" not in err, "the untrusted replica connected:\n%s" % tail(err))
        log("trusted and tls_verify: false connected; the other CA refused: %s"
            % [ln for ln in err.splitlines() if "not trusted" in ln][0].split(": ", 2)[-1])

        append(access, [nginx_bytes("/seq/%d" % i) for i in range(LINES)])

        def streamed():
            entries = command(port, "XRANGE", "tls:events", "-", "+", cafile=ca) or []
            return entries if len(entries) >= LINES else None
        entries = wait_for(streamed, 30, "the %d events in the stream over TLS" % LINES)
        paths = []
        for _, fields in entries:
            kv = dict(zip(fields[::2], fields[1::2]))
            paths.append(kv[b"json"].decode())
        want = ["/seq/%d" % i for i in range(LINES)]
        got = [p for p in want if any('"path":"%s"' % p in j for j in paths)]
        check(len(entries) == LINES and got == want,
              "the stream holds %d entries, expected exactly the %d lines" % (len(entries), LINES))
        check(bad.stderr().count("going on alone") == 1,
              "the untrusted replica logged its outage more than once:\n%s" % tail(bad.stderr()))
        log("%d lines in, %d events in the stream over TLS; the refusal logged once"
            % (LINES, len(entries)))

        # Redis restarted (empty): a new bridge, the stream again
        stop(proc, timeout=10)
        good.wait_log("going on alone", "the trusted replica to see Redis gone")
        proc = redis_tls()
        good.wait_log("connected again", "the trusted replica to reconnect over TLS",
                      deadline_s=60)
        append(access, [nginx_bytes("/again/%d" % i) for i in range(10)])
        wait_for(lambda: command(port, "XLEN", "tls:events", cafile=ca) == 10, 30,
                 "the 10 lines after the restart in the new stream")
        log("Redis restarted: reconnected over TLS, the 10 new lines streamed")
        for k in (good, bad, loose):
            rc = k.stop()
            check(rc == 0, "a replica exited %s on SIGTERM:\n%s" % (rc, tail(k.stderr())))
    finally:
        stop(proc, timeout=10)

    # `klaxon check`: TLS settings without TLS
    cfg = os.path.join(d, "plain.yml")
    write(cfg, "redis: {url: 'redis://localhost:6379', ca_file: %s}\n"
               "sources: [{name: nginx, path: /var/log/nginx/access.log, parser: nginx}]\n"
          % yaml_str(ca))
    r = subprocess.run([KLAXON, "check", "-c", cfg], capture_output=True, text=True)
    check(r.returncode != 0 and "are for a rediss:// URL" in r.stderr,
          "klaxon check took ca_file with redis:// (exit %d): %s" % (r.returncode, r.stderr))


if __name__ == "__main__":
    main(body)
