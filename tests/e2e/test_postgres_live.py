#!/usr/bin/env python3
"""A real PostgreSQL (Debian's packages), real trouble, klaxon reading its log.

initdb in a temporary folder; the server listens on 127.0.0.1 (a free port)
and a socket in that folder, max_connections 8 (1 reserved for superusers),
scram-sha-256 passwords over TCP, logging_collector on, every statement with
its duration (log_min_duration_statement 0), log_timezone UTC, lc_messages C.
psql (postgresql-client) does everything a client does; every connection the
test makes is counted with the FATAL message psql reported, if any.

Run 1: stderr log, log_line_prefix '%m [%p] %q%u@%d ' (examples/klaxon.yml's),
`klaxon run` following it from the start with the example pack
(examples/rules/postgres.yml) where SlowQuery's 60s is scaled down to 1s, and a
jsonl events sink. The workload: two `pg_sleep(1.1)`, a statement written on
four lines, a syntax error, a PL/pgSQL RAISE with DETAIL and HINT, seven
sessions held open (all the non-reserved slots) and a connection attempt past
them, a superuser session in the last slot and two more attempts (`too many
clients`), three wrong passwords for debtprofile_user and one for an unknown
role, a deadlock between two sessions, a backend killed with SIGKILL (crash and
recovery), and a smart shutdown while a session is open, with connection
attempts meanwhile (`the database system is shutting down`). Asserts:
  - `klaxon parse`: no parse error; one event per record — as many as the
    lines that start with the prefix, less the DETAIL/HINT/CONTEXT/STATEMENT
    lines folded into the message before them (same pid, same time), so no
    event has one of those as its severity and no event starts inside a
    TAB-continued line; severity, user, database, pid, time as written;
    exactly two pg_sleep events, duration (seconds, a number) >= 1.1; the
    four-line statement whole in one event; the syntax error with its
    statement folded in; the RAISE with detail, hint, context and statement;
    the deadlock with its multi-line detail, hint, context, statement and the
    pid of one of the two sessions; the crash LOG with its DETAIL; the unknown
    role's two-line DETAIL; FATAL events, counted per message, equal to the
    FATAL messages psql reported (too many clients, reserved slots, password
    authentication, shutting down, recovery);
  - `klaxon run`: SlowQuery, TooManyConnections, DatabaseAuthFailures for
    user debtprofile_user (not for the unknown role: one attempt), DatabaseDeadlock,
    DatabaseCrashed and DatabaseUnavailable fire; its events sink holds the
    same events as `klaxon parse` (live multi-line assembly = offline); it stops
    cleanly on SIGTERM;
  - `klaxon replay` of the log with the unscaled example pack fires the same
    alerts but SlowQuery (no statement ran for a minute).
Run 2: the same cluster started as a standby whose restore_command sleeps
(connections meanwhile: `the database system is starting up`, then `not
accepting connections`), promoted, with log_destination 'stderr,jsonlog' and
log_line_prefix '%m [%p] %e %q%u@%d app=%a '; a shorter workload. Asserts:
sqlstate from %e (42601, P0001, 22012, 40P01, 28P01, 57P03, 00000) and
application from %a; the jsonlog file parsed by `postgres_json` gives the same
events (severity, sqlstate, user, database, pid; durations; the folded fields
of each ERROR) as the stderr file; replaying either fires the same alerts
(DatabaseUnavailable, DatabaseDeadlock, DatabaseAuthFailures, SlowQuery).
Skips (77) only when PostgreSQL's server or psql is not installed or the server
cannot start here. Deadlines only guard against a hang.
"""
import atexit
import collections
import glob
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib  # noqa: E402
from e2elib import (KLAXON, SRC, alerts, check, free_port, json_lines, log, main,  # noqa: E402
                    read_bytes, run, skip, start, stop, tail, tmpdir, wait_for, write, yaml_str)

PREFIX1 = "%m [%p] %q%u@%d "
PREFIX2 = "%m [%p] %e %q%u@%d app=%a "
USER, DB, PASSWORD = "debtprofile_user", "debtprofile", "e2e-right-password"
MAX_CONN, RESERVED = 8, 1
# A record's first line: '%m [%p] ' (the rest of the prefix varies).
REC_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] ")
SEV_RE = re.compile(r"\b(DEBUG[1-5]?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|"
                    r"STATEMENT|QUERY|LOCATION):  ")
FOLDED = ("DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION")
SEVERITIES = {"DEBUG", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "LOG", "INFO", "NOTICE",
              "WARNING", "ERROR", "FATAL", "PANIC"}
MULTILINE_SQL = ("SELECT id,\n"
                 "       user_id, balance  -- e2e-multiline\n"
                 "  FROM loans_loan\n"
                 " WHERE id = 1;")


# ----------------------------------------------------------------- PostgreSQL

def pg_bindir():
    dirs = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        m = re.search(r"/postgresql/(\d+)/bin$", d)
        if m and all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            dirs.append((int(m.group(1)), d))
    if not dirs:
        skip("PostgreSQL's server is not installed (Debian package postgresql: "
             "/usr/lib/postgresql/N/bin/{initdb,pg_ctl,postgres})")
    ver, d = max(dirs)
    if ver < 15:
        skip("PostgreSQL %d is installed; the jsonlog part needs 15 or later" % ver)
    return d


class Cluster:
    """One data directory; as root, every server command runs as `postgres`."""

    def __init__(self, d):
        self.bindir = pg_bindir()
        self.psql = shutil.which("psql") or skip("psql is not installed (Debian package postgresql-client)")
        self.root = os.geteuid() == 0
        if self.root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                skip("running as root and there is no `postgres` user to run the server as "
                     "(the postgresql package creates it)")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.d = d
        self.data = os.path.join(d, "data")
        self.sock = os.path.join(d, "sock")
        for sub in ("sock", "logs", "logs2"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(d, 0o755)
        pwfile = os.path.join(d, "pwfile")
        write(pwfile, "e2e-superuser-password\n")
        if self.root:
            for p in (d, self.sock, os.path.join(d, "logs"), os.path.join(d, "logs2"), pwfile):
                os.chown(p, self.uid, self.gid)
        self.port = free_port()
        self.proc = None
        self.out = None
        rc, out, err = run(self.as_pg([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                                       "--auth-local=trust", "--auth-host=scram-sha-256",
                                       "--pwfile=" + pwfile, "-E", "UTF8", "--locale=C"]), timeout=120)
        if rc != 0:
            skip("initdb failed here (exit %d): %s" % (rc, tail(out + err, 15)))
        atexit.register(self.kill)   # runs before e2elib's cleanup (atexit is LIFO)

    def as_pg(self, argv):
        return (["runuser", "-u", "postgres", "--"] + argv) if self.root else argv

    def pg_ctl(self, *args, timeout=120):
        return run(self.as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data] + list(args)),
                   timeout=timeout)

    def start(self, logdir, prefix, destination="stderr", extra=()):
        opts = {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": self.sock,
            "logging_collector": "on", "log_directory": logdir, "log_filename": "postgresql.log",
            "log_file_mode": "0640", "log_destination": destination, "log_line_prefix": prefix,
            "log_min_duration_statement": "0", "log_timezone": "UTC", "lc_messages": "C",
            "max_connections": str(MAX_CONN), "superuser_reserved_connections": str(RESERVED),
            "deadlock_timeout": "200ms", "shared_buffers": "16MB", "ssl": "off",
        }
        opts.update(dict(extra))
        argv = [os.path.join(self.bindir, "postgres"), "-D", self.data]
        for k, v in opts.items():
            argv += ["-c", "%s=%s" % (k, v)]
        self.out = os.path.join(self.d, "server-%d.out" % int(time.time() * 1000))
        self.proc = start(self.as_pg(argv), stdout=self.out, stderr=self.out + ".err")
        self.logdir = logdir

    def server_log(self):
        return read_bytes(self.out + ".err").decode("utf-8", "replace") + read_bytes(
            os.path.join(self.logdir, "postgresql.log")).decode("utf-8", "replace")

    def wait_stopped(self, what, timeout=60):
        wait_for(lambda: self.proc.poll() is not None, timeout, what)
        if self.proc in e2elib._procs:
            e2elib._procs.remove(self.proc)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(self.as_pg([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                       "stop", "-m", "immediate", "-w", "-t", "20"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    # --- clients
    def conninfo(self, user=USER, db=DB):
        return "host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=10" % (self.port, user, db)

    def super_conninfo(self, db="postgres"):
        return "host=%s port=%d user=postgres dbname=%s" % (self.sock, self.port, db)


PSQL_ENV = {"PGSSLMODE": "disable", "PGGSSENCMODE": "disable", "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "psql", "PGOPTIONS": "", "LC_ALL": "C"}


class Clients:
    """Every connection the test makes goes through here, so that the FATAL
    messages the server sent (as psql reports them) are counted."""

    def __init__(self, cl):
        self.cl = cl
        self.fatal = collections.Counter()
        self.n = 0

    def note(self, err):
        for m in re.finditer(r"FATAL:  ([^\n]*)", err):
            self.fatal[m.group(1).strip()] += 1

    def sql(self, sql, conninfo=None, password=PASSWORD, ok=True):
        """One psql -c; returns (rc, stdout, stderr) as text."""
        env = dict(PSQL_ENV, PGPASSWORD=password)
        rc, out, err = run([self.cl.psql, "-X", "-q", "-A", "-t", "-w", conninfo or self.cl.conninfo(),
                            "-c", sql], env=env, timeout=60)
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        self.note(err)
        if ok:
            check(rc == 0, "psql %r failed (exit %d): %s" % (sql, rc, err))
        return rc, out, err

    def file(self, text, conninfo=None, password=PASSWORD):
        """A script through psql's stdin (statements sent one by one, as typed);
        errors do not stop it."""
        env = dict(PSQL_ENV, PGPASSWORD=password)
        rc, out, err = run([self.cl.psql, "-X", "-q", "-A", "-t", "-w", conninfo or self.cl.conninfo(), "-f", "-"],
                           env=env, timeout=60, stdin_bytes=text.encode())
        err = err.decode("utf-8", "replace")
        self.note(err)
        return rc, out.decode("utf-8", "replace"), err

    def session(self, name, conninfo=None, password=PASSWORD):
        self.n += 1
        return Session(self, "%s-%d" % (name, self.n), conninfo or self.cl.conninfo(), password)


class Session:
    """A psql kept open: statements written to its stdin, `\\echo MARK` after
    each so the test knows when they are done."""

    def __init__(self, clients, name, conninfo, password):
        self.clients = clients
        self.name = name
        self.err = os.path.join(clients.cl.d, "psql-%s.err" % name)
        env = dict(os.environ, **PSQL_ENV)
        env["PGPASSWORD"] = password
        self.errf = open(self.err, "wb")
        self.p = subprocess.Popen([clients.cl.psql, "-X", "-q", "-A", "-t", "-w", conninfo],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errf,
                                  env=env, start_new_session=True)
        self.p.argv0 = "psql"
        e2elib._procs.append(self.p)
        self.fd = self.p.stdout.fileno()
        self.buf = b""
        self.k = 0
        self.closed = False
        self.connected = self.do("") is not None

    def send(self, text):
        self.p.stdin.write((text + "\n").encode())
        self.p.stdin.flush()

    def _line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            check(left > 0, "psql session %s: no answer; its stderr: %s"
                  % (self.name, read_bytes(self.err).decode(errors="replace")))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def wait(self, mark, timeout=60):
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self._line(deadline)
            if line is None:
                return None       # psql exited (connection refused, or lost)
            if line == mark:
                return lines
            lines.append(line)

    def do(self, sql, timeout=60):
        """Run sql; returns its output lines, or None if psql is gone."""
        self.k += 1
        mark = "e2e-mark-%s-%d" % (self.name, self.k)
        try:
            self.send((sql + "\n" if sql else "") + "\\echo " + mark)
        except BrokenPipeError:
            return None
        return self.wait(mark, timeout)

    def start_do(self, sql):
        """Send sql without waiting; finish with wait(returned mark)."""
        self.k += 1
        mark = "e2e-mark-%s-%d" % (self.name, self.k)
        self.send(sql + "\n\\echo " + mark)
        return mark

    def stderr(self):
        return read_bytes(self.err).decode("utf-8", "replace")

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.send("\\q")
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        stop(self.p, timeout=20)
        self.errf.close()
        self.clients.note(self.stderr())


# ----------------------------------------------------------------- klaxon

def klaxon_config(d, name, log_path, parser_yaml, rule_file, events=None):
    cfg = os.path.join(d, name + ".yml")
    write(cfg, """\
state_dir: %s
eval_interval: 1s
rule_files: [%s]
sources:
  - {name: postgres, path: %s, parser: pg, from: beginning}
parsers:
  - %s
sinks:
  - {name: out, type: stdout}
%s""" % (yaml_str(os.path.join(d, "state-" + name)), yaml_str(rule_file), yaml_str(log_path), parser_yaml,
         ("  - {name: ev, type: jsonl, path: %s, what: events}\n" % yaml_str(events)) if events else ""))
    return cfg


def klaxon_parse(cfg, path, what):
    rc, out, err = run([KLAXON, "parse", "-c", cfg, "--source", "postgres", path], timeout=120)
    errt = err.decode("utf-8", "replace")
    check(rc == 0, "%s: klaxon parse exited %d; stderr:\n%s" % (what, rc, tail(errt)))
    m = None
    for m in re.finditer(r"(\d+) parse errors?", errt):
        pass
    check(m is not None, "%s: no summary ('N parse errors') on klaxon parse's stderr:\n%s" % (what, tail(errt)))
    check(m.group(1) == "0", "%s: klaxon parse reports parse errors:\n%s" % (what, tail(errt)))
    ev = json_lines(out, what + " (klaxon parse)")
    for e in ev:
        check(e.get("source") == "postgres" and isinstance(e.get("fields"), dict) and "time" in e,
              "%s: an event without source/time/fields: %s" % (what, e))
    return ev


def klaxon_replay(cfg, path, what):
    rc, out, err = run([KLAXON, "replay", "-c", cfg, "--source", "postgres=" + path], timeout=120)
    check(rc == 0, "%s: klaxon replay exited %d; stderr:\n%s" % (what, rc, tail(err)))
    return alerts(out, what)


def fired(transitions):
    """{alert name: [labels of each firing]}"""
    out = collections.defaultdict(list)
    for a in transitions:
        if a["status"] == "firing":
            out[a["alert"]].append(a["labels"])
    return out


def scaled_pack(d):
    src = os.path.join(SRC, "examples", "rules", "postgres.yml")
    check(os.path.exists(src), "no example rule pack at examples/rules/postgres.yml")
    text = read_bytes(src).decode()
    old = "expr: max(duration) > 60s"
    check(text.count(old) == 1, "examples/rules/postgres.yml has no single %r to scale down" % old)
    path = os.path.join(d, "rules-scaled.yml")
    write(path, text.replace(old, "expr: max(duration) > 1s"))
    return path, src


# ----------------------------------------------------------------- the log, independently

def records(path):
    """The log's records as PostgreSQL wrote them: a line starting with the
    prefix begins one, TAB lines continue it, and DETAIL/HINT/CONTEXT/
    STATEMENT lines of the same pid and time belong to the message before
    them. Returns [(time, pid, severity, first line, [folded severities])]."""
    out = []
    for raw in read_bytes(path).decode("utf-8", "replace").split("\n"):
        if raw == "":
            continue
        m = REC_START.match(raw)
        if not m:
            check(out and raw.startswith("\t"), "%s: a line neither starting a record nor TAB-continued: %r"
                  % (path, raw))
            continue
        sm = SEV_RE.search(raw, m.end())
        check(sm is not None, "%s: no severity in %r" % (path, raw))
        sev = sm.group(1)
        if sev in FOLDED and out and out[-1][1] == m.group(2) and out[-1][0] == m.group(1):
            out[-1][4].append(sev)
            continue
        out.append((m.group(1), m.group(2), sev, raw, []))
    return out


def pg_time(stamp):
    """'2026-11-25 14:13:26.329' → '2026-11-25T14:13:26.329Z' (klaxon's event time)."""
    return stamp.replace(" ", "T") + "Z"


def norm_stmt(s):
    return (s or "").replace("\n\t", "\n").strip()


def one(events, pred, what):
    got = [e for e in events if pred(e["fields"])]
    check(len(got) == 1, "expected exactly one event %s, found %d: %s" % (what, len(got), got[:3]))
    return got[0]["fields"]


def fatal_counts(events):
    c = collections.Counter()
    for e in events:
        f = e["fields"]
        if f.get("severity") == "FATAL":
            c[f.get("message", "").strip()] += 1
    return c


# ----------------------------------------------------------------- run 1

def workload1(cl, clients):
    """Returns what was done, for the assertions."""
    did = {}
    # Slow statements.
    for _ in range(2):
        clients.sql("SELECT pg_sleep(1.1) /* e2e-slow */;")
    # A statement on four lines (TAB-continued in the log).
    rc, out, err = clients.file(MULTILINE_SQL + "\n")
    check(rc == 0 and "e2e-multiline" not in err, "the multi-line statement failed: %s" % err)
    # Errors with folded lines.
    rc, out, err = clients.file("SELEC 'e2e-syntax';\n"
                                "DO $$ BEGIN RAISE EXCEPTION 'e2e boom' USING DETAIL = 'e2e detail', "
                                "HINT = 'e2e hint'; END $$;\n")
    check("syntax error" in err and "e2e boom" in err, "psql did not report both errors: %s" % err)

    # Every non-reserved slot taken, then one more: the reserved slot refuses.
    holders = []
    for i in range(MAX_CONN - RESERVED):
        s = clients.session("hold")
        check(s.connected, "session %d of %d could not connect: %s" % (i + 1, MAX_CONN - RESERVED, s.stderr()))
        holders.append(s)
    rc, _, err = clients.sql("SELECT 1", ok=False)
    check(rc != 0, "a connection past the %d non-reserved slots succeeded" % (MAX_CONN - RESERVED))
    time.sleep(0.3)   # the refused backend gives its slot back
    # A superuser in the last slot, then two more: too many clients.
    su = None
    for _ in range(10):
        su = clients.session("super", conninfo=cl.super_conninfo())
        if su.connected:
            break
        su.close()
        time.sleep(0.3)
    check(su.connected, "the superuser could not take the reserved slot: %s" % su.stderr())
    for _ in range(2):
        rc, _, err = clients.sql("SELECT 1", ok=False)
        check(rc != 0, "a connection past max_connections succeeded")
    for s in holders + [su]:
        s.close()
    check(clients.fatal["sorry, too many clients already"] >= 2,
          "psql did not report 'too many clients': %s" % dict(clients.fatal))

    # Wrong passwords.
    for _ in range(3):
        rc, _, err = clients.sql("SELECT 1", password="wrong-password", ok=False)
        check(rc != 0 and "password authentication failed" in err, "a wrong password was accepted: %s" % err)
    rc, _, err = clients.sql("SELECT 1", conninfo=cl.conninfo(user="intruder"), password="guess", ok=False)
    check(rc != 0, "an unknown role logged in")

    # A deadlock between two sessions.
    did["deadlock_pids"] = deadlock(clients)

    # A backend killed: the postmaster restarts every session, crash recovery.
    k = clients.session("crash")
    check(k.connected, "cannot connect for the crash: %s" % k.stderr())
    pid = int(k.do("SELECT pg_backend_pid();")[0])
    os.kill(pid, signal.SIGKILL)
    did["killed"] = pid
    k.close()
    wait_ready(clients, "the server to recover from the crash")

    # Smart shutdown with a session open: new connections are refused.
    s = clients.session("last")
    check(s.connected, "cannot connect before the shutdown: %s" % s.stderr())
    rc, out, err = cl.pg_ctl("stop", "-m", "smart", "-W")
    check(rc == 0, "pg_ctl stop -m smart failed: %s" % err)
    deadline = time.monotonic() + 30
    while "the database system is shutting down" not in clients.fatal:
        check(time.monotonic() < deadline, "no connection was refused with 'the database system is shutting "
              "down' within 30 s of the shutdown request: %s" % dict(clients.fatal))
        clients.sql("SELECT 1", ok=False)
        time.sleep(0.1)
    clients.sql("SELECT 1", ok=False)
    s.close()
    cl.wait_stopped("the server to stop after its last session")
    return did


def deadlock(clients):
    a, b = clients.session("dl-a"), clients.session("dl-b")
    check(a.connected and b.connected, "deadlock sessions could not connect: %s %s" % (a.stderr(), b.stderr()))
    pids = {int(a.do("SELECT pg_backend_pid();")[0]), int(b.do("SELECT pg_backend_pid();")[0])}
    a.do("BEGIN;\nUPDATE loans_loan SET balance = balance + 1 WHERE id = 1;")
    b.do("BEGIN;\nUPDATE loans_loan SET balance = balance + 1 WHERE id = 2;")
    ma = a.start_do("UPDATE loans_loan SET balance = balance + 1 WHERE id = 2;")
    time.sleep(0.1)
    mb = b.start_do("UPDATE loans_loan SET balance = balance + 1 WHERE id = 1;")
    check(a.wait(ma) is not None and b.wait(mb) is not None, "a deadlock session died")
    a.do("ROLLBACK;")
    b.do("ROLLBACK;")
    a.close()
    b.close()
    n = (a.stderr() + b.stderr()).count("deadlock detected")
    check(n == 1, "expected one 'deadlock detected' between the two sessions, psql reported %d:\n%s\n%s"
          % (n, a.stderr(), b.stderr()))
    return pids


def wait_started(cl, clients, log_path, timeout=60):
    """The first start: a server that cannot start here is a skip, not a failure."""
    deadline = time.monotonic() + timeout
    while True:
        if cl.proc.poll() is not None:
            skip("PostgreSQL cannot start here (exit %s):\n%s" % (cl.proc.returncode, tail(cl.server_log(), 20)))
        if os.path.exists(log_path) and clients.sql("SELECT 1", conninfo=cl.super_conninfo(), ok=False)[0] == 0:
            return
        if time.monotonic() > deadline:
            skip("PostgreSQL did not accept connections within %d s here:\n%s" % (timeout, tail(cl.server_log(), 20)))
        time.sleep(0.2)


def wait_ready(clients, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        rc, _, err = clients.sql("SELECT 1", ok=False)
        if rc == 0:
            return
        check(time.monotonic() < deadline, "gave up waiting for %s: %s" % (what, err))
        time.sleep(0.2)


def check_run1_events(ev, path, clients, did):
    recs = records(path)
    log("run 1: %d lines in the log, %d records, %d events from klaxon parse"
        % (read_bytes(path).count(b"\n"), len(recs), len(ev)))
    sev_ev = collections.Counter(e["fields"].get("severity") for e in ev)
    bad = {s: n for s, n in sev_ev.items() if s not in SEVERITIES}
    check(not bad, "events whose severity is not a severity (a folded line parsed as a record?): %s" % bad)
    sev_rec = collections.Counter(r[2] for r in recs)
    check(sev_ev == sev_rec, "events per severity %s, the log's records per severity %s"
          % (dict(sev_ev), dict(sev_rec)))
    check(len(ev) == len(recs), "%d events for %d records" % (len(ev), len(recs)))

    # Record by record: time, pid, severity, user/database as written.
    for e, r in zip(ev, recs):
        f = e["fields"]
        check(e["time"] == pg_time(r[0]), "event time %s for a record written at %s: %s" % (e["time"], r[0], r[3]))
        check(f.get("pid") == int(r[1]), "pid %r for a record of pid %s: %s" % (f.get("pid"), r[1], r[3]))
        check(f.get("severity") == r[2], "severity %r for %s" % (f.get("severity"), r[3]))
        m = re.match(r"^\S+ \S+ UTC \[\d+\] (\S*)@(\S*) [A-Z]+:  ", r[3])
        if m:
            check(f.get("user") == (m.group(1) or None) and f.get("database") == (m.group(2) or None),
                  "user/database %r/%r for %s" % (f.get("user"), f.get("database"), r[3]))
        else:
            check("user" not in f and "database" not in f, "user/database in a non-session record: %s" % e)
        check(isinstance(f.get("message"), str) and f["message"] != "", "no message: %s" % e)
        check(not f["message"].startswith("\t"), "a message starting inside a continuation: %s" % e)

    # Durations: a number of seconds wherever PostgreSQL wrote one.
    ndur = sum(1 for r in recs if "  duration: " in r[3])
    dur = [e["fields"] for e in ev if "duration" in e["fields"]]
    check(len(dur) == ndur, "%d events with a duration, %d 'duration:' records" % (len(dur), ndur))
    check(all(isinstance(f["duration"], (int, float)) and 0 <= f["duration"] < 60 for f in dur),
          "a duration that is not a number of seconds: %s" % [f["duration"] for f in dur][:10])
    slow = [f for f in dur if "e2e-slow" in (f.get("statement") or "")]
    check(len(slow) == 2 and all(1.1 <= f["duration"] < 30 for f in slow),
          "expected 2 pg_sleep(1.1) events with duration >= 1.1 s: %s" % slow)
    check(all(f["user"] == USER and f["database"] == DB for f in slow), "user/database of %s" % slow)

    f = one(ev, lambda f: "e2e-multiline" in (f.get("statement") or ""), "with the four-line statement")
    check(norm_stmt(f["statement"]) == MULTILINE_SQL.strip(),
          "the four-line statement is not whole: %r" % f["statement"])
    check(isinstance(f.get("duration"), (int, float)), "the four-line statement has no duration: %s" % f)

    f = one(ev, lambda f: f.get("severity") == "ERROR" and "syntax error" in f.get("message", ""),
            "ERROR syntax error")
    check(re.search(r'syntax error at or near "SELEC"', f["message"]), "message %r" % f["message"])
    check(norm_stmt(f.get("statement")) == "SELEC 'e2e-syntax';", "syntax error's statement: %r" % f.get("statement"))

    f = one(ev, lambda f: f.get("severity") == "ERROR" and f.get("message", "").startswith("e2e boom"),
            "ERROR e2e boom")
    check(f.get("detail") == "e2e detail" and f.get("hint") == "e2e hint", "detail/hint of the RAISE: %s" % f)
    check((f.get("context") or "").startswith("PL/pgSQL function inline_code_block line 1 at RAISE"),
          "context of the RAISE: %r" % f.get("context"))
    check(norm_stmt(f.get("statement")).startswith("DO $$ BEGIN RAISE EXCEPTION 'e2e boom'"),
          "statement of the RAISE: %r" % f.get("statement"))

    f = one(ev, lambda f: f.get("severity") == "ERROR" and f.get("message", "").startswith("deadlock detected"),
            "ERROR deadlock detected")
    check(f.get("pid") in did["deadlock_pids"], "the deadlock's pid %r is not one of the sessions' %s"
          % (f.get("pid"), did["deadlock_pids"]))
    check((f.get("detail") or "").count("waits for ShareLock on transaction") == 2,
          "the deadlock's detail (4 lines) is not whole: %r" % f.get("detail"))
    check(f.get("hint") == "See server log for query details.", "the deadlock's hint: %r" % f.get("hint"))
    check("while updating tuple" in (f.get("context") or ""), "the deadlock's context: %r" % f.get("context"))
    check("UPDATE loans_loan" in (f.get("statement") or ""), "the deadlock's statement: %r" % f.get("statement"))

    f = one(ev, lambda f: re.match(r"server process \(PID %d\) was terminated by signal 9" % did["killed"],
                                   f.get("message", "")), "LOG server process ... terminated by signal 9")
    check(f.get("severity") == "LOG" and "Failed process was running" in (f.get("detail") or ""),
          "the crash record's DETAIL is not folded into it: %s" % f)

    f = one(ev, lambda f: f.get("severity") == "FATAL" and "intruder" in f.get("message", ""),
            "FATAL for the unknown role")
    check('Role "intruder" does not exist.' in (f.get("detail") or "") and
          "Connection matched pg_hba.conf" in (f.get("detail") or ""),
          "the unknown role's two-line detail: %r" % f.get("detail"))
    check(f.get("user") == "intruder", "user of the unknown role's failure: %r" % f.get("user"))
    auth = [e["fields"] for e in ev if e["fields"].get("message") ==
            'password authentication failed for user "%s"' % USER]
    check(len(auth) == 3 and all(a.get("user") == USER and a.get("database") == DB and
                                 (a.get("detail") or "").startswith("Connection matched pg_hba.conf")
                                 for a in auth), "the three wrong passwords: %s" % auth)

    # Every FATAL the server sent a client is one event, and nothing else is.
    fe = fatal_counts(ev)
    check(fe == clients.fatal, "FATAL events per message %s, psql reported %s" % (dict(fe), dict(clients.fatal)))
    log("run 1 FATAL messages: %s" % dict(fe))


def run1(d, cl, clients):
    log_path = os.path.join(d, "logs", "postgresql.log")
    cl.start(os.path.join(d, "logs"), PREFIX1)
    wait_started(cl, clients, log_path)
    log("PostgreSQL %s up on 127.0.0.1:%d" % (cl.bindir, cl.port))
    clients.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (USER, PASSWORD), conninfo=cl.super_conninfo())
    clients.sql("CREATE DATABASE %s OWNER %s" % (DB, USER), conninfo=cl.super_conninfo())
    clients.sql("CREATE TABLE loans_loan (id int PRIMARY KEY, user_id int, balance numeric);"
                "INSERT INTO loans_loan VALUES (1, 10, 100), (2, 20, 200);")

    scaled, pack = scaled_pack(d)
    events = os.path.join(d, "events.jsonl")
    pg_parser = "{name: pg, type: postgres, log_line_prefix: %s}" % yaml_str(PREFIX1)
    cfg = klaxon_config(d, "run1", log_path, pg_parser, scaled, events=events)
    rc, out, err = run([KLAXON, "check", "-c", cfg])
    check(rc == 0, "klaxon check of the test config (the scaled example pack) failed:\n%s" % tail(err))
    out_path, err_path = os.path.join(d, "run1.alerts"), os.path.join(d, "run1.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out_path, stderr=err_path)

    did = workload1(cl, clients)
    log("run 1 done; psql reported FATAL: %s" % dict(clients.fatal))

    want = ["SlowQuery", "TooManyConnections", "DatabaseAuthFailures", "DatabaseDeadlock",
            "DatabaseCrashed", "DatabaseUnavailable"]
    wait_for(lambda: all(w in fired(alerts(out_path, "klaxon run", complete_only=True)) for w in want),
             30, "klaxon run to fire %s (so far: %s)" % (want, sorted(fired(alerts(out_path, "klaxon run",
                                                                                     complete_only=True)))),
             proc=kl, proc_log=err_path)
    n_ev = lambda: len(json_lines(events, "events sink", complete_only=True))  # noqa: E731
    parsed = klaxon_parse(cfg, log_path, "run 1")
    wait_for(lambda: n_ev() >= len(parsed), 30, "the events sink to hold %d events" % len(parsed),
             proc=kl, proc_log=err_path)
    time.sleep(1.0)   # a duplicate or a late split record would show now
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err_path))))
    f = fired(alerts(out_path, "klaxon run"))
    log("klaxon run fired: %s" % {k: v for k, v in f.items()})
    users = [l.get("user") for l in f["DatabaseAuthFailures"]]
    check(users == [USER], "DatabaseAuthFailures should fire once, for user %s (3 failures), not for "
          "intruder (1): %s" % (USER, users))

    live = json_lines(events, "events sink")
    check(len(live) == len(parsed), "klaxon run's events sink has %d events, klaxon parse %d"
          % (len(live), len(parsed)))
    diff = [i for i, (a, b) in enumerate(zip(live, parsed)) if a["fields"] != b["fields"] or a["time"] != b["time"]]
    check(not diff, "klaxon run and klaxon parse disagree on %d events; first: %s vs %s"
          % (len(diff), diff and live[diff[0]], diff and parsed[diff[0]]))

    check_run1_events(parsed, log_path, clients, did)

    # The shipped pack, unscaled, over the same log.
    cfg_pack = klaxon_config(d, "pack1", log_path, pg_parser, pack)
    f = fired(klaxon_replay(cfg_pack, log_path, "replay of run 1 with examples/rules/postgres.yml"))
    log("replay with the example pack fired: %s" % sorted(f))
    for w in want[1:]:
        check(w in f, "the example pack did not fire %s over run 1's log (fired: %s)" % (w, sorted(f)))
    check("SlowQuery" not in f and "SlowQueriesP95" not in f,
          "the example pack's slow-query rules fired though nothing ran for a minute: %s" % sorted(f))


# ----------------------------------------------------------------- run 2

def run2(d, cl, clients):
    clients.fatal.clear()
    logdir = os.path.join(d, "logs2")
    signal_file = os.path.join(cl.data, "standby.signal")
    write(signal_file, "")
    if cl.root:
        os.chown(signal_file, cl.uid, cl.gid)
    cl.start(logdir, PREFIX2, destination="stderr,jsonlog",
             extra={"hot_standby": "off", "restore_command": "sleep 2; exit 1"})
    # While the startup process waits for restore_command: 'starting up'; then
    # (a standby without hot standby) 'not accepting connections'.
    deadline = time.monotonic() + 60
    while not any("not accepting connections" in m for m in clients.fatal):
        check(cl.proc.poll() is None, "the standby exited:\n" + tail(cl.server_log()))
        check(time.monotonic() < deadline, "the standby never refused a connection as 'not accepting "
              "connections' within 60 s: %s" % dict(clients.fatal))
        clients.sql("SELECT 1", ok=False)
        time.sleep(0.1)
    check(clients.fatal["the database system is starting up"] >= 1,
          "no connection was refused with 'the database system is starting up': %s" % dict(clients.fatal))
    rc, out, err = cl.pg_ctl("promote", "-w", "-t", "90")
    check(rc == 0, "pg_ctl promote failed: %s %s" % (out, err))
    wait_ready(clients, "the promoted server")
    log("run 2: standby refused %s; promoted" % dict(clients.fatal))

    clients.sql("SELECT pg_sleep(1.1) /* e2e-slow */;")
    clients.file(MULTILINE_SQL + "\n")
    clients.file("SELEC 'e2e-syntax';\nSELECT 1/0;\n"
                 "DO $$ BEGIN RAISE EXCEPTION 'e2e boom' USING DETAIL = 'e2e detail', HINT = 'e2e hint'; END $$;\n")
    for _ in range(3):
        clients.sql("SELECT 1", password="wrong-password", ok=False)
    deadlock(clients)
    rc, out, err = cl.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
    check(rc == 0, "pg_ctl stop -m fast failed: %s" % err)
    cl.wait_stopped("the server to stop (run 2)")

    stderr_log, json_log = os.path.join(logdir, "postgresql.log"), os.path.join(logdir, "postgresql.json")
    check(os.path.exists(json_log), "PostgreSQL wrote no jsonlog file (%s)" % os.listdir(logdir))
    scaled, _ = scaled_pack(d)
    cfg_s = klaxon_config(d, "run2s", stderr_log, "{name: pg, type: postgres, log_line_prefix: %s}"
                          % yaml_str(PREFIX2), scaled)
    cfg_j = klaxon_config(d, "run2j", json_log, "{name: pg, type: postgres_json}", scaled)
    ev_s = klaxon_parse(cfg_s, stderr_log, "run 2 stderr (%e %a)")
    ev_j = klaxon_parse(cfg_j, json_log, "run 2 jsonlog")
    log("run 2: %d stderr events, %d jsonlog events (%d json lines)"
        % (len(ev_s), len(ev_j), read_bytes(json_log).count(b"\n")))
    check(len(ev_j) == read_bytes(json_log).count(b"\n"), "the jsonlog file has %d lines, %d events"
          % (read_bytes(json_log).count(b"\n"), len(ev_j)))
    recs = records(stderr_log)
    check(len(ev_s) == len(recs), "run 2 stderr: %d events for %d records" % (len(ev_s), len(recs)))

    # sqlstate (%e) and application (%a) on the stderr side.
    want_state = {"syntax error": "42601", "e2e boom": "P0001", "division by zero": "22012",
                  "deadlock detected": "40P01", 'password authentication failed for user "%s"' % USER: "28P01",
                  "the database system is starting up": "57P03"}
    for ev, what in ((ev_s, "stderr"), (ev_j, "jsonlog")):
        for msg, state in want_state.items():
            got = [e["fields"] for e in ev if e["fields"].get("message", "").startswith(msg)]
            check(got and all(g.get("sqlstate") == state for g in got),
                  "%s: events '%s...' should have sqlstate %s: %s" % (what, msg, state, got[:3]))
        fe = fatal_counts(ev)
        check(fe == clients.fatal, "%s: FATAL events per message %s, psql reported %s"
              % (what, dict(fe), dict(clients.fatal)))
        f = one(ev, lambda f: "e2e-multiline" in (f.get("statement") or ""), "(%s) four-line statement" % what)
        check(norm_stmt(f["statement"]) == MULTILINE_SQL.strip(), "%s: four-line statement %r"
              % (what, f["statement"]))
        check(f.get("application") == "psql", "%s: application of a psql statement: %r" % (what, f.get("application")))
    logs_ = [e["fields"] for e in ev_s if e["fields"].get("severity") == "LOG"]
    check(all(f.get("sqlstate") == "00000" for f in logs_), "stderr LOG events without sqlstate 00000")

    def key(e):
        f = e["fields"]
        st = f.get("sqlstate")
        return (f.get("severity"), None if st == "00000" else st, f.get("user"), f.get("database"), f.get("pid"),
                e["time"])
    ks, kj = collections.Counter(map(key, ev_s)), collections.Counter(map(key, ev_j))
    check(ks == kj, "stderr and jsonlog events differ (severity, sqlstate, user, database, pid, time):\n"
          "only in stderr: %s\nonly in jsonlog: %s" % (dict(ks - kj), dict(kj - ks)))
    ds = sorted(round(e["fields"]["duration"], 3) for e in ev_s if "duration" in e["fields"])
    dj = sorted(round(e["fields"]["duration"], 3) for e in ev_j if "duration" in e["fields"])
    check(ds == dj and ds, "durations differ between stderr (%d) and jsonlog (%d)" % (len(ds), len(dj)))
    def folded(ev):
        return sorted(tuple([f.get("sqlstate")] + [norm_stmt(f.get(k)) for k in ("detail", "hint", "context",
                                                                                 "statement")])
                      for f in (e["fields"] for e in ev) if f.get("severity") in ("ERROR", "FATAL"))
    fs, fj = folded(ev_s), folded(ev_j)
    check(fs == fj, "ERROR/FATAL events' detail/hint/context/statement differ:\nstderr:  %s\njsonlog: %s"
          % (fs, fj))

    want = {"DatabaseUnavailable", "DatabaseDeadlock", "DatabaseAuthFailures", "SlowQuery"}
    fs = fired(klaxon_replay(cfg_s, stderr_log, "replay of run 2 (stderr)"))
    fj = fired(klaxon_replay(cfg_j, json_log, "replay of run 2 (jsonlog)"))
    log("run 2 replay fired: stderr %s, jsonlog %s" % (sorted(fs), sorted(fj)))
    check(want <= set(fs), "replay of run 2's stderr log fired %s, not all of %s" % (sorted(fs), sorted(want)))
    check(sorted(fs) == sorted(fj), "the two formats fire different alerts: %s vs %s" % (sorted(fs), sorted(fj)))


def body():
    d = tmpdir("klaxon-pg")
    cl = Cluster(d)
    clients = Clients(cl)
    run1(d, cl, clients)
    run2(d, cl, clients)


if __name__ == "__main__":
    main(body)
