#!/usr/bin/env python3
"""Notification policy end to end: grouping, group_interval, repeat, resolved,
routing, silences and inhibition, as seen by a real HTTP receiver.

Every scenario runs its own `klaxon run` (a stdout sink for the transitions,
webhook sinks pointing at tests/e2e/receiver.py). Rules use
`last(status[, filter]) >= 500`, so a 503 line fires an alert and a 200 line
on the same path resolves it: the test decides when alerts change, not a
window's clock. Assertions are on the count and the content of messages; the
sleeps only leave room for a message too many to show up, and the deadlines
only guard against a hang.

  grouping   group_wait 2s, group_interval 2s. Three alerts fire at once →
             exactly one message holding all three; a fourth fires → a second
             message holding the four; all four resolve → a third message, all
             resolved; every alert is told resolved exactly once; one groupKey.
  repeat     repeat_interval 2s: while the alert fires, at least three
             identical firing messages; once resolved, one resolved message
             and nothing after it (no repeat of a resolved group).
  routing    routes: severity=page → pager (first match wins, so a page alert
             of team db goes nowhere else); team=db → chat with continue: true
             and then team=db → dbteam; the default route → fallback with
             send_resolved: false. Each sink gets exactly its alerts; fallback
             never gets a resolved message.
  silence    `klaxon silence add --match alertname=Muted --for 1h` on the
             running klaxon: Muted fires but no message names it while a
             control alert's message arrives; `klaxon silence expire ID` → a
             firing message for Muted arrives. `silence list` shows the
             silence active, then expired. A silence `--for 3s` on Brief ends
             by itself: Brief's message arrives, and not before the silence's
             ends_at (a lower bound only).
  inhibit    a NoTraffic flatline (count() == 0 over a source that never gets a
             line) labelled service=shop fires; then HighErrors fires for
             service=shop and service=blog; with inhibit {source_match
             NoTraffic, target_match HighErrors, equal [service]} the blog
             alert is sent and the shop alert is not; once a line reaches the
             silent source, NoTraffic resolves and the shop alert is sent.
"""
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, log, main, rfc3339, tail, tmpdir, write, yaml_str  # noqa: E402
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402

QUIET = 2.5   # seconds left for a message too many to arrive (> every group_interval here)


def setup(rv, name, rules, sinks, policy, sources=("nginx",)):
    """A scenario's folder, files and klaxon (not started)."""
    d = os.path.join(rv.dir, name)
    os.makedirs(os.path.join(d, "state"))
    logs = {}
    src = ""
    for s in sources:
        logs[s] = os.path.join(d, s + ".log")
        write(logs[s], "")
        src += "  - {name: %s, path: %s, parser: nginx_timed, from: beginning}\n" % (s, yaml_str(logs[s]))
    write(os.path.join(d, "rules.yml"), rules)
    snk = "".join("  - {name: %s, type: webhook, url: %s}\n" % (s, yaml_str(rv.url("/%s/%s" % (name, s))))
                  for s in sinks)
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
sources:
%ssinks:
  - {name: out, type: stdout}
%s%s""" % (yaml_str(os.path.join(d, "state")), src, snk, policy))
    return Klaxon(d, cfg), logs


def msgs(rv, name, sink):
    """(request, payload) of every delivered message to a scenario's sink."""
    return [(r, r.json()) for r in rv.accepted("/%s/%s" % (name, sink))]


def show(ms):
    return "\n".join("  %s" % json.dumps([(a["labels"].get("alertname"), a["labels"].get("path")
                                           or a["labels"].get("service"), a["status"])
                                          for a in m["alerts"]]) for _, m in ms) or "  (none)"


def alert_set(m):
    return sorted((a["labels"].get("alertname"), a["labels"].get("path"), a["status"])
                  for a in m["alerts"])


def finish(kl):
    rc = kl.stop()
    check(rc == 0, "klaxon run exited %s on SIGTERM:\n%s" % (rc, tail(kl.stderr())))


# ---------------------------------------------------------------- grouping


def grouping(rv):
    name = "grouping"
    kl, logs = setup(rv, name, """\
rules:
  - alert: Grouped
    source: nginx
    expr: last(status, path =~ '^/g/') >= 500
    window: 1m
    by: [path]
""", ["grp"], "notify: {group_wait: 2s, group_interval: 2s, repeat_interval: 1h}\n")
    kl.start()
    nx = logs["nginx"]

    append(nx, [nginx_bytes("/g/%d" % i, 503) for i in (1, 2, 3)])
    kl.wait_transition("Grouped", "firing", count=3)
    kl.wait(lambda: msgs(rv, name, "grp"), "the first grouped message")
    time.sleep(QUIET)
    ms = msgs(rv, name, "grp")
    check(len(ms) == 1, "three alerts fired within group_wait: expected one message, got %d:\n%s"
          % (len(ms), show(ms)))
    want1 = [("Grouped", "/g/%d" % i, "firing") for i in (1, 2, 3)]
    check(alert_set(ms[0][1]) == want1, "the first message holds %r, expected %r"
          % (alert_set(ms[0][1]), want1))
    check(ms[0][1]["status"] == "firing", "the first message's status is %r" % ms[0][1]["status"])

    append(nx, nginx_bytes("/g/4", 503))
    kl.wait(lambda: len(msgs(rv, name, "grp")) >= 2, "a second message after the fourth alert")
    time.sleep(QUIET)
    ms = msgs(rv, name, "grp")
    check(len(ms) == 2, "one new alert after the first message: expected a second message, "
          "not %d messages:\n%s" % (len(ms), show(ms)))
    want2 = [("Grouped", "/g/%d" % i, "firing") for i in (1, 2, 3, 4)]
    check(alert_set(ms[1][1]) == want2, "the second message holds %r, expected %r"
          % (alert_set(ms[1][1]), want2))

    append(nx, [nginx_bytes("/g/%d" % i, 200) for i in (1, 2, 3, 4)])
    kl.wait_transition("Grouped", "resolved", count=4)
    kl.wait(lambda: len(msgs(rv, name, "grp")) >= 3, "a resolved message")
    time.sleep(QUIET)
    ms = msgs(rv, name, "grp")
    check(len(ms) == 3, "four alerts resolved together: expected a third message, not %d:\n%s"
          % (len(ms), show(ms)))
    want3 = [("Grouped", "/g/%d" % i, "resolved") for i in (1, 2, 3, 4)]
    check(alert_set(ms[2][1]) == want3 and ms[2][1]["status"] == "resolved",
          "the third message holds %r (status %r), expected %r"
          % (alert_set(ms[2][1]), ms[2][1]["status"], want3))
    for i in (1, 2, 3, 4):
        told = sum(1 for _, m in ms for a in m["alerts"]
                   if a["labels"]["path"] == "/g/%d" % i and a["status"] == "resolved")
        check(told == 1, "/g/%d was told resolved %d times, expected once" % (i, told))
    keys = {m["groupKey"] for _, m in ms}
    check(len(keys) == 1, "one group, yet groupKeys %r" % keys)
    finish(kl)
    log("grouping: 3 alerts → 1 message; +1 → 2nd message of 4; resolved → 3rd message, once")


# ---------------------------------------------------------------- repeat


def repeat(rv):
    name = "repeat"
    kl, logs = setup(rv, name, """\
rules:
  - alert: Repeated
    source: nginx
    expr: last(status, path == '/rep') >= 500
    window: 1m
""", ["rep"], "notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 2s}\n")
    kl.start()
    nx = logs["nginx"]
    append(nx, nginx_bytes("/rep", 503))
    kl.wait_transition("Repeated", "firing")
    kl.wait(lambda: len(msgs(rv, name, "rep")) >= 3, "the first message and two repeats", 40)
    ms = msgs(rv, name, "rep")
    firsts = [m for _, m in ms]
    for i, m in enumerate(firsts[1:], 2):
        check(m == firsts[0], "repeat %d differs from the first message:\n%s\n%s"
              % (i - 1, json.dumps(firsts[0]), json.dumps(m)))
    check(firsts[0]["status"] == "firing" and alert_set(firsts[0]) == [("Repeated", None, "firing")],
          "the repeated message is %s" % json.dumps(firsts[0]))

    append(nx, nginx_bytes("/rep", 200))
    kl.wait_transition("Repeated", "resolved")
    kl.wait(lambda: any(m["status"] == "resolved" for _, m in msgs(rv, name, "rep")),
            "the resolved message")
    time.sleep(2 * 2 + 1)   # two repeat_intervals: a repeat would show up now
    ms = msgs(rv, name, "rep")
    resolved = [i for i, (_, m) in enumerate(ms) if m["status"] == "resolved"]
    check(len(resolved) == 1, "expected one resolved message, got %d:\n%s" % (len(resolved), show(ms)))
    check(resolved[0] == len(ms) - 1, "messages after the resolved one:\n%s" % show(ms))
    check(alert_set(ms[-1][1]) == [("Repeated", None, "resolved")],
          "the resolved message holds %r" % alert_set(ms[-1][1]))
    finish(kl)
    log("repeat: %d identical firing messages, then one resolved message and nothing after"
        % (len(ms) - 1))


# ---------------------------------------------------------------- routing


def routing(rv):
    name = "routing"
    kl, logs = setup(rv, name, """\
rules:
  - alert: PageAlert
    source: nginx
    expr: last(status, path == '/page') >= 500
    window: 1m
    labels: {severity: page, team: db}
  - alert: DbAlert
    source: nginx
    expr: last(status, path == '/db') >= 500
    window: 1m
    labels: {severity: warning, team: db}
  - alert: OtherAlert
    source: nginx
    expr: last(status, path == '/other') >= 500
    window: 1m
    labels: {severity: info}
""", ["pager", "chat", "dbteam", "fallback"], """\
notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
routes:
  - {match: {severity: page}, sinks: [pager]}
  - {match: {team: db}, sinks: [chat], continue: true}
  - {match: {team: db}, sinks: [dbteam]}
  - {sinks: [fallback], send_resolved: false}
""")
    kl.start()
    nx = logs["nginx"]
    append(nx, [nginx_bytes(p, 503) for p in ("/page", "/db", "/other")])
    for a in ("PageAlert", "DbAlert", "OtherAlert"):
        kl.wait_transition(a, "firing")
    for s in ("pager", "chat", "dbteam", "fallback"):
        kl.wait(lambda: msgs(rv, name, s), "a message to %s" % s)
    append(nx, [nginx_bytes(p, 200) for p in ("/page", "/db", "/other")])
    for a in ("PageAlert", "DbAlert", "OtherAlert"):
        kl.wait_transition(a, "resolved")
    for s in ("pager", "chat", "dbteam"):
        kl.wait(lambda: any(m["status"] == "resolved" for _, m in msgs(rv, name, s)),
                "a resolved message to %s" % s)
    time.sleep(QUIET)
    want = {"pager": "PageAlert", "chat": "DbAlert", "dbteam": "DbAlert", "fallback": "OtherAlert"}
    for s, alert in want.items():
        ms = msgs(rv, name, s)
        names = {a["labels"]["alertname"] for _, m in ms for a in m["alerts"]}
        check(names == {alert}, "sink %s got alerts %r, expected only %s:\n%s"
              % (s, sorted(names), alert, show(ms)))
        states = [m["status"] for _, m in ms]
        expect = ["firing"] if s == "fallback" else ["firing", "resolved"]
        check(states == expect, "sink %s got messages %r, expected %r%s:\n%s"
              % (s, states, expect, " (send_resolved: false)" if s == "fallback" else "", show(ms)))
    finish(kl)
    log("routing: page → pager only; team db → chat (continue) and dbteam; default → fallback, "
        "no resolved")


# ---------------------------------------------------------------- silences


def silences(rv):
    name = "silence"
    kl, logs = setup(rv, name, """\
rules:
  - alert: Muted
    source: nginx
    expr: last(status, path == '/muted') >= 500
    window: 1m
  - alert: Control
    source: nginx
    expr: last(status, path == '/control') >= 500
    window: 1m
  - alert: Brief
    source: nginx
    expr: last(status, path == '/brief') >= 500
    window: 1m
""", ["sil"], "notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n")
    kl.start()
    nx = logs["nginx"]

    rc, out, err = kl.cli("silence", "add", "--match", "alertname=Muted", "--for", "1h",
                          "--comment", "e2e: planned maintenance")
    check(rc == 0, "klaxon silence add exited %s: %s%s" % (rc, out, err))
    sid = out.strip()
    check(re.match(r"^[0-9a-f]{16}$", sid), "klaxon silence add printed %r, expected a 16-hex-digit id" % out)
    rc, out, err = kl.cli("silence", "list")
    check(rc == 0 and re.search(r"^%s\s+active\b" % sid, out, re.M),
          "klaxon silence list does not show %s active (exit %s):\n%s%s" % (sid, rc, out, err))
    check("alertname=Muted" in out and "e2e: planned maintenance" in out,
          "klaxon silence list does not show the matcher and comment:\n" + out)
    kl.wait_log("1 silence(s) loaded", "the running klaxon to load the silence")

    append(nx, [nginx_bytes("/muted", 503), nginx_bytes("/control", 503)])
    kl.wait_transition("Muted", "firing")
    kl.wait_transition("Control", "firing")
    kl.wait(lambda: any(a[0] == "Control" for _, m in msgs(rv, name, "sil") for a in alert_set(m)),
            "the control alert's message")
    time.sleep(QUIET)
    ms = msgs(rv, name, "sil")
    check(not any(a[0] == "Muted" for _, m in ms for a in alert_set(m)),
          "a message names the silenced alert Muted:\n%s" % show(ms))

    rc, out, err = kl.cli("silence", "expire", sid)
    check(rc == 0, "klaxon silence expire exited %s: %s%s" % (rc, out, err))
    kl.wait(lambda: any(("Muted", None, "firing") in alert_set(m) for _, m in msgs(rv, name, "sil")),
            "a firing message for Muted once its silence expired")
    rc, out, err = kl.cli("silence", "list")
    check(rc == 0 and re.search(r"^%s\s+expired\b" % sid, out, re.M),
          "klaxon silence list does not show %s expired (exit %s):\n%s%s" % (sid, rc, out, err))

    # a silence that ends by itself: the alert is sent at its end, not before
    rc, out, err = kl.cli("silence", "add", "--match", "alertname=Brief", "--for", "3s")
    check(rc == 0, "klaxon silence add exited %s: %s%s" % (rc, out, err))
    sid2 = out.strip()
    kl.wait_log("2 silence(s) loaded", "the running klaxon to load the second silence")
    with open(os.path.join(kl.dir, "state", "silences.json"), encoding="utf-8") as f:
        text = f.read()
    found = [x for x in json.loads(text).get("silences", []) if x.get("id") == sid2]
    check(found and found[0].get("ends_at"), "silences.json has no ends_at for %s:\n%s" % (sid2, text))
    ends_at = found[0]["ends_at"]
    ends = rfc3339(ends_at)
    append(nx, nginx_bytes("/brief", 503))
    kl.wait_transition("Brief", "firing")
    kl.wait(lambda: [r for r, m in msgs(rv, name, "sil") if ("Brief", None, "firing") in alert_set(m)],
            "Brief's message once its 3 s silence ended by itself")
    first = [r for r, m in msgs(rv, name, "sil") if ("Brief", None, "firing") in alert_set(m)][0]
    # a lower bound, which slowness cannot break: not sent while silenced
    check(first.t_ms / 1000.0 >= ends - 1.0, "Brief was sent at %.3f, before its silence ended "
          "(%s)" % (first.t_ms / 1000.0, ends_at))
    finish(kl)
    log("silence: Muted held back while silenced, delivered once the silence expired; "
        "Brief delivered when its silence ended by itself")


# ---------------------------------------------------------------- inhibition


def inhibition(rv):
    name = "inhibit"
    kl, logs = setup(rv, name, """\
rules:
  - alert: NoTraffic
    source: front
    expr: count() == 0
    window: 30s
    labels: {service: shop, severity: page}
  - alert: HighErrors
    source: shop
    expr: last(status) >= 500
    window: 1m
    labels: {service: shop}
  - alert: HighErrors
    source: blog
    expr: last(status) >= 500
    window: 1m
    labels: {service: blog}
""", ["inh"], """\
notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
inhibit:
  - {source_match: {alertname: NoTraffic}, target_match: {alertname: HighErrors}, equal: [service]}
""", sources=("front", "shop", "blog"))
    kl.start()

    def he(service, status="firing"):
        return [m for _, m in msgs(rv, name, "inh") for a in m["alerts"]
                if a["labels"]["alertname"] == "HighErrors" and a["labels"].get("service") == service
                and a["status"] == status]

    kl.wait_transition("NoTraffic", "firing", "NoTraffic to fire on the silent source")
    kl.wait(lambda: any(a["labels"]["alertname"] == "NoTraffic" for _, m in msgs(rv, name, "inh")
                        for a in m["alerts"]), "NoTraffic's message")
    append(logs["shop"], nginx_bytes("/checkout", 503))
    append(logs["blog"], nginx_bytes("/post/1", 503))
    kl.wait_transition("HighErrors", "firing", count=2)
    kl.wait(lambda: he("blog"), "HighErrors{service=blog}'s message")
    time.sleep(QUIET)
    check(not he("shop"), "HighErrors{service=shop} was sent while NoTraffic{service=shop} fires "
          "(inhibit with equal [service]):\n%s" % show(msgs(rv, name, "inh")))

    append(logs["front"], nginx_bytes("/", 200))
    kl.wait_transition("NoTraffic", "resolved")
    kl.wait(lambda: he("shop"), "HighErrors{service=shop}'s message once NoTraffic resolved")
    finish(kl)
    log("inhibit: shop's HighErrors muted while NoTraffic{shop} fired, sent once it resolved; "
        "blog's sent at once")


def body():
    d = tmpdir()
    rv = Receiver(d).start()
    for scenario in (grouping, repeat, routing, silences, inhibition):
        log("---- %s" % scenario.__name__)
        scenario(rv)


if __name__ == "__main__":
    main(body)
