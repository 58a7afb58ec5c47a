#!/usr/bin/env python3
"""The compose stack's owners and modes, played on this machine.

In deploy/docker-compose.yml klaxon runs as uid 10001 beside servers that run
as other users: nginx's master as root and its workers as nginx's user,
PostgreSQL as postgres, the app as whatever its image says. Docker cannot run
here, so this test plays those users with the real servers and runs
deploy/log-init and deploy/klaxon.yml as the compose file does:

  1. nginx (master root, workers `nobody`, deploy/nginx.conf's log format and
     file names) starts in a root-owned folder, as in a new volume, and makes
     its logs root's, 0644. `klaxon rotate` as uid 10001 must fail there, and
     say which file and why: the problem log-init exists for.
  2. deploy/log-init, as root, over that folder and new ones for the app, the
     PostgreSQL logs and klaxon's state (the postgres ids are this machine's).
  3. PostgreSQL starts as postgres with the -c options of the compose file's
     `db` command (log_directory moved here); the app logs through
     deploy/django_logging.py's LOGGING (WatchedFileHandler) as uid 10002 in
     klaxon's group (web's group_add); `klaxon run` starts as uid 10001 with
     the postgres group (klaxon's group_add) on deploy/klaxon.yml, its paths
     moved here and its rotation sizes and intervals shrunk.
  4. Requests, app records and a slow statement: klaxon counts every line of
     the three logs (its /metrics), copies-and-truncates nginx's log and
     renames the app's, and gzips the generations; nginx then reopens its logs
     (USR1), which hands the file to its worker user, and the next rotation
     still works. At the end every line written is on disk exactly once
     (live files plus generations, gzipped or not), klaxon read them all, and
     no rotation failed.

Skips (77) unless root, with nginx, PostgreSQL's server, psql and setpriv.
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
import urllib.request

import yaml

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import KLAXON, check, free_port, log, main, read_bytes, run, skip, start, stop, tail, tmpdir, wait_for, write  # noqa: E402
from test_deploy import DEPLOY, SRC, deploy_config, log_init_defaults  # noqa: E402
from test_nginx_live import Client, nginx_binary  # noqa: E402
from test_postgres_live import Clients, Cluster  # noqa: E402

APP_UID = 10002          # the app image's user, a stranger to klaxon
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
    """deploy/nginx.conf's user, log format and log files, a local server."""
    shipped = read_bytes(os.path.join(DEPLOY, "nginx.conf")).decode()
    fmt = re.search(r"^\s*log_format\s+timed\s+(.*?);", shipped, re.M | re.S).group(1)
    access = re.search(r"^\s*access_log\s+/var/log/nginx/(\S+)\s+timed;", shipped, re.M).group(1)
    error = re.search(r"^\s*error_log\s+/var/log/nginx/(\S+)", shipped, re.M).group(1)
    v = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    temps = ["client_body_temp_path %s/client_body;" % prefix]
    for mod in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if "--without-http_%s_module" % mod not in v:
            temps.append("%s_temp_path %s/%s;" % (mod, prefix, mod))
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
    }
}
""" % {"p": prefix, "logs": logs, "fmt": fmt, "access": access, "error": error,
       "temps": "\n    ".join(temps), "port": port}, access


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


def closed_pg_folder(d, cfg, pg_logs, cl, kuid, kgid):
    """PostgreSQL makes a missing log_directory 0700: klaxon must say that it
    cannot see in, rather than wait in silence for files that never appear."""
    os.chown(pg_logs, cl.uid, cl.gid)
    os.chmod(pg_logs, 0o700)
    state = os.path.join(d, "control-state")
    os.makedirs(state)
    os.chown(state, kuid, kgid)
    text = read_bytes(cfg).decode()
    control = os.path.join(d, "control.yml")
    write(control, re.sub(r"^state_dir: .*$", "state_dir: " + state, text, flags=re.M))
    err = os.path.join(d, "control.err")
    p = start(as_user(kuid, kgid, [kgid], [os.path.join(d, "klaxon"), "run", "-c", control]),
              stdout=os.path.join(d, "control.out"), stderr=err)
    want = ('the folder "%s" is closed to klaxon (uid %d, gid %d): Permission denied' % (pg_logs, kuid, kgid)).encode()
    wait_for(lambda: want in read_bytes(err), 30, "klaxon to say it cannot enter PostgreSQL's 0700 log folder",
             proc=p, proc_log=err)
    stop(p, timeout=15)
    log("without log-init: " + [l for l in read_bytes(err).decode().splitlines() if "is closed" in l][0])


def body():
    nobody = require()
    nginx = nginx_binary()
    d = tmpdir("klaxon-deploy-perms")
    os.chmod(d, 0o755)
    defaults = log_init_defaults()
    kuid, kgid = int(defaults["KLAXON_UID"]), int(defaults["KLAXON_GID"])

    # deploy/klaxon.yml, moved under d; rotation due after a few hundred lines
    root = os.path.join(d, "root")
    port = free_port()
    rules = os.path.join(d, "rules")
    shutil.copytree(os.path.join(SRC, "examples", "rules"), rules, ignore=shutil.ignore_patterns("tests"))
    text = deploy_config(root, rules, port)
    for old, new in (("rotate_interval: 1m", "rotate_interval: 1s"), ("max_size: 500MB", "max_size: %d" % ROTATE_AT),
                     ("max_size: 200MB", "max_size: %d" % ROTATE_AT), ("compress_after: 1h", "compress_after: 1s")):
        check(old in text, "deploy/klaxon.yml no longer says %r" % old)
        text = text.replace(old, new)
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, text)
    for p in glob.glob(os.path.join(root, "run/secrets/*")):
        os.chown(p, kuid, kgid)           # compose gives the secrets to the service's user
        os.chmod(p, 0o400)
    shutil.rmtree(os.path.join(root, "var/lib/klaxon"))   # log-init makes it, as for a new volume
    binary = os.path.join(d, "klaxon")
    shutil.copy(KLAXON, binary)           # the checkout may be closed to other users
    os.chmod(binary, 0o755)
    nginx_logs, app_logs = os.path.join(root, "var/log/nginx"), os.path.join(root, "var/log/app")
    pg_logs = os.path.join(root, "var/log/postgresql")

    # 1. nginx in a new volume: its master makes the logs root's
    prefix = os.path.join(d, "nginx")
    os.makedirs(prefix)
    conf_text, access_name = nginx_conf(prefix, nginx_logs, free_port(), nginx)
    conf = os.path.join(prefix, "nginx.conf")
    write(conf, conf_text)
    nport = int(re.search(r"listen 127.0.0.1:(\d+)", conf_text).group(1))
    ng = start([nginx, "-p", prefix, "-e", os.path.join(prefix, "startup.log"), "-c", conf, "-g", "daemon off;"],
               stdout=os.path.join(d, "nginx.out"), stderr=os.path.join(d, "nginx.err"))
    access = os.path.join(nginx_logs, access_name)
    client = Client(nport)

    def up():
        try:
            return client.get("/ok") == 200
        except OSError:
            return False
    wait_for(up, 20, "nginx to answer on 127.0.0.1:%d" % nport, proc=ng, proc_log=os.path.join(d, "nginx.err"))
    sent = 1

    def requests(n):
        nonlocal sent
        for i in range(n):
            client.get("/fail" if i % 10 == 0 else "/ok")
        sent += n

    requests(ROTATE_AT // 100)            # past max_size
    check(mode_of(access)[0] == 0, "nginx's master did not make %s root's: %s" % (access, mode_of(access)))
    rc, out, err = run(as_user(kuid, kgid, [kgid], [binary, "rotate", "-c", cfg]))
    err = (out + err).decode("utf-8", "replace")   # actions on stdout, the summary on stderr
    check(rc != 0 and "Permission denied" in err and access in err and "must be able to write" in err,
          "klaxon rotate as uid %d on nginx's root-owned log: exit %d, and no 'Permission denied' naming %s:\n%s"
          % (kuid, rc, access, tail(err)))
    log("without log-init: klaxon (uid %d) cannot rotate nginx's log: %s"
        % (kuid, [l for l in err.splitlines() if "Permission denied" in l][0].strip()))
    cl = Cluster(os.path.join(d, "pg"))
    closed_pg_folder(d, cfg, pg_logs, cl, kuid, kgid)

    # 2. log-init, as compose runs it, with this machine's postgres ids
    env = dict(os.environ, NGINX_LOGS=nginx_logs, APP_LOGS=app_logs, PG_LOGS=pg_logs,
               KLAXON_STATE=os.path.join(root, "var/lib/klaxon"),
               POSTGRES_UID=str(cl.uid), POSTGRES_GID=str(cl.gid))
    rc, out, err = run([os.path.join(DEPLOY, "log-init")], env=env)
    check(rc == 0, "deploy/log-init failed (exit %d):\n%s%s" % (rc, out, err))
    rc2, out2, err2 = run([os.path.join(DEPLOY, "log-init")], env=env)
    check(rc2 == 0 and out2 == out, "deploy/log-init run again did not do the same:\n%s%s" % (out2, err2))
    log(out.decode().strip().replace("\n", "; ").replace(root, "ROOT"))
    check(mode_of(access) == (kuid, kgid, 0o664), "after log-init %s is %s" % (access, mode_of(access)))
    check(mode_of(nginx_logs) == (kuid, kgid, 0o2775), "after log-init nginx's folder is %s" % (mode_of(nginx_logs),))
    check(mode_of(pg_logs) == (cl.uid, cl.gid, 0o2750), "after log-init the PostgreSQL folder is %s" % (mode_of(pg_logs),))

    # 3. the servers and klaxon, each as its compose user
    cl.start(pg_logs, pg_options(pg_logs)["log_line_prefix"], extra=pg_options(pg_logs).items())
    clients = Clients(cl)
    wait_for(lambda: glob.glob(os.path.join(pg_logs, "*.log")) and
             clients.sql("SELECT 1", conninfo=cl.super_conninfo(), ok=False)[0] == 0, 60,
             "PostgreSQL to start", proc=cl.proc, proc_log=cl.out + ".err")
    app = App(d, app_logs, kgid)
    app.write(1)
    kout, kerr = os.path.join(d, "klaxon.out"), os.path.join(d, "klaxon.err")
    kl = start(as_user(kuid, kgid, [kgid, cl.gid], [binary, "run", "-c", cfg]), stdout=kout, stderr=kerr)
    wait_for(lambda: read_bytes(kerr).count(b"following") >= 3, 30, "klaxon to follow the three logs",
             proc=kl, proc_log=kerr)
    # `from: end`: what the logs held when klaxon opened them is not its to read
    # (PostgreSQL is quiet between its start-up lines and the test's statement)
    start_lines = {"nginx": lines_on_disk(access), "app": app.written,
                   "postgres": lines_on_disk(os.path.join(pg_logs, "*.log"))}

    def read_all(what):
        wait_for(lambda: metric(port, "klaxon_source_lines_total", "nginx") == sent - start_lines["nginx"] and
                 metric(port, "klaxon_source_lines_total", "app") == app.written - start_lines["app"], 30,
                 "klaxon to read every line (%s)" % what, proc=kl, proc_log=kerr)

    def rotated(live, n, what):
        wait_for(lambda: len([g for g in generations(live) if g.endswith(".gz")]) >= n, 30,
                 "%s: %d gzipped generation(s) of %s" % (what, n, live), proc=kl, proc_log=kerr)

    # 4. traffic, rotation, a reopen, rotation again
    requests(ROTATE_AT // 100)
    app.write(ROTATE_AT // 60)
    clients.sql("SELECT pg_sleep(1.1)", conninfo=cl.super_conninfo())
    read_all("first batch")
    rotated(access, 1, "copytruncate")
    rotated(os.path.join(app_logs, "app.log"), 1, "rename")
    new_app = os.path.join(app_logs, "app.log")
    app.write(5)                          # the handler makes a new app.log
    check(mode_of(new_app)[:2] == (APP_UID, kgid),
          "the app's new log is %s, not the app's in klaxon's group" % (mode_of(new_app),))

    os.kill(int(read_bytes(os.path.join(prefix, "nginx.pid"))), signal.SIGUSR1)
    wait_for(lambda: mode_of(access)[0] == nobody, 20, "nginx's reopen to give %s to its worker user" % access)
    log("after nginx's reopen %s is uid %d's, group %d, mode %o" % ((access_name,) + mode_of(access)))
    requests(ROTATE_AT // 100)
    app.write(ROTATE_AT // 60)
    read_all("after the reopen")
    rotated(access, 2, "copytruncate after the reopen")
    rotated(os.path.join(app_logs, "app.log"), 2, "rename, second time")
    read_all("the end")

    pg_files = glob.glob(os.path.join(pg_logs, "*.log"))
    check(pg_files and all(mode_of(p)[1:] == (cl.gid, 0o640) for p in pg_files),
          "PostgreSQL's log files: %s" % [(p, mode_of(p)) for p in pg_files])
    pg_text = b"".join(read_bytes(p) for p in pg_files)
    check(re.search(rb"duration: \d+\.\d+ ms  statement: SELECT pg_sleep\(1\.1\)", pg_text),
          "no slow-statement line in PostgreSQL's log:\n" + tail(pg_text.decode("utf-8", "replace")))
    pg_lines = pg_text.count(b"\n") - start_lines["postgres"]
    wait_for(lambda: metric(port, "klaxon_source_lines_total", "postgres") == pg_lines, 30,
             "klaxon to read PostgreSQL's %d new lines (it has %s)"
             % (pg_lines, metric(port, "klaxon_source_lines_total", "postgres")), proc=kl, proc_log=kerr)
    check(metric(port, "klaxon_source_parse_errors_total", "postgres") == 0, "PostgreSQL lines did not parse")

    on_disk = {"nginx": lines_on_disk(access + "*"), "app": lines_on_disk(os.path.join(app_logs, "app.log*"))}
    check(on_disk == {"nginx": sent, "app": app.written},
          "lines on disk %s, written nginx %d, app %d: rotation lost or doubled some" % (on_disk, sent, app.written))
    rc = stop(kl, timeout=15)
    text = read_bytes(kerr).decode("utf-8", "replace")
    bad = [l for l in text.splitlines() if "rotate:" in l and ("error" in l or "cannot" in l)]
    check(rc == 0 and not bad, "klaxon run (uid %d) exit %s, rotation problems:\n%s" % (kuid, rc, "\n".join(bad)))
    log("as uid %d: nginx %d lines (%d generations), app %d lines (%d generations), PostgreSQL %d lines read; "
        "every line on disk once" % (kuid, sent, len(generations(access)), app.written,
                                    len(generations(new_app)), pg_lines))
    stop(ng)


if __name__ == "__main__":
    main(body)
