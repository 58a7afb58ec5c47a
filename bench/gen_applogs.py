#!/usr/bin/env python3
"""bench/gen_applogs.py — realistic Debt Profile application and database logs,
deterministic (seeded), for the benchmark and for trying rules.

  gen_applogs.py --format FORMAT [--records N] [--rate R] [--seed S] [--start EPOCH]

FORMAT is the klaxon parser that reads the output:
  django           Django through logging, the `django` parser's default format
                   ('%(asctime)s %(levelname)s %(name)s %(process)d %(message)s'):
                   request and task lines, 404s, multi-line messages, tracebacks
                   as Python 3.11 prints them (carets included), chained ones
                   (psycopg2's OperationalError → django.db.utils.OperationalError,
                   its message on two lines)
  gunicorn_access  gunicorn's default access log format
  json             one JSON object per line (python-json-logger style, nested
                   `request` object)
  postgres         PostgreSQL's stderr log, log_line_prefix '%m [%p] %q%u@%d ':
                   duration lines (log_min_duration_statement = 0), statements on
                   several TAB-continued lines, ERRORs with DETAIL/HINT/CONTEXT/
                   STATEMENT, FATALs, deadlocks, checkpoints, autovacuum reports
  postgres_json    the same server's jsonlog (PostgreSQL 15)

N records (default 100000) — a record is one event once klaxon has assembled
multi-line records, so lines > records for django and postgres. R records/s of
event time (default 200) from --start (default 1699999200, 2023-11-14T22:00Z,
gen_nginx's). From 60 % to 60 % + 2 minutes of the span (when it is longer
than 10 minutes) the database is in trouble: too many clients, a 75 s query, a
deadlock, the application's OperationalErrors — so the example rules fire.
The same seed and arguments give the same bytes.
"""
import argparse
import json
import math
import random
import sys
import time

USER, DB = "debtprofile_user", "debtprofile"
PATHS = ["/api/debts/", "/api/debts/%d", "/api/plans/", "/api/plans/%d/schedule", "/api/loans/%d",
         "/dashboard/", "/accounts/login/", "/api/payments/", "/static/app.%d.js", "/healthz"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "python-requests/2.31.0", "kube-probe/1.28"]
PY = "/usr/local/lib/python3.11/site-packages"
APP = "/app"


class Gen:
    def __init__(self, args):
        self.r = random.Random(args.seed)
        self.n = args.records
        self.rate = args.rate
        self.t = float(args.start)
        span = self.n / self.rate
        self.inc = (args.start + 0.6 * span, args.start + 0.6 * span + 120) if span > 600 else None
        self.pids = [self.r.randrange(20, 4000) for _ in range(4)]
        self.next_pid = 5000

    def tick(self):
        self.t += self.r.expovariate(self.rate)
        return self.t

    def in_incident(self):
        return self.inc is not None and self.inc[0] <= self.t < self.inc[1]

    def path(self):
        p = self.r.choice(PATHS)
        return p % self.r.randrange(1, 5000) if "%d" in p else p

    def backend_pid(self):
        self.next_pid += self.r.randrange(1, 4)
        if self.next_pid > 4000000:
            self.next_pid = 5000
        return self.next_pid


# ---------------------------------------------------------------- django

def asctime(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + ",%03d" % int((t % 1) * 1000)


def frame(g, path, line, func, code):
    out = ['  File "%s", line %d, in %s' % (path, line, func), "    " + code]
    if g.r.random() < 0.6:
        w = len(code)
        s = g.r.randrange(0, max(1, w // 3))
        out.append("    " + " " * s + "^" * max(1, w - s))
    return out


def django_stack(g, depth, last):
    fr = []
    fr += frame(g, PY + "/django/core/handlers/exception.py", 55, "inner", "response = get_response(request)")
    fr += frame(g, PY + "/django/core/handlers/base.py", 197, "_get_response",
                "response = wrapped_callback(request, *callback_args, **callback_kwargs)")
    for i in range(depth):
        mod = g.r.choice(["debts/views.py", "plans/services.py", "loans/models.py", "plans/calculator.py"])
        fr += frame(g, "%s/%s" % (APP, mod), g.r.randrange(10, 400), g.r.choice(
            ["get", "post", "recalculate", "schedule_for", "apply_payment", "dispatch"]),
            g.r.choice(["plan = self.calculator.schedule_for(debt, strategy=strategy)",
                        "return super().dispatch(request, *args, **kwargs)",
                        "balance = debts[debt_id].balance - payment.amount",
                        "rows = list(qs.select_related('user'))"]))
    fr += last
    return fr


def django_record(g):
    t = g.tick()
    pid = g.r.choice(g.pids)
    head = "%s %%s %%s %d " % (asctime(t), pid)
    x = g.r.random()
    if g.in_incident() and x < 0.3:
        port = 5432
        msg = ('connection to server at "db" (172.18.0.3), port %d failed: Connection refused\n'
               "\tIs the server running on that host and accepting TCP/IP connections?\n" % port)
        inner = ["Traceback (most recent call last):"]
        inner += frame(g, PY + "/django/db/backends/base/base.py", 289, "ensure_connection", "self.connect()")
        inner += frame(g, PY + "/psycopg2/__init__.py", 122, "connect",
                       "conn = _connect(dsn, connection_factory=connection_factory, **kwasync)")
        inner += ["psycopg2.OperationalError: " + msg, "",
                  "The above exception was the direct cause of the following exception:", ""]
        outer = ["Traceback (most recent call last):"] + django_stack(
            g, g.r.randrange(2, 6), frame(g, PY + "/django/db/utils.py", 91, "__exit__",
                                          "raise dj_exc_value.with_traceback(traceback) from exc_value"))
        outer += ["django.db.utils.OperationalError: " + msg]
        return (head % ("ERROR", "django.request") + "Internal Server Error: %s\n" % g.path()
                + "\n".join(inner + outer) + "\n")
    if x < 0.62:
        return head % ("INFO", g.r.choice(["debts.views", "plans.services", "loans.tasks"])) + g.r.choice([
            "plan %d recalculated for user %d in %d ms" % (g.r.randrange(1, 9999), g.r.randrange(1, 5000),
                                                           g.r.randrange(3, 900)),
            "payment %d applied to debt %d" % (g.r.randrange(1, 99999), g.r.randrange(1, 9999)),
            "user %d logged in" % g.r.randrange(1, 5000),
            "sent reminder email to user %d" % g.r.randrange(1, 5000)]) + "\n"
    if x < 0.80:
        return head % ("WARNING", "django.request") + g.r.choice([
            "Not Found: %s" % g.path(), "Forbidden (CSRF token missing.): /api/plans/",
            "Bad Request: /api/payments/"]) + "\n"
    if x < 0.90:
        return head % ("INFO", "django.security.csrf" if g.r.random() < 0.1 else "debts.tasks") + \
            "nightly interest accrual: %d debts, %d skipped" % (g.r.randrange(100, 9000), g.r.randrange(0, 30)) + "\n"
    if x < 0.94:
        lines = ["payment webhook rejected:", "  provider: stripe", "  event: evt_%016x" % g.r.getrandbits(64),
                 "  reason: %s" % g.r.choice(["bad signature", "unknown customer", "amount mismatch"])]
        return head % ("WARNING", "payments.webhooks") + "\n".join(lines[:g.r.randrange(2, 5)]) + "\n"
    if x < 0.999:
        exc = g.r.choice([
            ("KeyError", "'debt_%d'" % g.r.randrange(1, 9999), "balance = debts[debt_id].balance - payment.amount"),
            ("ValueError", "invalid literal for int() with base 10: '12,5'", "amount = int(request.POST['amount'])"),
            ("django.db.utils.IntegrityError",
             'duplicate key value violates unique constraint "plans_debtplan_user_id_key"\n'
             "DETAIL:  Key (user_id)=(%d) already exists." % g.r.randrange(1, 5000), "plan.save()"),
            ("AttributeError", "'NoneType' object has no attribute 'balance'", "total += debt.balance"),
        ])
        tb = ["Traceback (most recent call last):"] + django_stack(
            g, g.r.randrange(1, 8), frame(g, APP + "/plans/calculator.py", g.r.randrange(10, 300), "apply", exc[2]))
        tb.append("%s: %s" % (exc[0], exc[1]))
        return head % ("ERROR", "django.request") + "Internal Server Error: %s\n" % g.path() + "\n".join(tb) + "\n"
    return head % ("CRITICAL", "celery.worker") + "Unrecoverable error: worker lost its broker connection\n"


# ---------------------------------------------------------------- gunicorn access

def gunicorn_record(g):
    t = g.tick()
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    x = g.r.random()
    status = 200 if x < 0.86 else 302 if x < 0.9 else 404 if x < 0.96 else 400 if x < 0.975 else 500
    if g.in_incident() and g.r.random() < 0.3:
        status = 500
    method = "POST" if g.r.random() < 0.15 else "GET"
    return '%s - - [%s] "%s %s HTTP/1.0" %d %d "%s" "%s"\n' % (
        "172.18.0.%d" % g.r.randrange(2, 9), stamp, method, g.path(), status,
        g.r.randrange(0, 40000) if status != 302 else 0,
        g.r.choice(["-", "https://debtprofile.example/dashboard/"]), g.r.choice(AGENTS))


# ---------------------------------------------------------------- json

def json_record(g):
    t = g.tick()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
    x = g.r.random()
    level = "info" if x < 0.85 else "warning" if x < 0.95 else "error"
    if g.in_incident() and g.r.random() < 0.3:
        level = "error"
    status = 200 if level == "info" else 404 if level == "warning" else 500
    obj = {"timestamp": stamp, "level": level, "logger": g.r.choice(["debts.views", "plans.api", "payments"]),
           "message": "request finished" if level != "error" else "request failed",
           "request": {"method": g.r.choice(["GET", "GET", "GET", "POST"]), "path": g.path(), "status": status,
                       "duration_ms": round(g.r.lognormvariate(3.5, 0.9), 2)},
           "user_id": g.r.randrange(1, 5000), "pid": g.r.choice(g.pids)}
    if level == "error":
        obj["exc_info"] = "Traceback (most recent call last):\n  ...\nKeyError: 'debt_%d'" % g.r.randrange(1, 999)
    return json.dumps(obj, separators=(",", ":")) + "\n"


# ---------------------------------------------------------------- postgres (stderr and jsonlog)

STATEMENTS = [
    "SELECT \"loans_loan\".\"id\", \"loans_loan\".\"user_id\", \"loans_loan\".\"balance\" FROM \"loans_loan\" "
    "WHERE \"loans_loan\".\"user_id\" = %d",
    "SELECT \"plans_debtplan\".\"id\", \"plans_debtplan\".\"strategy\" FROM \"plans_debtplan\" WHERE "
    "\"plans_debtplan\".\"user_id\" = %d LIMIT 21",
    "UPDATE \"loans_loan\" SET \"balance\" = balance - 120.00 WHERE \"loans_loan\".\"id\" = %d",
    "INSERT INTO \"payments_payment\" (\"loan_id\", \"amount\", \"created\") VALUES (%d, 120.00, now()) "
    "RETURNING \"payments_payment\".\"id\"",
    "BEGIN", "COMMIT",
    "SELECT 1",
]
MULTI = ("SELECT l.user_id,\n"
         "       sum(l.balance) AS total,\n"
         "       count(*) AS loans\n"
         "  FROM loans_loan l\n"
         "  JOIN auth_user u ON u.id = l.user_id\n"
         " WHERE u.is_active AND l.user_id = %d\n"
         " GROUP BY l.user_id;")


class PgRec:
    """One message as PostgreSQL's elog builds it: written as several stderr
    lines or one jsonlog line."""
    __slots__ = ("t", "pid", "sev", "msg", "state", "session", "extra")

    def __init__(self, t, pid, sev, msg, state="00000", session=True, **extra):
        self.t, self.pid, self.sev, self.msg, self.state, self.session, self.extra = \
            t, pid, sev, msg, state, session, extra


def pg_records(g):
    t = g.tick()
    pid = g.backend_pid()
    x = g.r.random()
    if g.in_incident():
        y = g.r.random()
        if y < 0.25:
            return [PgRec(t, pid, "FATAL", "sorry, too many clients already", "53300")]
        if y < 0.26:
            return [PgRec(t, pid, "LOG", "duration: %.3f ms  statement: %s" % (
                75000 + g.r.random() * 1000, MULTI % g.r.randrange(1, 5000)))]
        if y < 0.27:
            a, b = pid, pid + 1
            st = STATEMENTS[2] % g.r.randrange(1, 9999)
            return [PgRec(t, a, "ERROR", "deadlock detected", "40P01",
                          detail="Process %d waits for ShareLock on transaction %d; blocked by process %d.\n"
                                 "Process %d waits for ShareLock on transaction %d; blocked by process %d.\n"
                                 "Process %d: %s\nProcess %d: %s" % (a, 9001, b, b, 9000, a, a, st, b, st),
                          hint="See server log for query details.",
                          context='while updating tuple (0,%d) in relation "loans_loan"' % g.r.randrange(1, 99),
                          statement=st)]
    if x < 0.86:
        if g.r.random() < 0.08:
            st = MULTI % g.r.randrange(1, 5000)
        else:
            st = g.r.choice(STATEMENTS)
            if "%d" in st:
                st = st % g.r.randrange(1, 9999)
        ms = g.r.lognormvariate(-0.7, 1.3)
        if g.r.random() < 0.002:
            ms = g.r.uniform(1000, 8000)
        return [PgRec(t, pid, "LOG", "duration: %.3f ms  statement: %s" % (ms, st))]
    if x < 0.90:
        k = g.r.randrange(1, 5000)
        return [PgRec(t, pid, "ERROR", 'duplicate key value violates unique constraint "plans_debtplan_user_id_key"',
                      "23505", detail="Key (user_id)=(%d) already exists." % k,
                      statement="INSERT INTO \"plans_debtplan\" (\"user_id\", \"strategy\") VALUES (%d, 'avalanche')"
                                % k)]
    if x < 0.92:
        return [PgRec(t, pid, "ERROR", "canceling statement due to statement timeout", "57014",
                      statement=MULTI % g.r.randrange(1, 5000))]
    if x < 0.94:
        u = USER if g.r.random() < 0.8 else g.r.choice(["admin", "postgres", "root"])
        d = ('Role "%s" does not exist.\n' % u if u != USER else "") + \
            'Connection matched pg_hba.conf line 100: "host all all all scram-sha-256"'
        return [PgRec(t, pid, "FATAL", 'password authentication failed for user "%s"' % u, "28P01",
                      user=u, detail=d)]
    if x < 0.96:
        return [PgRec(t, pid, "ERROR", 'relation "plans_schedule" does not exist at character 15', "42P01",
                      statement="SELECT * FROM plans_schedule WHERE plan_id = %d" % g.r.randrange(1, 999))]
    if x < 0.975:
        w = g.r.randrange(10, 900)
        if g.r.random() < 0.5:
            return [PgRec(t, 27, "LOG", "checkpoint starting: time", session=False)]
        return [PgRec(t, 27, "LOG", "checkpoint complete: wrote %d buffers (%.1f%%); 0 WAL file(s) added, "
                      "0 removed, 1 recycled; write=%.3f s, sync=0.004 s, total=%.3f s; sync files=%d, "
                      "longest=0.002 s, average=0.001 s; distance=%d kB, estimate=%d kB"
                      % (w, w / 163.84, w / 30.0, w / 30.0 + 0.01, w // 4, w * 8, w * 9), session=False)]
    if x < 0.99:
        rel = g.r.choice(["loans_loan", "payments_payment", "plans_debtplan"])
        return [PgRec(t, pid, "LOG", "automatic vacuum of table \"%s.public.%s\": index scans: 1\n"
                      "pages: 0 removed, %d remain, %d scanned (100.00%% of total)\n"
                      "tuples: %d removed, %d remain, 0 are dead but not yet removable\n"
                      "removable cutoff: %d, which was 0 XIDs old when operation ended\n"
                      "index scan needed: %d pages from table (%.2f%% of total) had %d dead item "
                      "identifiers removed\n"
                      "avg read rate: 0.000 MB/s, avg write rate: 0.000 MB/s\n"
                      "buffer usage: %d hits, 0 misses, 0 dirtied\n"
                      "WAL usage: %d records, 0 full page images, %d bytes\n"
                      "system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s"
                      % (DB, rel, 40, 40, 120, 4000, 9000 + int(t) % 1000, 3, 7.5, 120, 300, 250, 20000),
                      session=False)]
    return [PgRec(t, pid, "ERROR", 'syntax error at or near "SELEC" at character 1', "42601",
                  statement="SELEC * FROM loans_loan")]


def pg_stamp(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + ".%03d UTC" % int((t % 1) * 1000)


def pg_stderr(rec):
    user = rec.extra.get("user", USER)
    pre = "%s [%d] %s" % (pg_stamp(rec.t), rec.pid, ("%s@%s " % (user, DB)) if rec.session else "")
    out = [pre + "%s:  %s" % (rec.sev, rec.msg.replace("\n", "\n\t"))]
    for key in ("detail", "hint", "context", "statement"):
        if key in rec.extra:
            out.append(pre + "%s:  %s" % (key.upper(), rec.extra[key].replace("\n", "\n\t")))
    return "\n".join(out) + "\n"


def pg_json(rec, line_num):
    o = {"timestamp": pg_stamp(rec.t)}
    if rec.session:
        o["user"] = rec.extra.get("user", USER)
        o["dbname"] = DB
    o["pid"] = rec.pid
    if rec.session:
        o["remote_host"] = "172.18.0.4"
        o["remote_port"] = 40000 + rec.pid % 20000
    o["session_id"] = "%x.%x" % (int(rec.t) - 60, rec.pid)
    o["line_num"] = line_num
    if rec.session:
        o["ps"] = "idle"
    o["session_start"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec.t - 60))
    if rec.session:
        o["vxid"] = "3/%d" % (rec.pid % 9999)
    o["txid"] = 0
    o["error_severity"] = rec.sev
    if rec.state != "00000":
        o["state_code"] = rec.state
    msg = rec.msg
    if msg.endswith(" at character 1") or msg.endswith(" at character 15"):
        msg, _, pos = msg.rpartition(" at character ")
        o["cursor_position"] = int(pos)
    o["message"] = msg
    for key in ("detail", "hint", "context", "statement"):
        if key in rec.extra:
            o[key] = rec.extra[key]
    if rec.session:
        o["application_name"] = ""
    o["backend_type"] = "client backend" if rec.session else "checkpointer"
    o["query_id"] = 0
    return json.dumps(o, separators=(",", ":"), ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--format", required=True,
                    choices=["django", "gunicorn_access", "json", "postgres", "postgres_json"])
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", type=int, default=1699999200)
    a = ap.parse_args()
    if a.records < 0 or a.rate <= 0 or math.isnan(a.rate):
        ap.error("--records must be >= 0 and --rate > 0")
    g = Gen(a)
    out = sys.stdout
    buf = []
    if a.format in ("postgres", "postgres_json"):
        done = 0
        while done < a.records:
            for rec in pg_records(g):
                if done == a.records:
                    break
                buf.append(pg_stderr(rec) if a.format == "postgres" else pg_json(rec, done + 1))
                done += 1
            if len(buf) >= 4096:
                out.write("".join(buf))
                buf = []
    else:
        fn = {"django": django_record, "gunicorn_access": gunicorn_record, "json": json_record}[a.format]
        for _ in range(a.records):
            buf.append(fn(g))
            if len(buf) >= 4096:
                out.write("".join(buf))
                buf = []
    out.write("".join(buf))
    out.flush()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
