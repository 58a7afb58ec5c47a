#!/usr/bin/env python3
"""A restart keeps what the rules knew, and what a record had begun.

klaxon run follows access.log (nginx_timed) and app.log (a multi-line
source: a record starts with a timestamp), with a stdout sink, a webhook
sink (tests/e2e/receiver.py) and a jsonl events sink.

  A. firing survives: Errors (count(status >= 500) >= 3 over 10 s) fires and
     is notified; klaxon is killed with SIGKILL and restarted. The restart
     logs the restored state, prints no new firing transition and sends no
     new notification; when the 500s age out of the window, Errors resolves
     and the resolution is notified (the sinks learned of the alert from the
     restored state).
  B. pending survives: two 404s make NotFound (for: 8s) pending; klaxon is
     killed 1 s later and restarted 4 s after that. NotFound fires 8 s after
     it became pending, not 8 s after the restart (the windows and the
     pending instant came back; forgotten windows would never fire it at
     all).
  C. a multi-line record pending at a SIGKILL is not lost: its first lines
     are written, klaxon is killed before the record is complete, the rest is
     written while it is down; after the restart the record is one event
     with every line, exactly once.
  D. a damaged rule state is logged and the rules start empty: klaxon runs
     on.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, json_lines, log, main, read_bytes, tmpdir, wait_for, write  # noqa: E402
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402


def body():
    d = tmpdir()
    access = os.path.join(d, "access.log")
    app = os.path.join(d, "app.log")
    events = os.path.join(d, "events.jsonl")
    state = os.path.join(d, "state")
    open(access, "w").close()
    open(app, "w").close()
    rv = Receiver(d)
    rv.start()
    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: Errors
    source: web
    expr: count(status >= 500) >= 3
    window: 10s
  - alert: NotFound
    source: web
    expr: count(status == 404) >= 2
    window: 1m
    for: 8s
""")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
eval_interval: 200ms
sources:
  - {name: web, path: %s, parser: nginx_timed, from: beginning}
  - name: app
    path: %s
    parser: applog
    from: beginning
    multiline: {start: '^\\d{4}-\\d\\d-\\d\\dT', timeout: 1h}
parsers:
  - name: applog
    regex: '^(?<time>\\S+) (?<msg>(?s).*)$'
    time: {field: time, format: iso8601}
sinks:
  - {name: out, type: stdout}
  - {name: hook, type: webhook, url: '%s'}
  - {name: ev, type: jsonl, path: %s, what: events}
notify: {group_wait: 0s, group_interval: 1s, repeat_interval: 4h, send_resolved: true}
""" % (state, access, app, rv.url("/hook"), events))
    kl = Klaxon(d, cfg).start()

    def hook_bodies():
        return [json.loads(r.body) for r in rv.accepted("/hook")]

    def notified(alert, status):
        return [b for b in hook_bodies()
                if any(a["labels"].get("alertname") == alert and a["status"] == status
                       for a in b["alerts"])]

    # ---- A: a firing alert across a SIGKILL
    append(access, [nginx_bytes("/boom/%d" % i, 500) for i in range(3)])
    kl.wait(lambda: kl.transitions("Errors", "firing"), "Errors to fire")
    wait_for(lambda: notified("Errors", "firing"), 30, "the Errors notification")
    time.sleep(1.2)  # a checkpoint interval: the firing state is on disk
    kl.kill()
    sent_before = len(rv.accepted("/hook"))
    kl.start()
    kl.wait_log("rule state of", "the restored rule state")
    err = kl.stderr()
    check("1 firing" in err, "the restart does not report the firing alert restored:\n%s" % err)
    kl.wait(lambda: kl.transitions("Errors", "resolved"), "Errors to resolve after the restart",
            deadline_s=40)
    check(not kl.transitions("Errors", "firing"),
          "the restart printed Errors firing again: %s" % kl.transitions("Errors"))
    wait_for(lambda: notified("Errors", "resolved"), 30, "the Errors resolution to be notified")
    again = [b for b in hook_bodies()[sent_before:]
             if any(a["labels"].get("alertname") == "Errors" and a["status"] == "firing"
                    for a in b["alerts"])]
    check(not again, "Errors was paged again after the restart: %s" % again)
    log("A: Errors fired before the kill, was restored firing, resolved after it; "
        "%d notification(s) in all" % len(rv.accepted("/hook")))

    # ---- B: a pending alert across a SIGKILL
    append(access, [nginx_bytes("/missing/%d" % i, 404) for i in range(2)])
    t_written = time.time()
    time.sleep(1.2)
    kl.kill()
    time.sleep(4)
    t_restart = time.time()
    kl.start()
    kl.wait(lambda: kl.transitions("NotFound", "firing"), "NotFound to fire", deadline_s=40)
    at = kl.transitions("NotFound", "firing")[0]["at"]
    fired = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    log("B: 404s written at %.1f, restart at %.1f, NotFound fired at %s"
        % (t_written, t_restart, at))
    # Remembered: about t_written + 8 (before t_restart + 8); forgotten: not before
    # t_restart + 8. The margin between the two is the 4 s klaxon was down.
    check(fired < t_restart + 8 - 1.5,
          "NotFound fired at %s, %.1f s after the restart: its pending state was forgotten"
          % (at, fired - t_restart))

    # ---- C: a multi-line record pending at a SIGKILL
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    append(app, "%s first record\n" % stamp)
    append(app, "%s Traceback (most recent call last):\n  line one\n  line two\n" % stamp)

    def records():
        return [e for e in json_lines(read_bytes(events), "events", complete_only=True)
                if e["source"] == "app"]
    kl.wait(lambda: records(), "the first app record")
    time.sleep(1.5)  # checkpoints after the first record: the second is pending
    kl.kill()
    append(app, "  line three\nKeyError: 'x'\n%s next record\n" % stamp)
    kl.start()
    kl.wait(lambda: len(records()) >= 2, "the pending record after the restart")
    msgs = [e["fields"]["msg"] for e in records()]
    want = ("Traceback (most recent call last):\n  line one\n  line two\n  line three\n"
            "KeyError: 'x'")
    check(msgs.count(want) == 1,
          "the record pending at the kill is not one whole event exactly once: %r" % msgs)
    check(not any(m != want and "line" in m for m in msgs),
          "a piece of the pending record came out on its own: %r" % msgs)
    log("C: the record begun before the kill came out whole, once")

    # ---- D: a damaged rule state
    kl.stop()
    path = os.path.join(state, "rules.state")
    data = bytearray(read_bytes(path))
    check(len(data) > 16, "no rule state was written")
    data[len(data) // 2] ^= 0xff
    with open(path, "wb") as f:
        f.write(data)
    kl.start()
    kl.wait_log("is damaged", "the damaged rule state to be reported")
    append(access, [nginx_bytes("/boom/again/%d" % i, 500) for i in range(3)])
    kl.wait(lambda: kl.transitions("Errors", "firing"), "Errors to fire on fresh rules")
    check(kl.stop() == 0, "klaxon did not stop cleanly")
    log("D: a damaged rule state is reported, the rules start empty and work")


if __name__ == "__main__":
    main(body)
