#!/usr/bin/env python3
"""Shared mode: three klaxon replicas, one real redis-server, one receiver.

Each replica follows its own nginx log with its own state folder; all three
share rule Errors5xx = ratio(status >= 500) > 5% over 1m, min_events 150,
by path, `shared: true`, and one webhook receiver (the same URL).

  union    /api (and /e alike): 100 lines on each replica, 4%, 6% and 8%
           of them 5xx. No replica alone has a verdict (100 < min_events);
           the union (300 lines, 6%) crosses. Every replica sees it fire
           (the shared view), and the receiver gets exactly one message,
           holding the two alerts. The stream holds the firing transition.
  board    one line with status 418 on r1: TeapotLocal, an unshared rule
           (`for: 1h`: pending, never notified), is judged on r1 alone and
           shows on every replica's /alerts as r1's (the alert board); the
           shared Errors5xx shows once on each, as its own. Alone (below),
           each /alerts is its own again; back, the board returns.
  handover the lease holder (the replica whose /metrics counts a lease won)
           is killed (SIGKILL), and at once /b crosses on the union of the
           two others while /e falls below (100 good lines each). They stand
           down while the dead holder's lease runs; then, finding the message
           not marked sent, one of them sends it, /e's resolution included
           (held, not forgotten, while they stood down): the next message
           arrives (from a survivor: the holder is dead),
           exactly one.
  alone    redis-server is stopped. Each survivor logs it once and goes on
           alone: /c crosses on each replica's own lines, and each one
           notifies (two messages: duplicates, counted as sent alone in
           /metrics) — rather than silence.
  back     redis-server is started again (empty: no persistence). The
           replicas reconnect (backoff), publish their windows again; the
           killed replica's lines went with the old Redis, so /api (5% on the
           two survivors) resolves, told once; then /d, split so that neither alone has a verdict, fires on the union
           again: one message (one replica reloaded its rules, SIGHUP, just
           before). The stream (new since the restart) holds the
           transitions that were sent.
  slow     redis-server is paused (SIGSTOP): connections are accepted, nothing
           is answered. Each replica takes it for down after 3 s without an
           answer, logs that once (however many reconnects meet the same
           silence), and is connected again once it is resumed (SIGCONT).

Skipped (77) only when redis-server is not installed. Deadlines only guard
against a hang; nothing asserts a duration.
"""
import json
import os
import shutil
import signal
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (check, fail, free_port, log, main, skip, start, stop, tail,  # noqa: E402
                    tmpdir, wait_for, write, yaml_str, read_bytes)
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402
from redislib import command as resp  # noqa: E402

RULES = """\
rules:
  - alert: Errors5xx
    source: nginx
    expr: ratio(status >= 500) > 5%
    window: 1m
    min_events: 150
    by: [path]
    shared: true
    labels: {severity: page}
  - alert: TeapotLocal
    source: nginx
    expr: count(status == 418) > 0
    window: 1m
    for: 1h
"""
LEASE_S = 10
QUIET = 4.0   # seconds with nothing more expected (a duplicate would show)


# ---------------------------------------------------------------- Redis


class Redis:
    def __init__(self, d):
        self.dir = os.path.join(d, "redis")
        os.makedirs(self.dir)
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = start(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", self.dir],
                          stdout=os.path.join(self.dir, "out"), stderr=os.path.join(self.dir, "err"))

        def ping():
            try:
                return resp(self.port, "PING") == "PONG"
            except OSError:
                return False
        wait_for(ping, 20, "redis-server to answer PING", proc=self.proc)

    def stop(self):
        stop(self.proc, timeout=10)
        self.proc = None


# ---------------------------------------------------------------- replicas


class Replica:
    def __init__(self, d, name, redis_host, redis_port, hook_url):
        self.name = name
        self.dir = os.path.join(d, name)
        os.makedirs(os.path.join(self.dir, "state"))
        self.access = os.path.join(self.dir, "access.log")
        write(self.access, "")
        write(os.path.join(self.dir, "rules.yml"), RULES)
        self.port = free_port()
        cfg = os.path.join(self.dir, "klaxon.yml")
        write(cfg, """\
state_dir: %s
listen: 127.0.0.1:%d
rule_files: [rules.yml]
redis:
  url: redis://%s:%d
  replica: %s
  lease: %ds
  stream: {key: 'klaxon:alerts', maxlen: 1000, what: alerts}
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
  - {name: hook, type: webhook, url: %s}
notify: {group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
""" % (yaml_str(os.path.join(self.dir, "state")), self.port, redis_host, redis_port, name,
            LEASE_S, yaml_str(self.access), yaml_str(hook_url)))
        self.kl = Klaxon(self.dir, cfg)

    def lines(self, path, n, errors):
        append(self.access, [nginx_bytes(path, 503 if i < errors else 200) for i in range(n)])

    def alerts(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/alerts" % self.port, timeout=5) as r:
            return json.loads(r.read().decode())

    def metric(self, name):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None


def firing_paths(req):
    return sorted(a["labels"]["path"] for a in req.json()["alerts"] if a["status"] == "firing")


def resolved_paths(req):
    return sorted(a["labels"]["path"] for a in req.json()["alerts"] if a["status"] == "resolved")


def messages(rv):
    return rv.accepted("/hook")


def show(rv):
    return "\n".join("  %s" % firing_paths(r) for r in messages(rv)) or "  (none)"


def wait_messages(rv, reps, n, what, deadline=60):
    reps[0].kl.wait(lambda: len(messages(rv)) >= n, what, deadline)
    time.sleep(QUIET)
    got = messages(rv)
    check(len(got) == n, "%s: expected exactly %d message(s) in all, the receiver has %d:\n%s"
          % (what, n, len(got), show(rv)))
    return got


def stream(redis):
    entries = resp(redis.port, "XRANGE", "klaxon:alerts", "-", "+") or []
    out = []
    for _id, kv in entries:
        d = dict(zip(kv[0::2], kv[1::2]))
        out.append((d[b"replica"].decode(), d[b"kind"].decode(), json.loads(d[b"json"])))
    return out


def teapots(r):
    """(alert state, replica) of TeapotLocal entries on r's /alerts."""
    return sorted((a["state"], a.get("replica")) for a in r.alerts() if a["alert"] == "TeapotLocal")


def board(reps):
    """An unshared rule pending on r1 alone (its `for` is an hour: it never
    notifies) is on every replica's /alerts, named as r1's; a shared one
    (Errors5xx, firing on the union) once per replica, not once per replica
    that judged it."""
    append(reps[0].access, [nginx_bytes("/tea", 418)])
    for r in reps:
        wait_for(lambda: teapots(r) == [("pending", "r1")], 30,
                 "%s's /alerts to show r1's pending TeapotLocal, once" % r.name)
    for r in reps:
        shared = [a for a in r.alerts()
                  if a["alert"] == "Errors5xx" and a["labels"].get("path") == "/api"]
        check([a.get("replica") for a in shared] == [r.name],
              "%s's /alerts lists the shared alert as %r, expected once, its own"
              % (r.name, [a.get("replica") for a in shared]))
    log("board: r1's unshared pending alert on every replica's /alerts; the shared one once each")


def body():
    if not shutil.which("redis-server"):
        skip("redis-server is not installed (apt-get install redis-server)")
    d = tmpdir("klaxon-redis")
    redis = Redis(d)
    redis.start()
    log("redis-server on 127.0.0.1:%d" % redis.port)
    rv = Receiver(d).start()
    # r2 names the server by host name, so the sink's lookup off the loop is exercised.
    reps = [Replica(d, "r%d" % i, "localhost" if i == 2 else "127.0.0.1", redis.port,
                    rv.url("/hook")) for i in (1, 2, 3)]
    for r in reps:
        r.kl.start()
    for r in reps:
        r.kl.wait_log("shared mode on", "replica %s to connect to Redis" % r.name)

    # ---- union: no replica alone, the three together
    for r, errors in zip(reps, (4, 6, 8)):  # /e as /api, in the same write
        append(r.access, [nginx_bytes(path, 503 if i < errors else 200)
                          for path in ("/api", "/e") for i in range(100)])
    for r in reps:
        r.kl.wait_transition("Errors5xx", "firing", "%s to see /api fire on the union" % r.name,
                             deadline_s=60)
        t = r.kl.transitions("Errors5xx", "firing")[0]
        check(abs(t["value"] - 0.06) < 1e-9, "%s: /api fired at %r, the union's share is 0.06"
              % (r.name, t["value"]))
    got = wait_messages(rv, reps, 1, "union")
    check(firing_paths(got[0]) == ["/api", "/e"], "union: the message holds %r, expected "
          "/api and /e" % firing_paths(got[0]))
    log("union: 3 replicas fired on 6% of 300 lines (each alone 100 lines, no verdict); "
        "1 message at the receiver")
    st = stream(redis)
    check(any(k == "firing" and j["labels"].get("path") == "/api" for _, k, j in st),
          "the stream has no /api firing entry: %r" % st)
    stood = sum(r.metric("klaxon_notify_stood_down_total") or 0 for r in reps)
    check(stood >= 2, "union: %d replicas stood down, expected 2" % stood)
    board(reps)

    # ---- handover: the holder dies
    won = [r for r in reps if (r.metric("klaxon_notify_leases_won_total") or 0) >= 1]
    check(len(won) == 1, "union: %d replicas say they won the lease, expected 1" % len(won))
    holder = won[0].name
    won[0].kl.kill()
    alive = [r for r in reps if r.name != holder]
    log("handover: lease holder %s killed" % holder)
    # At once: the survivors see the change while the dead holder's lease
    # still runs, stand down, and once it has run out find that the holder
    # never marked that message sent: one of them sends it.
    # ... and /e resolves (100 more good lines on each): a resolution the
    # dead holder never told, told with that message, not forgotten.
    for r in alive:
        append(r.access, [nginx_bytes("/b", 503 if i < 8 else 200) for i in range(100)]
               + [nginx_bytes("/e") for _ in range(100)])
    for r in alive:
        r.kl.wait_transition("Errors5xx", "firing", "%s to see /b fire" % r.name, deadline_s=60,
                             pred=lambda t: t["labels"].get("path") == "/b")
    got = wait_messages(rv, alive, 2, "handover")
    check(firing_paths(got[1]) == ["/api", "/b"] and resolved_paths(got[1]) == ["/e"],
          "handover: the message holds firing %r, resolved %r; expected /api and /b firing, /e "
          "resolved" % (firing_paths(got[1]), resolved_paths(got[1])))
    new = [r.name for r in alive if (r.metric("klaxon_notify_leases_won_total") or 0) >= 1]
    check(len(new) == 1, "handover: %r say they won the lease, expected one survivor" % new)
    log("handover: %s sent the next message" % new[0])

    # ---- alone: Redis stops
    redis.stop()
    for r in alive:
        r.kl.wait_log("going on alone", "%s to log that Redis is gone" % r.name)
    for r in alive:  # alone, each /alerts is its own again
        want = [("pending", "r1")] if r.name == "r1" else []
        check(teapots(r) == want, "alone: %s's /alerts shows TeapotLocal as %r, expected %r"
              % (r.name, teapots(r), want))
    for r in alive:
        r.lines("/c", 200, 20)
    for r in alive:
        r.kl.wait_transition("Errors5xx", "firing", "%s to see /c fire alone" % r.name,
                             deadline_s=60, pred=lambda t: t["labels"].get("path") == "/c")
    got = wait_messages(rv, alive, 4, "alone")
    for m in got[2:]:
        check("/c" in firing_paths(m), "alone: a message without /c: %r" % firing_paths(m))
    alone = sum(r.metric("klaxon_notify_sent_alone_total") or 0 for r in alive)
    check(alone >= 2, "alone: %d messages counted as sent alone, expected 2" % alone)
    for r in alive:
        check(r.kl.stderr().count("going on alone") == 1,
              "%s logged the outage more than once:\n%s" % (r.name, tail(r.kl.stderr())))
    log("alone: each survivor notified /c on its own (2 messages, counted)")

    # ---- back: Redis again, empty
    redis.start()
    for r in alive:
        r.kl.wait_log("connected again", "%s to reconnect" % r.name, deadline_s=60)
    if "r1" in [r.name for r in alive]:  # the board again: r1's alert on the other's /alerts
        for r in alive:
            wait_for(lambda: teapots(r) == [("pending", "r1")], 30,
                     "%s's /alerts to show r1's TeapotLocal again" % r.name)
    # Every replica's buckets are back in Redis before /d is written.
    def republished():
        ks = resp(redis.port, "KEYS", "klaxon:w:*") or []
        owners = set()
        for k in ks:
            for f in (resp(redis.port, "HKEYS", k) or []):
                owners.add(f.split(b"|")[0].decode())
        return owners >= set(r.name for r in alive)
    wait_for(republished, 30, "both survivors to publish their windows again")
    # The dead holder's buckets went with the old Redis: /api is now judged on
    # the two survivors (10 of 200 lines, 5%: not above 5%) and resolves,
    # told once.
    for r in alive:
        r.kl.wait_transition("Errors5xx", "resolved", "%s to resolve /api without r3's lines"
                             % r.name, deadline_s=60,
                             pred=lambda t: t["labels"].get("path") == "/api")
    got = wait_messages(rv, alive, 5, "back: /api resolved")
    check(any(a["status"] == "resolved" and a["labels"]["path"] == "/api"
              for a in got[-1].json()["alerts"]), "back: the 5th message does not tell /api "
          "resolved: %r" % got[-1].json()["alerts"])
    # A reload keeps shared mode (the new rule set is given the store).
    os.kill(alive[0].kl.proc.pid, signal.SIGHUP)
    alive[0].kl.wait_log("reload: ", "%s to reload its rules" % alive[0].name)
    before = len(messages(rv))
    for r, errors in zip(alive, (5, 7)):
        r.lines("/d", 100, errors)
    for r in alive:
        r.kl.wait_transition("Errors5xx", "firing", "%s to see /d fire on the union" % r.name,
                             deadline_s=60, pred=lambda t: t["labels"].get("path") == "/d")
    got = wait_messages(rv, alive, before + 1, "back")
    check("/d" in firing_paths(got[-1]), "back: the last message has no /d: %r"
          % firing_paths(got[-1]))
    st = stream(redis)
    check(any(k == "firing" and j["labels"].get("path") == "/d" for _, k, j in st),
          "the stream (since the restart) has no /d firing entry: %r" % st)
    log("back: shared view again, /d on the union: 1 message; the stream since the restart: %s"
        % ", ".join("%s %s %s" % (rep, k, j["labels"].get("path")) for rep, k, j in st))

    # ---- slow: Redis stopped (SIGSTOP) answers nothing, accepts connections
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        for r in alive:
            r.kl.wait_log("no answer for 3s", "%s to take a silent Redis for down" % r.name)
        time.sleep(QUIET)   # reconnects meanwhile answer nothing either
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    for r in alive:
        r.kl.wait_log("connected again", "%s to reconnect after the pause" % r.name,
                      deadline_s=90, count=2)
        check(r.kl.stderr().count("going on alone") == 2,
              "%s: each outage is logged once (two outages), its log:\n%s"
              % (r.name, tail(r.kl.stderr())))
        check((r.metric("klaxon_redis_slow_total") or 0) >= 1, "%s: no slow Redis counted" % r.name)
        check(r.metric("klaxon_redis_up") == 1, "%s: not connected again" % r.name)
    log("slow: a paused Redis taken for down once, then reconnected")
    for r in alive:
        rc = r.kl.stop()
        check(rc == 0, "%s exited %s on SIGTERM:\n%s" % (r.name, rc, tail(r.kl.stderr())))
    rv.stop()
    redis.stop()


if __name__ == "__main__":
    main(body)
