#!/bin/bash
# capture.sh — how the PostgreSQL samples in this folder were recorded, and how
# to record them again (PostgreSQL 15, Debian packages; run as root, the server
# runs as the postgres user).
#
#   tests/data/postgres/capture.sh OUTDIR
#
# For each log_line_prefix below: initdb in a temporary folder, start the
# server on 127.0.0.1 at a random port (and a socket in that folder) with
# logging_collector=off and stderr to OUTDIR/stderr_NAME.log,
# log_min_duration_statement=0, log_connections, log_disconnections,
# log_lock_waits, deadlock_timeout=200ms, max_connections=6 (one reserved for
# superusers), then drive it: slow pg_sleep, a multi-line statement, a syntax
# error, a unique violation, PL/pgSQL errors (CONTEXT, multi-line message and
# DETAIL, HINT), wrong passwords, a deadlock, connections past the limit,
# pgbench's extended protocol, a smart shutdown while a session runs, and a
# crash (immediate stop) with connection attempts during recovery. The same
# with log_destination=jsonlog (logging_collector=on) gives jsonlog.json, and
# with log_error_verbosity=verbose stderr_verbose.log; tz_*.log are a start
# and one query under other log_timezone settings. Everything is removed at
# the end.
set -u
OUT=$(realpath "${1:?usage: capture.sh OUTDIR}")
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=$(mktemp -d)
chown postgres: "$WORK" "$OUT"
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1; rm -rf "$WORK"' EXIT
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null || exit 1

cat >"$WORK/run.sh" <<'SCRIPT'
#!/bin/bash
# run.sh WORK OUT NAME PREFIX MODE(stderr|jsonlog|verbose)
set -u
WORK=$1 OUT=$2 NAME=$3 PREFIX=$4 MODE=$5
BIN=${PGBIN:-/usr/lib/postgresql/15/bin}
D=$WORK/data SOCK=$WORK
PORT=$((40000 + RANDOM % 20000))
LOG=$OUT/stderr_$NAME.log
rm -f "$LOG"
OPTS="-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$SOCK -c log_min_duration_statement=0 -c max_connections=6 -c superuser_reserved_connections=1 -c log_connections=on -c log_disconnections=on -c deadlock_timeout=200ms -c log_lock_waits=on -c log_timezone=UTC"
case $MODE in
jsonlog) rm -rf "$D/log"; OPTS="$OPTS -c logging_collector=on -c log_destination=jsonlog -c log_directory=log -c log_filename=pg.log"; LOG=$WORK/startup.log ;;
verbose) OPTS="$OPTS -c logging_collector=off -c log_destination=stderr -c log_error_verbosity=verbose" ;;
*) OPTS="$OPTS -c logging_collector=off -c log_destination=stderr" ;;
esac
"$BIN/pg_ctl" -D "$D" -l "$LOG" -w -o "$OPTS -c log_line_prefix='$PREFIX'" start >/dev/null || exit 1
export PGHOST=$SOCK PGPORT=$PORT
P="psql -X -q -v ON_ERROR_STOP=0"
$P -U postgres -d postgres >/dev/null 2>&1 <<'SQL'
DROP DATABASE IF EXISTS debts;
DROP ROLE IF EXISTS app;
CREATE ROLE app LOGIN PASSWORD 'secret';
CREATE DATABASE debts OWNER app;
SQL
$P -U app -d debts -c "CREATE TABLE t(id int PRIMARY KEY, v int); INSERT INTO t VALUES (1,0),(2,0);" >/dev/null 2>&1
H="psql -X -q -h 127.0.0.1"
export PGPASSWORD=secret PGAPPNAME=debts-web
$H -U app -d debts -c "SELECT pg_sleep(0.3);" >/dev/null 2>&1
$H -U app -d debts -c $'SELECT count(*) AS n,\n       max(v) AS top\nFROM t\nWHERE id > 0;' >/dev/null 2>&1
$H -U app -d debts -c "SELEC 1;" >/dev/null 2>&1
$H -U app -d debts -c "INSERT INTO t VALUES (1, 5);" >/dev/null 2>&1
$H -U app -d debts -c "DO \$\$ BEGIN PERFORM 1/0; END \$\$;" >/dev/null 2>&1
$H -U app -d debts -c "DO \$\$ BEGIN RAISE LOG E'first line\\nsecond line'; END \$\$;" >/dev/null 2>&1
$H -U app -d debts -c "DO \$\$ BEGIN RAISE EXCEPTION E'balance check failed\\nfor debt 8812' USING DETAIL = E'expected 10\\ngot 12', HINT = 'run the reconciler'; END \$\$;" >/dev/null 2>&1
PGPASSWORD=wrong $H -U app -d debts -c "SELECT 1" >/dev/null 2>&1
PGPASSWORD=x $H -U nobody -d debts -c "SELECT 1" >/dev/null 2>&1
$H -U app -d debts >/dev/null 2>&1 <<'SQL' &
BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; SELECT pg_sleep(0.5); UPDATE t SET v = v + 1 WHERE id = 2; COMMIT;
SQL
$H -U app -d debts >/dev/null 2>&1 <<'SQL' &
BEGIN; UPDATE t SET v = v + 1 WHERE id = 2; SELECT pg_sleep(0.5); UPDATE t SET v = v + 1 WHERE id = 1; COMMIT;
SQL
wait
for i in 1 2 3 4 5; do $H -U app -d debts -c "SELECT pg_sleep(2);" >/dev/null 2>&1 & done
sleep 0.7
$H -U app -d debts -c "SELECT 1" >/dev/null 2>&1
$P -U postgres -d postgres -c "SELECT pg_sleep(1)" >/dev/null 2>&1 &
sleep 0.3
$P -U postgres -d postgres -c "SELECT 1" >/dev/null 2>&1
wait
pgbench -h "$SOCK" -p "$PORT" -U app -i -s 1 -q debts >/dev/null 2>&1
pgbench -h "$SOCK" -p "$PORT" -U app -M prepared -t 2 -c 1 debts >/dev/null 2>&1
$H -U app -d debts -c "SELECT pg_sleep(2);" >/dev/null 2>&1 &
sleep 0.5
"$BIN/pg_ctl" -D "$D" -m smart -w stop >/dev/null 2>&1 &
sleep 0.5
$H -U app -d debts -c "SELECT 1" >/dev/null 2>&1
wait
"$BIN/pg_ctl" -D "$D" -w stop >/dev/null 2>&1
"$BIN/pg_ctl" -D "$D" -l "$LOG" -w -o "$OPTS -c log_line_prefix='$PREFIX'" start >/dev/null || exit 1
$P -U postgres -d postgres -c "CREATE TABLE IF NOT EXISTS big AS SELECT g FROM generate_series(1,300000) g; UPDATE big SET g = g + 1;" >/dev/null 2>&1
"$BIN/pg_ctl" -D "$D" -m immediate -w stop >/dev/null 2>&1
"$BIN/pg_ctl" -D "$D" -l "$LOG" -W -o "$OPTS -c log_line_prefix='$PREFIX'" start >/dev/null
for i in $(seq 1 100); do $P -U postgres -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.05; done
$P -U postgres -d postgres -c "DROP TABLE big" >/dev/null 2>&1
"$BIN/pg_ctl" -D "$D" -w stop >/dev/null 2>&1
if [ "$MODE" = jsonlog ]; then cp "$D/log/pg.json" "$OUT/jsonlog.json"; fi
SCRIPT
chmod 755 "$WORK/run.sh"
run() { runuser -u postgres -- env PGBIN="$PGBIN" "$WORK/run.sh" "$WORK" "$OUT" "$@"; }
run default '%m [%p] ' stderr
run debian '%m [%p] %q%u@%d ' stderr
run pgbadger '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ' stderr
run sqlstate '%m [%p] %e %q%u@%d/%a %r ' stderr
run kitchen '%n|%s|%c|%l|%v|%x|%e|%i|%b|%P|%Q|%%|%q%-10u|%8d|%a|%r|%h ' stderr
run verbose '%m [%p] %q%u@%d ' verbose
run jsonlog '%m [%p] ' jsonlog
for tz in Europe/Paris America/Sao_Paulo Asia/Kolkata America/Chicago; do
	PORT=$((40000 + RANDOM % 20000))
	LOG=$OUT/tz_$(echo "$tz" | tr / _).log
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -l "$LOG" -w -o "-c listen_addresses= -c port=$PORT -c unix_socket_directories=$WORK -c log_min_duration_statement=0 -c log_timezone=$tz -c logging_collector=off -c log_line_prefix='%m [%p] '" start >/dev/null
	runuser -u postgres -- psql -X -q -h "$WORK" -p "$PORT" -U postgres -c "SELECT 1" >/dev/null
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -w stop >/dev/null
done
