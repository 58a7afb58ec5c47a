#!/usr/bin/env python3
"""The compose stack's owners and modes, played on this machine.

In deploy/docker-compose.yml klaxon runs as uid 10001 beside servers that run
as other users: nginx's master as root and its workers as nginx's user,
PostgreSQL as postgres, the app as whatever its image says. Docker cannot run
here, so this test plays those users with the real servers (nginx, PostgreSQL,
redis-server on loopback) and runs deploy/log-init and deploy/klaxon.yml as
the compose file does, the config's hosts (web, db, redis) pointed at them:

  1. nginx (master root, workers `nobody`, deploy/nginx.conf's log format and
     file names) starts in a root-owned folder, as in a new volume, and makes
     its logs root's, 0644. As uid 10001, `klaxon rotate` must fail there and
     say which file, why and what klaxon needs; and with the 0700 folder
     PostgreSQL makes for a missing log_directory, `klaxon run` must say the
     folder is closed to it and /healthz must answer 503 naming it.
  2. deploy/log-init, as root, twice (the second run changes nothing), over
     those folders and new ones for the app and klaxon's state (the postgres
     ids are this machine's): the owners and modes it promises.
  3. PostgreSQL starts as postgres with the -c options of the compose file's
     `db` command (log_directory moved here), with klaxon's role as
     deploy/README.md creates it and a gzipped pg_dump in the backups folder;
     the app logs through deploy/django_logging.py's LOGGING
     (WatchedFileHandler) as uid 10002 in klaxon's group (web's group_add);
     `klaxon run` starts as uid 10001 with the postgres group (klaxon's
     group_add) on deploy/klaxon.yml, its paths moved here, its rotation
     sizes, intervals and the backup probe's interval shrunk. /healthz
     answers 200 and every probe of the config reports up (the backup intact).
  4. Requests, app records and a slow statement: klaxon counts every line of
     the three logs (its /metrics), copies-and-truncates nginx's log and
     renames the app's, and gzips the generations; nginx then reopens its logs
     (USR1), which hands the file to its worker user, and the next rotation
     still works. At the end every line written is on disk exactly once
     (live files plus generations, gzipped or not), klaxon read them all, and
     no rotation failed.

Skips (77) unless root, with nginx, PostgreSQL's server, psql, redis-server
and setpriv.
"""
import glob
import gzip
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import KLAXON, check, free_port, log, main, read_bytes, run, skip, start, stop, tail, tmpdir, wait_for, write  # noqa: E402
import probelib  # noqa: E402
from test_deploy import DEPLOY, SRC, deploy_config, log_init_defaults  # noqa: E402
from test_nginx_live import Client, nginx_binary, nginx_temp_paths  # noqa: E402
from test_postgres_live import Clients, Cluster  # noqa: E402

APP_UID = 10002          # the app image's user, a stranger to klaxon
PG_PASSWORD = "e2e-klaxon-role"
ROTATE_AT = 16 * 1024    # bytes: a few hundred lines of each log


def require():
    if os.geteuid() != 0:
        skip("plays several users: needs root")
    if not shutil.which("setpriv"):
        skip("setpriv is not installed (Debian package util-linux)")
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        skip("no `nobody` user to run nginx's workers as")


def as_user(uid, gid, groups, argv):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
            "--groups=" + ",".join(str(g) for g in groups), "--"] + argv


def nginx_conf(prefix, logs, port, nginx):
    """deploy/nginx.conf's log format and log files; workers as `nobody` (the
    image's `nginx` user), a local server."""
    shipped = read_bytes(os.path.join(DEPLOY, "nginx.conf")).decode()
    fmt = re.search(r"^\s*log_format\s+timed\s+(.*?);", shipped, re.M | re.S).group(1)
    access = re.search(r"^\s*access_log\s+/var/log/nginx/(\S+)\s+timed;", shipped, re.M).group(1)
    error = re.search(r"^\s*error_log\s+/var/log/nginx/(\S+)", shipped, re.M).group(1)
    return """\
user nobody nogroup;
worker_processes 1;
pid %(p)s/nginx.pid;
error_log %(logs)s/%(error)s warn;
events { worker_connections 64; }
http {
    log_format timed %(fmt)s;
    access_log %(logs)s/%(access)s timed;
    %(temps)s
    server {
        listen 127.0.0.1:%(port)d;
        location = /ok   { return 200 "ok\\n"; }
        location = /fail { return 503; }
        location = /healthz { access_log off; return 200 "ok\\n"; }   # the `web` probe's
    }
}
""" % {"p": prefix, "logs": logs, "fmt": fmt, "access": access, "error": error,
       "temps": nginx_temp_paths(prefix, nginx), "port": port}, access


def pg_options(logdir):
    """The `-c name=value` pairs of the compose file's db command."""
    with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
        cmd = yaml.safe_load(f)["services"]["db"]["command"]
    opts = dict(a.split("=", 1) for a in cmd[2::2])
    check(cmd[0] == "postgres" and all(c == "-c" for c in cmd[1::2]) and "log_directory" in opts,
          "the compose file's db command is not `postgres -c k=v ...`: %s" % cmd)
    opts["log_directory"] = logdir
    return opts


APP_WRITER = r"""
import importlib.util, logging, logging.config, sys
spec = importlib.util.spec_from_file_location("klaxon_logging", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
logging.config.dictConfig(m.LOGGING)
lg, n = logging.getLogger("django.request"), 0
for req in sys.stdin:
    for _ in range(int(req)):
        n += 1
        lg.warning("Not Found: /api/debts/%d", n)
    print(n, flush=True)
"""


class App:
    """The app's logging, as uid APP_UID in klaxon's group: `write(n)` logs n
    records and returns when they are written."""

    def __init__(self, d, log_dir, klaxon_gid):
        mod = os.path.join(d, "django_logging.py")
        shutil.copy(os.path.join(DEPLOY, "django_logging.py"), mod)
        os.chmod(mod, 0o644)
        self.p = subprocess.Popen(
            as_user(APP_UID, APP_UID, [APP_UID, klaxon_gid], [sys.executable, "-c", APP_WRITER, mod]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(d, "app.err"), "wb"),
            env=dict(os.environ, DJANGO_LOG_DIR=log_dir), text=True, start_new_session=True)
        e2elib._procs.append(self.p)
        self.written = 0

    def write(self, n):
        self.p.stdin.write("%d\n" % n)
        self.p.stdin.flush()
        got = self.p.stdout.readline()
        check(got.strip() == str(self.written + n), "the app writer answered %r" % got)
        self.written += n


def healthz(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(port, name, source):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{source="%s"\} (\d+)$' % (name, source), text, re.M)
    return int(m.group(1)) if m else None


def lines_on_disk(pattern):
    """Lines in every file the pattern names, gzipped ones unpacked."""
    n = 0
    for p in glob.glob(pattern):
        opener = gzip.open if p.endswith(".gz") else open
        with opener(p, "rb") as f:
            n += f.read().count(b"\n")
    return n


def generations(live):
    return sorted(p for p in glob.glob(live + ".*") if not p.endswith(".tmp"))


def mode_of(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


class Stack:
    """The stack's servers on loopback, each as its compose user, and
    deploy/klaxon.yml pointed at them."""

    def __init__(self, d):
        self.d = d
        defaults = log_init_defaults()
        self.kuid, self.kgid = int(defaults["KLAXON_UID"]), int(defaults["KLAXON_GID"])
        self.root = os.path.join(d, "root")
        self.nginx_logs = os.path.join(self.root, "var/log/nginx")
        self.app_logs = os.path.join(self.root, "var/log/app")
        self.pg_logs = os.path.join(self.root, "var/log/postgresql")
        self.port, self.nport, self.rport = free_port(), free_port(), free_port()
        self.binary = os.path.join(d, "klaxon")
        shutil.copy(KLAXON, self.binary)  # the checkout may be closed to other users
        os.chmod(self.binary, 0o755)
        self.cl = Cluster(os.path.join(d, "pg"))
        self.clients = Clients(self.cl)
        self.cfg = self.write_config()
        self.sent = 0

    def write_config(self):
        """deploy/klaxon.yml under root: the compose hosts are loopback ports,
        rotation is due after a few hundred lines, and a jsonl sink keeps the
        events (the probes' results among them)."""
        rules = os.path.join(self.d, "rules")
        os.makedirs(os.path.join(self.d, "out"))   # klaxon's own: the events sink writes there
        os.chown(os.path.join(self.d, "out"), self.kuid, self.kgid)
        shutil.copytree(os.path.join(SRC, "examples", "rules"), rules, ignore=shutil.ignore_patterns("tests"))
        text = deploy_config(self.root, rules, self.port)
        for old, new in (("rotate_interval: 1m", "rotate_interval: 1s"),
                         ("max_size: 500MB", "max_size: %d" % ROTATE_AT),
                         ("max_size: 200MB", "max_size: %d" % ROTATE_AT),
                         ("compress_after: 1h", "compress_after: 1s"),
                         # a gzip verdict rides on the check after the one that started it
                         ("daily_*.sql.gz', interval: 5m", "daily_*.sql.gz', interval: 1s"),
                         ("http://web:8000/healthz", "http://127.0.0.1:%d/healthz" % self.nport),
                         ("redis: 'redis://redis:6379/0'", "redis: 'redis://127.0.0.1:%d/0'" % self.rport),
                         ("  - {name: console, type: stdout}\n",
                          "  - {name: console, type: stdout}\n  - {name: events, type: jsonl, path: %s, what: events}\n"
                          % os.path.join(self.d, "out", "events.jsonl"))):
            check(old in text, "deploy/klaxon.yml no longer says %r" % old)
            text = text.replace(old, new)
        write(os.path.join(self.root, "run/secrets/pg_dsn"),
              "host=127.0.0.1 port=%d user=klaxon password=%s dbname=postgres connect_timeout=5\n"
              % (self.cl.port, PG_PASSWORD))
        for p in glob.glob(os.path.join(self.root, "run/secrets/*")):
            os.chown(p, self.kuid, self.kgid)   # compose gives the secrets to the service's user
            os.chmod(p, 0o400)
        shutil.rmtree(os.path.join(self.root, "var/lib/klaxon"))   # log-init makes it, as for a new volume
        cfg = os.path.join(self.d, "klaxon.yml")
        write(cfg, text)
        return cfg

    def klaxon(self, *args, groups=()):
        return as_user(self.kuid, self.kgid, [self.kgid] + list(groups), [self.binary] + list(args))

    # --- the servers
    def start_redis(self):
        redis = shutil.which("redis-server") or skip("redis-server is not installed")
        start([redis, "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.d], stdout=os.path.join(self.d, "redis.out"))

    def start_nginx(self):
        """nginx in a new volume: its master makes the logs root's."""
        nginx = nginx_binary()
        self.prefix = os.path.join(self.d, "nginx")
        os.makedirs(self.prefix)
        conf_text, self.access_name = nginx_conf(self.prefix, self.nginx_logs, self.nport, nginx)
        conf = os.path.join(self.prefix, "nginx.conf")
        write(conf, conf_text)
        err = os.path.join(self.d, "nginx.err")
        ng = start([nginx, "-p", self.prefix, "-e", os.path.join(self.prefix, "startup.log"), "-c", conf,
                    "-g", "daemon off;"], stdout=os.path.join(self.d, "nginx.out"), stderr=err)
        self.access = os.path.join(self.nginx_logs, self.access_name)
        self.client = Client(self.nport)
        wait_for(lambda: self.healthy_nginx(), 20, "nginx to answer on 127.0.0.1:%d" % self.nport,
                 proc=ng, proc_log=err)

    def healthy_nginx(self):
        try:
            return self.client.get("/healthz") == 200    # not logged
        except OSError:
            return False

    def requests(self, n):
        for i in range(n):
            self.client.get("/fail" if i % 10 == 0 else "/ok")
        self.sent += n

    def start_postgres(self):
        """With the -c options of the compose file's db command; klaxon's role
        as deploy/README.md creates it; a dump in the backups folder as the
        maintenance guide's cron job makes one."""
        cl = self.cl
        opts = pg_options(self.pg_logs)
        cl.start(self.pg_logs, opts["log_line_prefix"], extra=opts.items())
        wait_for(lambda: glob.glob(os.path.join(self.pg_logs, "*.log")) and
                 self.clients.sql("SELECT 1", conninfo=cl.super_conninfo(), ok=False)[0] == 0, 60,
                 "PostgreSQL to start", proc=cl.proc, proc_log=cl.out + ".err")
        self.clients.sql("CREATE ROLE klaxon LOGIN PASSWORD '%s' IN ROLE pg_monitor" % PG_PASSWORD,
                         conninfo=cl.super_conninfo())
        dump = subprocess.run(cl.as_pg([os.path.join(cl.bindir, "pg_dump"), cl.super_conninfo()]),
                              capture_output=True, timeout=60)
        check(dump.returncode == 0 and b"PostgreSQL database dump" in dump.stdout,
              "pg_dump failed: %s" % dump.stderr[-500:])
        with gzip.open(os.path.join(self.root, "backups", time.strftime("daily_%Y%m%d.sql.gz")), "wb") as f:
            f.write(dump.stdout)

    def pg_files(self):
        return glob.glob(os.path.join(self.pg_logs, "*.log"))

    # --- klaxon
    def metric(self, name, source):
        return metric(self.port, name, source)

    def log_init(self):
        """deploy/log-init as compose runs it, with this machine's postgres ids;
        twice, the second time changing nothing."""
        env = dict(os.environ, NGINX_LOGS=self.nginx_logs, APP_LOGS=self.app_logs, PG_LOGS=self.pg_logs,
                   KLAXON_STATE=os.path.join(self.root, "var/lib/klaxon"),
                   POSTGRES_UID=str(self.cl.uid), POSTGRES_GID=str(self.cl.gid))
        rc, out, err = run([os.path.join(DEPLOY, "log-init")], env=env)
        check(rc == 0, "deploy/log-init failed (exit %d):\n%s%s" % (rc, out, err))
        rc2, out2, err2 = run([os.path.join(DEPLOY, "log-init")], env=env)
        check(rc2 == 0 and out2 == out, "deploy/log-init run again did not do the same:\n%s%s" % (out2, err2))
        log(out.decode().strip().replace("\n", "; ").replace(self.root, "ROOT"))
        k = (self.kuid, self.kgid)
        for path, want in ((self.access, k + (0o664,)), (self.nginx_logs, k + (0o2775,)),
                           (self.app_logs, k + (0o2775,)), (self.pg_logs, (self.cl.uid, self.cl.gid, 0o2750)),
                           (os.path.join(self.root, "var/lib/klaxon"), k + (0o750,))):
            check(mode_of(path) == want, "after log-init %s is %s, not %s" % (path, mode_of(path), want))


def without_log_init(st):
    """What klaxon meets in new volumes: nginx's log root's 0644, and the
    0700 folder PostgreSQL makes for a missing log_directory. It must fail
    and say which uid needs what, not wait in silence."""
    rc, out, err = run(st.klaxon("rotate", "-c", st.cfg))
    err = (out + err).decode("utf-8", "replace")   # actions on stdout, the summary on stderr
    check(rc != 0 and "Permission denied" in err and st.access in err and "must be able to write" in err,
          "klaxon rotate as uid %d on nginx's root-owned log: exit %d, and no 'Permission denied' naming %s:\n%s"
          % (st.kuid, rc, st.access, tail(err)))
    log("without log-init: " + [l for l in err.splitlines() if "Permission denied" in l][0].strip())

    os.chown(st.pg_logs, st.cl.uid, st.cl.gid)
    os.chmod(st.pg_logs, 0o700)
    state = os.path.join(st.d, "control-state")
    os.makedirs(state)
    os.chown(state, st.kuid, st.kgid)
    control = os.path.join(st.d, "control.yml")
    write(control, re.sub(r"^state_dir: .*$", "state_dir: " + state, read_bytes(st.cfg).decode(), flags=re.M))
    err = os.path.join(st.d, "control.err")
    p = start(st.klaxon("run", "-c", control), stdout=os.path.join(st.d, "control.out"), stderr=err)
    want = ('the folder "%s" is closed to klaxon (uid %d, gid %d): Permission denied'
            % (st.pg_logs, st.kuid, st.kgid)).encode()
    wait_for(lambda: want in read_bytes(err), 30, "klaxon to say it cannot enter PostgreSQL's 0700 log folder",
             proc=p, proc_log=err)
    wait_for(lambda: healthz(st.port)[0] != 0, 10, "klaxon's /healthz to answer", proc=p, proc_log=err)
    code, text = healthz(st.port)
    check(code == 503 and st.pg_logs in text, "/healthz with PostgreSQL's folder closed: %d %r" % (code, text))
    stop(p, timeout=15)
    log("without log-init: " + [l for l in read_bytes(err).decode().splitlines() if "is closed" in l][0])
    log("without log-init: /healthz %d: %s" % (code, text.strip()))


def probes_live(st, w):
    """Every probe of deploy/klaxon.yml reaches its real server."""
    want = {"web": "status", "disk": "free_pct", "db": "max_connections", "redis": "used_memory",
            "host": "mem_used_pct", "backups": "intact"}

    def results():   # the last result of each with its field (a gzip verdict comes a check later)
        return {n: w.last_event(n, lambda r, f=f: f in r) for n, f in want.items()}

    def all_up():
        return all((r or {}).get("up") == 1 for r in results().values())
    try:
        wait_for(all_up, 30, "every probe of deploy/klaxon.yml to report up with its fields")
    except e2elib.Failure:
        log("the probes' last results: %s" % results())
        raise
    last = results()
    check(last["backups"]["intact"] == 1, "the backup probe finds the dump damaged: %s" % last["backups"])
    log("probes up: " + ", ".join("%s %s=%s" % (n, f, last[n][f]) for n, f in want.items()))


def body():
    nobody = require()
    d = tmpdir("klaxon-deploy-perms")
    os.chmod(d, 0o755)
    st = Stack(d)
    st.start_redis()

    # 1. new volumes: klaxon cannot do its job, and says so
    st.start_nginx()
    st.requests(ROTATE_AT // 100)            # past max_size
    check(mode_of(st.access)[0] == 0, "nginx's master did not make %s root's: %s" % (st.access, mode_of(st.access)))
    without_log_init(st)

    # 2. log-init
    st.log_init()

    # 3. the servers and klaxon, each as its compose user
    st.start_postgres()
    app = App(d, st.app_logs, st.kgid)
    app.write(1)
    kout, kerr = os.path.join(d, "klaxon.out"), os.path.join(d, "klaxon.err")
    kl = start(st.klaxon("run", "-c", st.cfg, groups=[st.cl.gid]), stdout=kout, stderr=kerr)
    wait_for(lambda: read_bytes(kerr).count(b"following") >= 3, 30, "klaxon to follow the three logs",
             proc=kl, proc_log=kerr)
    # `from: end`: what the logs held when klaxon opened them is not its to read
    # (PostgreSQL is quiet between its start-up lines and the test's statement)
    start_lines = {"nginx": lines_on_disk(st.access), "app": app.written,
                   "postgres": lines_on_disk(os.path.join(st.pg_logs, "*.log"))}
    code, text = healthz(st.port)
    check(code == 200, "/healthz after log-init: %d %r" % (code, text))
    probes_live(st, probelib.Watch(os.path.join(d, "out"), kout))

    def read_all(what):
        wait_for(lambda: st.metric("klaxon_source_lines_total", "nginx") == st.sent - start_lines["nginx"] and
                 st.metric("klaxon_source_lines_total", "app") == app.written - start_lines["app"], 30,
                 "klaxon to read every line (%s)" % what, proc=kl, proc_log=kerr)

    def rotated(live, n, what):
        wait_for(lambda: len([g for g in generations(live) if g.endswith(".gz")]) >= n, 30,
                 "%s: %d gzipped generation(s) of %s" % (what, n, live), proc=kl, proc_log=kerr)

    # 4. traffic, rotation, a reopen, rotation again
    app_log = os.path.join(st.app_logs, "app.log")
    st.requests(ROTATE_AT // 100)
    app.write(ROTATE_AT // 60)
    st.clients.sql("SELECT pg_sleep(1.1)", conninfo=st.cl.super_conninfo())
    read_all("first batch")
    rotated(st.access, 1, "copytruncate")
    rotated(app_log, 1, "rename")
    app.write(5)                          # the handler makes a new app.log
    check(mode_of(app_log)[:2] == (APP_UID, st.kgid),
          "the app's new log is %s, not the app's in klaxon's group" % (mode_of(app_log),))

    os.kill(int(read_bytes(os.path.join(st.prefix, "nginx.pid"))), signal.SIGUSR1)
    wait_for(lambda: mode_of(st.access)[0] == nobody, 20, "nginx's reopen to give %s to its worker user" % st.access)
    log("after nginx's reopen %s is uid %d's, group %d, mode %o" % ((st.access_name,) + mode_of(st.access)))
    st.requests(ROTATE_AT // 100)
    app.write(ROTATE_AT // 60)
    read_all("after the reopen")
    rotated(st.access, 2, "copytruncate after the reopen")
    rotated(app_log, 2, "rename, second time")
    read_all("the end")

    # 5. PostgreSQL's log, read through the group; every line on disk once
    pg_files = st.pg_files()
    check(pg_files and all(mode_of(p)[1:] == (st.cl.gid, 0o640) for p in pg_files),
          "PostgreSQL's log files: %s" % [(p, mode_of(p)) for p in pg_files])
    pg_text = b"".join(read_bytes(p) for p in pg_files)
    check(re.search(rb"duration: \d+\.\d+ ms  statement: SELECT pg_sleep\(1\.1\)", pg_text),
          "no slow-statement line in PostgreSQL's log:\n" + tail(pg_text.decode("utf-8", "replace")))
    pg_lines = pg_text.count(b"\n") - start_lines["postgres"]
    wait_for(lambda: st.metric("klaxon_source_lines_total", "postgres") == pg_lines, 30,
             "klaxon to read PostgreSQL's %d new lines (it has %s)"
             % (pg_lines, st.metric("klaxon_source_lines_total", "postgres")), proc=kl, proc_log=kerr)
    check(st.metric("klaxon_source_parse_errors_total", "postgres") == 0, "PostgreSQL lines did not parse")

    on_disk = {"nginx": lines_on_disk(st.access + "*"), "app": lines_on_disk(app_log + "*")}
    check(on_disk == {"nginx": st.sent, "app": app.written}, "lines on disk %s, written nginx %d, app %d: "
          "rotation lost or doubled some" % (on_disk, st.sent, app.written))
    rc = stop(kl, timeout=15)
    text = read_bytes(kerr).decode("utf-8", "replace")
    bad = [l for l in text.splitlines() if "rotate:" in l and ("error" in l or "cannot" in l)]
    check(rc == 0 and not bad, "klaxon run (uid %d) exit %s, rotation problems:\n%s" % (st.kuid, rc, "\n".join(bad)))
    log("as uid %d: nginx %d lines (%d generations), app %d lines (%d generations), PostgreSQL %d lines read; "
        "every line on disk once" % (st.kuid, st.sent, len(generations(st.access)), app.written,
                                    len(generations(app_log)), pg_lines))


if __name__ == "__main__":
    main(body)
