#!/bin/bash
# capture.sh — how the Django and gunicorn samples in this folder were
# recorded, and how to record them again (Debian's python3-django 3.2,
# gunicorn 20.1, python3-psycopg2, curl).
#
#   tests/data/django/capture.sh OUTDIR
#
# A one-file Django project (in a temporary folder) logs through two
# formatters — the django parser's default format to django.log and a padded,
# verbose one to django_verbose.log — and runs under gunicorn with its access
# log (gunicorn_access.log) and error log (gunicorn_error.log). curl then
# requests views that log, raise (ValueError; a RuntimeError raised while
# handling a KeyError; a LookupError raised from a ValueError), query a
# database that refuses the connection (psycopg2's two-line OperationalError,
# re-raised by Django), log a two-line warning, log.exception() a
# ZeroDivisionError, raise an exception without a message, and a 404. TZ is
# UTC, as in containers. (The recorded samples ran from /srv/debts/app; the
# paths in their tracebacks say so.)
set -u
OUT=$(realpath "${1:?usage: capture.sh OUTDIR}")
PY=${PY:-/usr/bin/python3}
WORK=$(mktemp -d)
trap 'kill $GPID 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/app"
cat >"$WORK/app/settings.py" <<'PY'
import os
SECRET_KEY = 'x'
DEBUG = False
ALLOWED_HOSTS = ['*']
ROOT_URLCONF = 'urls'
INSTALLED_APPS = []
MIDDLEWARE = []
TIME_ZONE = 'UTC'
DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'debts', 'USER': 'app',
             'PASSWORD': 'x', 'HOST': '127.0.0.1', 'PORT': '5999'}}
LOG_DIR = os.environ['LOG_DIR']
LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'formatters': {
        'default': {'format': '%(asctime)s %(levelname)s %(name)s %(process)d %(message)s'},
        'verbose': {'format': '[%(asctime)s] %(levelname)-8s %(name)s:%(lineno)d %(threadName)s %(module)s.%(funcName)s %(message)s'},
    },
    'handlers': {
        'app': {'class': 'logging.FileHandler', 'filename': os.path.join(LOG_DIR, 'django.log'), 'formatter': 'default'},
        'verbose': {'class': 'logging.FileHandler', 'filename': os.path.join(LOG_DIR, 'django_verbose.log'), 'formatter': 'verbose'},
    },
    'root': {'handlers': ['app', 'verbose'], 'level': 'INFO'},
}
PY
cat >"$WORK/app/urls.py" <<'PY'
import logging
from django.http import HttpResponse
from django.urls import path
from django.db import connection

log = logging.getLogger('debts.views')

def ok(request):
    log.info('listed %d debts for user %s', 12, 'alice')
    return HttpResponse('ok')

def boom(request):
    raise ValueError('amount must be positive, got -3')

def chain(request):
    try:
        {}['currency']
    except KeyError:
        raise RuntimeError('could not price the debt')

def cause(request):
    try:
        int('12x')
    except ValueError as e:
        raise LookupError('bad debt id') from e

def db(request):
    with connection.cursor() as c:
        c.execute('SELECT 1')
    return HttpResponse('db ok')

def warn(request):
    log.warning('slow payment provider: %.1fs\nretrying with backup', 3.2)
    return HttpResponse('warned')

def handled(request):
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception('interest computation failed for debt %s', 8812)
    return HttpResponse('handled')

class PaymentError(Exception):
    pass

def bare(request):
    raise PaymentError()

urlpatterns = [path('ok', ok), path('boom', boom), path('chain', chain), path('cause', cause),
               path('db', db), path('warn', warn), path('handled', handled), path('bare', bare)]
PY
cat >"$WORK/app/wsgi.py" <<'PY'
import os
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
PY
rm -f "$OUT"/django.log "$OUT"/django_verbose.log "$OUT"/gunicorn_access.log "$OUT"/gunicorn_error.log
PORT=$((20000 + RANDOM % 20000))
cd "$WORK/app" || exit 1
TZ=UTC LOG_DIR=$OUT "$PY" -m gunicorn -b 127.0.0.1:$PORT -w 1 --access-logfile "$OUT/gunicorn_access.log" \
	--error-logfile "$OUT/gunicorn_error.log" wsgi:application &
GPID=$!
sleep 2
for p in ok boom chain cause db warn handled bare ok 'ok?page=2&q=car%20loan' missing; do
	curl -s -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64) "quoted" agent' \
		-e 'https://debts.example.com/dashboard' "http://127.0.0.1:$PORT/$p"
done
curl -s -o /dev/null -u 'bob:pw' -X POST "http://127.0.0.1:$PORT/ok"
curl -s -o /dev/null --http1.0 "http://127.0.0.1:$PORT/ok"
kill $GPID
wait $GPID 2>/dev/null
