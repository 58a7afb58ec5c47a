#!/usr/bin/env python3
"""The postgres probe against a real PostgreSQL (initdb in a temporary folder,
as test_postgres_live.py starts it), with the example pack's db rules.

The server: max_connections 6, 1 reserved for superusers. The probe connects
over TCP as debtprofile_user (granted pg_monitor), its connection string with
the password read from a secret file (postgres_file), every 500ms. Rules:
examples/rules/probes.yml's over `db`, every `for:` 0s and LongRunningQuery's
60s scaled to 3s (the unscaled pack is checked by `klaxon check` first).
Asserts:
  - the probe's events: up 1, connections, max_connections 6, the other
    fields present;
  - a session running `SELECT pg_sleep(90)`: longest_active_query passes 3 s
    and LongRunningQuery fires while the statement still runs; cancelled
    (pg_cancel_backend), the alert resolves;
  - sessions opened one by one: DatabaseConnectionsHigh fires at 5 of 6;
    every non-reserved slot taken: the probe's connection is refused, its
    event says so (up 0, the server's FATAL) and still counts the slots in
    use (connections 5 of max_connections 6, from the settings of the last
    good check), DatabaseDown fires and DatabaseConnectionsHigh stays firing;
    the sessions closed, DatabaseDown resolves;
  - the password never appears in klaxon's output.
Skips (77) as test_postgres_live.py does: no server, no psql, or a server
that cannot start here. Deadlines only guard against a hang.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, log, main, read_bytes, run, start, stop, tail, tmpdir, wait_for, write  # noqa: E402
import probelib  # noqa: E402
from test_postgres_live import DB, PASSWORD, PREFIX1, USER, Clients, Cluster, wait_started  # noqa: E402


def body():
    d = tmpdir("klaxon-probe-pg")
    cl = Cluster(d)
    clients = Clients(cl)
    cl.start(os.path.join(d, "logs"), PREFIX1,
             extra={"max_connections": "6", "superuser_reserved_connections": "1",
                    "log_min_duration_statement": "-1"}.items())
    wait_started(cl, clients, os.path.join(d, "logs", "postgresql.log"))
    su = cl.super_conninfo()
    clients.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (USER, PASSWORD), conninfo=su)
    clients.sql("GRANT pg_monitor TO %s" % USER, conninfo=su)
    clients.sql("CREATE DATABASE %s OWNER %s" % (DB, USER), conninfo=su)

    dsn = os.path.join(d, "pg_dsn")
    write(dsn, "host=127.0.0.1 port=%d user=%s password=%s dbname=postgres\n" % (cl.port, USER, PASSWORD))
    os.chmod(dsn, 0o600)
    probes = "  - {name: db, postgres_file: %s, interval: 500ms, timeout: 400ms}" % dsn

    # the unscaled pack: its 60s rule wires up against a real probe
    cfg = probelib.config(d, probes, probelib.pack_rules({"db"}))
    rc, out, err = run([KLAXON, "check", "-c", cfg])
    check(rc == 0, "klaxon check of the unscaled db rules failed: %s" % tail(err))
    check(b"> 60s" in read_bytes(os.path.join(d, "rules.yml")), "the pack has no 60s LongRunningQuery")

    cfg = probelib.config(d, probes, probelib.pack_rules(
        {"db"}, replace=[("expr: last(longest_active_query) > 60s",
                          "expr: last(longest_active_query) > 3s")]))
    out_path, err_path = os.path.join(d, "klaxon.out"), os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out_path, stderr=err_path)
    w = probelib.Watch(d, out_path)

    def wait_state(alert, status, deadline=40):
        wait_for(lambda: w.state(alert) == status, deadline, "%s %s" % (alert, status),
                 proc=kl, proc_log=err_path)

    ev = wait_for(lambda: w.last_event("db", lambda f: f["up"] == 1), 30, "the probe's first good check",
                  proc=kl, proc_log=err_path)
    log("db: %s" % ev)
    for k in ("connections", "max_connections", "longest_active_query", "active_over_1m",
              "waiting_on_locks", "latency"):
        check(k in ev, "db event without %s: %s" % (k, ev))
    check(ev["max_connections"] == 6, "max_connections: %s" % ev)
    check(ev["connections"] >= 1, "connections: %s" % ev)

    # --- a long query, seen while it runs
    s = clients.session("sleeper", conninfo=cl.conninfo(), password=PASSWORD)
    check(s.connected, "the sleeper session could not connect: %s" % s.stderr())
    t0 = time.monotonic()
    mark = s.start_do("SELECT pg_sleep(90);")
    wait_state("LongRunningQuery", "firing")
    took = time.monotonic() - t0
    ev = w.last_event("db", lambda f: f.get("longest_active_query", 0) > 3)
    log("LongRunningQuery fired %.1f s after pg_sleep(90) began: %s" % (took, ev))
    check(took < 90 and s.p.poll() is None, "the alert came after the statement ended")
    check(3 < ev["longest_active_query"] < 90, "longest_active_query: %s" % ev)
    clients.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(90)%'",
                conninfo=su)
    s.wait(mark, timeout=30)
    wait_state("LongRunningQuery", "resolved")
    s.close()

    # --- connections: high, then exhausted
    sessions = []
    for i in range(4):   # with the probe's own: 5 of 6
        sessions.append(clients.session("hold", conninfo=cl.conninfo(), password=PASSWORD))
        check(sessions[-1].connected, "session %d could not connect: %s" % (i, sessions[-1].stderr()))
    wait_state("DatabaseConnectionsHigh", "firing")
    log("connections high: %s" % w.last_event("db", lambda f: f["up"] == 1))
    # the fifth takes the last non-reserved slot whenever the probe is not
    # connected; retry until it has it
    wait_for(lambda: (sessions.append(clients.session("hold", conninfo=cl.conninfo(), password=PASSWORD))
                      or sessions[-1].connected), 30, "a fifth session")
    wait_state("DatabaseDown", "firing")
    ev = w.last_event("db", lambda f: f["up"] == 0)
    log("exhausted: %s" % ev)
    check("reserved" in ev.get("error", "") or "too many clients" in ev.get("error", ""),
          "the probe does not say the slots are taken: %s" % ev)
    # the refusal still counts: every slot but the superuser's reserved one
    check(ev.get("connections") == 6 - 1 and ev.get("max_connections") == 6,
          "the refused check does not say 5 of 6 slots are taken: %s" % ev)
    check(w.state("DatabaseConnectionsHigh") == "firing",
          "DatabaseConnectionsHigh is %s while the pool is full" % w.state("DatabaseConnectionsHigh"))
    for x in sessions:
        x.close()
    wait_state("DatabaseDown", "resolved")

    rc = stop(kl)
    check(rc == 0, "klaxon run exited %s: %s" % (rc, tail(read_bytes(err_path))))
    for f in (out_path, err_path, os.path.join(d, "events.jsonl")):
        check(PASSWORD.encode() not in read_bytes(f), "the password appears in %s" % f)
    log("alerts: %s" % [(a["alert"], a["status"]) for a in w.alerts()])


if __name__ == "__main__":
    main(body)
