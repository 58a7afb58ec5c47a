#!/usr/bin/env python3
"""A real Django application (Debian's python3-django), its log followed by klaxon.

The test writes a small Django project in a temporary folder: settings with
TIME_ZONE UTC, DEBUG off, a PostgreSQL database on a loopback port where
nothing listens (psycopg2 gets `Connection refused`), and LOGGING with two
file handlers on the root logger: app.log in the `django` parser's default
format (`%(asctime)s %(levelname)s %(name)s %(process)d %(message)s`) and
verbose.log in Django's documented "verbose" format (`%(levelname)s
%(asctime)s %(module)s %(process)d %(thread)d %(message)s`, read by a parser
with that `format` option). Views: /ok logs a line; /boom raises KeyError;
/db opens a cursor (django.db.utils.OperationalError, chained from psycopg2's,
its message on two lines); /handled logs a ValueError with logger.exception and
a two-line message; /nested raises proj.views.PaymentError while handling a
KeyError; /warn logs a three-line warning without a traceback; anything else is
a 404. Debian's gunicorn serves it on 127.0.0.1 (two workers, access log in
its default format); without gunicorn, Python's wsgiref server. Bounded
requests with urllib.

`klaxon run` follows the three logs from the start, with examples/rules/app.yml
(AppExceptionRate's `for: 1m` scaled to 0s) and a jsonl events sink. Asserts:
  - `klaxon parse` of app.log: no parse error; one event per record (a line
    starting with a date begins one; a traceback, a chained traceback and a
    multi-line message are each one event); time (UTC, milliseconds), level,
    logger, pid as written; `exception` is the type of the final exception
    of the record's traceback — KeyError x12, django.db.utils.OperationalError
    x4 (its exception_message holds both lines), ValueError x3,
    proj.views.PaymentError x2 — and absent without a traceback; the
    three-line warning is whole in `message`;
  - verbose.log (the `format` option) gives as many events, with the same
    level, pid and exception, in the same order;
  - gunicorn's access log (`gunicorn_access`): one event per request, the
    statuses the client saw;
  - `klaxon run` fires AppExceptionRate for exception KeyError only (12 > 10)
    and AppDatabaseConnectionErrors (4 >= 3); its events sink equals `klaxon
    parse`'s output; it stops cleanly on SIGTERM;
  - `klaxon replay` of app.log with the unscaled pack fires
    AppDatabaseConnectionErrors and not AppCritical.
Skips (77) only when python3-django (or psycopg2, which the failing database
connection needs) is not installed. Deadlines only guard against a hang.
"""
import collections
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, SRC, alerts, check, free_port, json_lines, log, main, read_bytes,  # noqa: E402
                    run, skip, start, stop, tail, tmpdir, wait_for, write, yaml_str)

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
VERBOSE_FORMAT = "%(levelname)s %(asctime)s %(module)s %(process)d %(thread)d %(message)s"
WARN_MESSAGE = "payment webhook rejected:\n  reason: bad signature\n  id: 42"
HANDLED_MESSAGE = "could not parse amount\nfrom the import file"
# path → (requests, expected status, final exception type or None)
PLAN = collections.OrderedDict([
    ("/ok", (20, 200, None)),
    ("/boom", (12, 500, "KeyError")),
    ("/db", (4, 500, "django.db.utils.OperationalError")),
    ("/handled", (3, 200, "ValueError")),
    ("/nested", (2, 500, "proj.views.PaymentError")),
    ("/warn", (2, 200, None)),
    ("/nope", (2, 404, None)),
])
START_RE = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d),(\d{3}) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) (\d+) ")

SETTINGS = """\
import os
BASE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "klaxon-e2e-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "proj.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "debtprofile", "USER": "debtprofile_user", "PASSWORD": "unused",
        "HOST": "127.0.0.1", "PORT": "%(dbport)d", "CONN_MAX_AGE": 0,
        "OPTIONS": {"connect_timeout": 5},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "klaxon": {"format": %(fmt)r},
        "verbose": {"format": %(vfmt)r},
    },
    "handlers": {
        "app": {"class": "logging.FileHandler", "filename": os.path.join(BASE, "app.log"),
                "formatter": "klaxon"},
        "verbose": {"class": "logging.FileHandler", "filename": os.path.join(BASE, "verbose.log"),
                    "formatter": "verbose"},
    },
    "root": {"handlers": ["app", "verbose"], "level": "INFO"},
}
"""

URLS = """\
from django.urls import path
from . import views
urlpatterns = [path(name, getattr(views, name)) for name in ("ok", "boom", "db", "handled", "nested", "warn")]
"""

VIEWS = """\
import logging
from django.db import connection
from django.http import HttpResponse

log = logging.getLogger("proj.views")


class PaymentError(Exception):
    pass


def ok(request):
    log.info("ok served")
    return HttpResponse("ok\\n")


def boom(request):
    debts = {}
    return HttpResponse(debts["missing_debt_id"])


def db(request):
    with connection.cursor() as c:
        c.execute("SELECT 1")
    return HttpResponse("db\\n")


def handled(request):
    try:
        int("12,5")
    except ValueError:
        log.exception(%(handled)r)
    return HttpResponse("handled\\n")


def nested(request):
    try:
        {}["plan"]
    except KeyError:
        raise PaymentError("could not load the payment plan")


def warn(request):
    log.warning(%(warn)r)
    return HttpResponse("warned\\n")
""" % {"handled": HANDLED_MESSAGE, "warn": WARN_MESSAGE}

WSGI = """\
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""


def django_python():
    """A Python that imports Django and psycopg2 (Debian's: /usr/bin/python3)."""
    tried = []
    for py in ("/usr/bin/python3", sys.executable):
        if not py or not os.access(py, os.X_OK) or py in tried:
            continue
        tried.append(py)
        r = subprocess.run([py, "-c", "import django, psycopg2; print(django.get_version())"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return py, r.stdout.strip()
    skip("python3-django and python3-psycopg2 are not installed (Debian packages; tried %s)" % ", ".join(tried))


def make_project(d, dbport):
    proj = os.path.join(d, "proj")
    os.makedirs(proj)
    write(os.path.join(proj, "__init__.py"), "")
    write(os.path.join(proj, "settings.py"), SETTINGS % {"dbport": dbport, "fmt": DEFAULT_FORMAT,
                                                         "vfmt": VERBOSE_FORMAT})
    write(os.path.join(proj, "urls.py"), URLS)
    write(os.path.join(proj, "views.py"), VIEWS)
    write(os.path.join(proj, "wsgi.py"), WSGI)


def serve(py, d, port):
    env = {"DJANGO_SETTINGS_MODULE": "proj.settings", "PYTHONPATH": d, "PYTHONDONTWRITEBYTECODE": "1",
           "TZ": "UTC"}
    has_gunicorn = subprocess.run([py, "-c", "import gunicorn"], capture_output=True).returncode == 0
    if has_gunicorn:
        argv = [py, "-m", "gunicorn", "--chdir", d, "--bind", "127.0.0.1:%d" % port, "--workers", "2",
                "--access-logfile", os.path.join(d, "access.log"), "--error-logfile", os.path.join(d, "gunicorn.err"),
                "--graceful-timeout", "5", "proj.wsgi:application"]
    else:   # Python's own WSGI server (runserver would check the database at start and exit)
        argv = [py, "-c", "import sys; from wsgiref.simple_server import make_server; "
                "from proj.wsgi import application; "
                "make_server('127.0.0.1', int(sys.argv[1]), application).serve_forever()", str(port)]
    p = start(argv, stdout=os.path.join(d, "server.out"), stderr=os.path.join(d, "server.err"), env=env, cwd=d)
    return p, has_gunicorn


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


# ----------------------------------------------------------------- the log, independently

def records(path):
    """app.log's records: a line in the default format's shape begins one.
    Returns dicts: time (RFC 3339 ms), level, logger, pid, first, text,
    exception (type of the traceback's last exception) and its message."""
    out = []
    for line in read_bytes(path).decode("utf-8", "replace").split("\n"):
        m = START_RE.match(line)
        if m:
            out.append({"time": "%sT%s.%sZ" % m.group(1, 2, 3), "level": m.group(4), "logger": m.group(5),
                        "pid": int(m.group(6)), "lines": [line]})
        else:
            check(out or line == "", "%s: a line before the first record: %r" % (path, line))
            if out:
                out[-1]["lines"].append(line)
    for r in out:
        lines = r["lines"]
        while lines and lines[-1] == "":
            lines.pop()
        r["exception"] = r["exception_message"] = None
        tb = [i for i, l in enumerate(lines) if l == "Traceback (most recent call last):"]
        if tb:
            i = tb[-1] + 1
            while i < len(lines) and lines[i].startswith(" "):
                i += 1
            check(i < len(lines), "a traceback without its exception line: %s" % lines)
            m = re.match(r"^([A-Za-z_][\w.]*)(?:: (.*))?$", lines[i])
            check(m, "not an exception line: %r" % lines[i])
            r["exception"] = m.group(1)
            r["exception_message"] = "\n".join([m.group(2) or ""] + lines[i + 1:]).strip()
    return out


def klaxon_parse(cfg, source, path):
    rc, out, err = run([KLAXON, "parse", "-c", cfg, "--source", source, path], timeout=120)
    errt = err.decode("utf-8", "replace")
    check(rc == 0, "klaxon parse --source %s exited %d; stderr:\n%s" % (source, rc, tail(errt)))
    m = None
    for m in re.finditer(r"(\d+) parse errors?", errt):
        pass
    check(m is not None, "no summary ('N parse errors') on klaxon parse's stderr:\n%s" % tail(errt))
    check(m.group(1) == "0", "klaxon parse --source %s reports parse errors:\n%s" % (source, tail(errt)))
    ev = json_lines(out, "klaxon parse --source " + source)
    for e in ev:
        check(e.get("source") == source and isinstance(e.get("fields"), dict),
              "an event without source or fields: %s" % e)
    return ev


def fired(transitions):
    out = collections.defaultdict(list)
    for a in transitions:
        if a["status"] == "firing":
            out[a["alert"]].append(a["labels"])
    return out


def check_app_events(ev, recs):
    check(len(ev) == len(recs), "app.log: %d records, klaxon parse printed %d events (a traceback or a "
          "multi-line message split, or records merged?)" % (len(recs), len(ev)))
    for e, r in zip(ev, recs):
        f = e["fields"]
        check(e["time"] == r["time"], "event time %s for a record written at %s: %r" % (e["time"], r["time"],
                                                                                      r["lines"][0]))
        for k in ("level", "logger", "pid"):
            check(f.get(k) == r[k], "%s %r for the record %r" % (k, f.get(k), r["lines"][0]))
        check(f.get("exception") == r["exception"], "exception %r, the traceback ends with %r: %r"
              % (f.get("exception"), r["exception"], r["lines"][0]))
        if r["exception"]:
            check((f.get("exception_message") or "").strip() == r["exception_message"],
                  "exception_message %r, the traceback says %r" % (f.get("exception_message"), r["exception_message"]))
        check(isinstance(f.get("message"), str) and f["message"].startswith(r["lines"][0][START_RE.match(
            r["lines"][0]).end():]), "message %r for %r" % (f.get("message"), r["lines"][0]))

    # By construction.
    exc = collections.Counter(e["fields"].get("exception") for e in ev if e["fields"].get("exception"))
    want = collections.Counter({t: n for n, _, t in PLAN.values() if t})
    check(exc == want, "exceptions in the events %s, the views raised %s" % (dict(exc), dict(want)))
    ops = [e["fields"] for e in ev if e["fields"].get("exception") == "django.db.utils.OperationalError"]
    check(all(re.match(r'connection to server at "127\.0\.0\.1", port \d+ failed: Connection refused\n\s*'
                       r'Is the server running on that host and accepting TCP/IP connections\?',
                       f.get("exception_message") or "") for f in ops),
          "OperationalError's two-line message is not whole: %r" % [f.get("exception_message") for f in ops][:2])
    check(all(f.get("logger") == "django.request" and f.get("level") == "ERROR" and
              f["message"].startswith("Internal Server Error: /db") for f in ops), "OperationalError events: %s" % ops[:1])
    keys = [e["fields"] for e in ev if e["fields"].get("exception") == "KeyError"]
    check(all(f.get("exception_message") == "'missing_debt_id'" for f in keys),
          "KeyError's message: %r" % [f.get("exception_message") for f in keys][:2])
    han = [e["fields"] for e in ev if e["fields"].get("exception") == "ValueError"]
    check(all(f["message"].startswith(HANDLED_MESSAGE) and f.get("logger") == "proj.views" for f in han),
          "the handled ValueError's two-line message: %r" % [f["message"] for f in han][:1])
    warns = [e["fields"] for e in ev if e["fields"].get("logger") == "proj.views" and
             e["fields"].get("level") == "WARNING"]
    check(len(warns) == PLAN["/warn"][0] and all(f["message"] == WARN_MESSAGE and "exception" not in f
                                                 for f in warns),
          "the three-line warning is not one whole event each time: %s" % warns)
    oks = [e for e in ev if e["fields"].get("message") == "ok served"]
    check(len(oks) == PLAN["/ok"][0] and all(e["fields"].get("level") == "INFO" for e in oks),
          "%d 'ok served' events for %d requests" % (len(oks), PLAN["/ok"][0]))
    nf = [e for e in ev if e["fields"].get("message") == "Not Found: /nope"]
    check(len(nf) == PLAN["/nope"][0] and all(e["fields"].get("level") == "WARNING" for e in nf),
          "%d 'Not Found' events for %d requests" % (len(nf), PLAN["/nope"][0]))


def scaled_pack(d):
    src = os.path.join(SRC, "examples", "rules", "app.yml")
    check(os.path.exists(src), "no example rule pack at examples/rules/app.yml")
    text = read_bytes(src).decode()
    m = re.search(r"- alert: AppExceptionRate\n(?:    .*\n)*?    for: 1m\n", text)
    check(m, "examples/rules/app.yml: no AppExceptionRate with `for: 1m` to scale down")
    path = os.path.join(d, "rules-scaled.yml")
    write(path, text[:m.start()] + m.group(0).replace("for: 1m", "for: 0s") + text[m.end():])
    return path, src


def config(d, name, rule_file, with_sinks=False):
    cfg = os.path.join(d, name + ".yml")
    write(cfg, """\
state_dir: %(state)s
eval_interval: 1s
rule_files: [%(rules)s]
sources:
  - {name: app, path: %(app)s, parser: django, from: beginning}
  - {name: verbose, path: %(verbose)s, parser: dj_verbose, from: beginning}
  - {name: web, path: %(access)s, parser: gunicorn_access, from: beginning}
parsers:
  - {name: dj_verbose, type: django, format: %(vfmt)s}
sinks:
  - {name: out, type: stdout}
%(ev)s""" % {"state": yaml_str(os.path.join(d, "state-" + name)), "rules": yaml_str(rule_file),
             "app": yaml_str(os.path.join(d, "app.log")), "verbose": yaml_str(os.path.join(d, "verbose.log")),
             "access": yaml_str(os.path.join(d, "access.log")), "vfmt": yaml_str(VERBOSE_FORMAT),
             "ev": ("  - {name: ev, type: jsonl, path: %s, what: events}\n"
                    % yaml_str(os.path.join(d, "events.jsonl"))) if with_sinks else ""})
    return cfg


def body():
    py, version = django_python()
    d = tmpdir("klaxon-django")
    port, dbport = free_port(), free_port()
    make_project(d, dbport)
    for name in ("app.log", "verbose.log", "access.log"):
        write(os.path.join(d, name), "")   # klaxon follows them from the start

    scaled, pack = scaled_pack(d)
    cfg = config(d, "run", scaled, with_sinks=True)
    rc, out, err = run([KLAXON, "check", "-c", cfg])
    check(rc == 0, "klaxon check of the test config failed:\n%s" % tail(err))
    out_path, err_path = os.path.join(d, "alerts.jsonl"), os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out_path, stderr=err_path)

    srv, has_gunicorn = serve(py, d, port)

    def up():
        try:
            return get(port, "/nope") == 404
        except OSError:
            return False
    wait_for(up, 60, "Django to answer on 127.0.0.1:%d" % port, interval=0.2, proc=srv,
             proc_log=os.path.join(d, "server.err"))
    log("Django %s (%s) served by %s on 127.0.0.1:%d; database port %d (closed)"
        % (version, py, "gunicorn" if has_gunicorn else "wsgiref", port, dbport))
    statuses = collections.Counter({404: 1})
    sent = collections.Counter({"/nope": 1})
    # Interleaved, as traffic is: one of each path in turn.
    for _ in range(max(n for n, _, _ in PLAN.values())):
        for p, (n, want, _) in PLAN.items():
            if sent[p] < n:
                s = get(port, p)
                check(s == want, "GET %s answered %d, expected %d" % (p, s, want))
                sent[p] += 1
                statuses[s] += 1
    log("requests: %s; statuses %s" % (dict(sent), dict(statuses)))
    rc = stop(srv, timeout=20)
    log("the server stopped (%s)" % rc)

    recs = records(os.path.join(d, "app.log"))
    n_events = len(recs) * 2 + (sum(sent.values()) if has_gunicorn else 0)
    events = os.path.join(d, "events.jsonl")
    wait_for(lambda: len(json_lines(events, "events sink", complete_only=True)) >= n_events, 30,
             "the events sink to hold %d events" % n_events, proc=kl, proc_log=err_path)
    want_alerts = ("AppExceptionRate", "AppDatabaseConnectionErrors")
    wait_for(lambda: all(a in fired(alerts(out_path, "klaxon run", complete_only=True)) for a in want_alerts),
             30, "klaxon run to fire %s" % (want_alerts,), proc=kl, proc_log=err_path)
    time.sleep(1.0)   # a duplicate or a late split record would show now
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err_path))))
    f = fired(alerts(out_path, "klaxon run"))
    log("klaxon run fired: %s" % dict(f))
    check([l.get("exception") for l in f["AppExceptionRate"]] == ["KeyError"],
          "AppExceptionRate should fire once, for KeyError (12 in the window; the others <= 10): %s"
          % f["AppExceptionRate"])
    check("AppCritical" not in f, "AppCritical fired without a CRITICAL line")

    # Offline: klaxon parse, against the log itself.
    ev = klaxon_parse(cfg, "app", os.path.join(d, "app.log"))
    log("app.log: %d lines, %d records, %d events" % (read_bytes(os.path.join(d, "app.log")).count(b"\n"),
                                                       len(recs), len(ev)))
    check_app_events(ev, recs)
    vev = klaxon_parse(cfg, "verbose", os.path.join(d, "verbose.log"))
    check(len(vev) == len(ev), "verbose.log (format option): %d events, app.log %d" % (len(vev), len(ev)))
    for a, b in zip(ev, vev):
        for k in ("level", "pid", "exception", "exception_message"):
            check(a["fields"].get(k) == b["fields"].get(k), "verbose.log disagrees with app.log on %s: %s vs %s"
                  % (k, b["fields"], a["fields"]))
        check(a["time"] == b["time"], "verbose.log's time %s, app.log's %s" % (b["time"], a["time"]))
        check(b["fields"].get("message") == a["fields"].get("message"),
              "verbose.log's message %r, app.log's %r" % (b["fields"].get("message"), a["fields"].get("message")))
    if has_gunicorn:
        aev = klaxon_parse(cfg, "web", os.path.join(d, "access.log"))
        got = collections.Counter(e["fields"].get("status") for e in aev)
        check(got == statuses, "gunicorn access log: statuses %s, the client saw %s" % (dict(got), dict(statuses)))
        paths = collections.Counter(e["fields"].get("path") for e in aev)
        check(paths == sent, "gunicorn access log: paths %s, requested %s" % (dict(paths), dict(sent)))
        check(all(e["fields"].get("method") == "GET" and e["fields"].get("remote_addr") == "127.0.0.1" for e in aev),
              "gunicorn access log: method/remote_addr: %s" % aev[:1])

    live = json_lines(events, "events sink")
    by_src = collections.defaultdict(list)
    for e in live:
        by_src[e["source"]].append(e)
    for src, parsed in (("app", ev), ("verbose", vev)):
        check(len(by_src[src]) == len(parsed), "klaxon run's events sink has %d %s events, klaxon parse %d"
              % (len(by_src[src]), src, len(parsed)))
        diff = [i for i, (a, b) in enumerate(zip(by_src[src], parsed)) if a["fields"] != b["fields"]
                or a["time"] != b["time"]]
        check(not diff, "klaxon run and klaxon parse disagree on %d %s events; first: %s vs %s"
              % (len(diff), src, diff and by_src[src][diff[0]], diff and parsed[diff[0]]))

    # The shipped pack, unscaled, in replay.
    cfg_pack = config(d, "pack", pack)
    rc, out, err = run([KLAXON, "replay", "-c", cfg_pack, "--source", "app=" + os.path.join(d, "app.log")],
                       timeout=120)
    check(rc == 0, "klaxon replay with examples/rules/app.yml exited %d: %s" % (rc, tail(err)))
    f = fired(alerts(out, "replay with the example pack"))
    log("replay with examples/rules/app.yml fired: %s" % dict(f))
    check("AppDatabaseConnectionErrors" in f and "AppCritical" not in f,
          "the example pack over app.log fired %s" % sorted(f))


if __name__ == "__main__":
    main(body)
