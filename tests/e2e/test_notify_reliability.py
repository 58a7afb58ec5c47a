#!/usr/bin/env python3
"""Delivery that survives a receiver's failures and klaxon's death.

Each scenario runs its own `klaxon run` (stdout sink + one webhook sink to
tests/e2e/receiver.py), rule Rel = `last(status, path =~ '^/r/') >= 500` by
path (a 503 line fires an alert, a 200 line on its path resolves it), notify
group_wait 0s, group_interval 1s, repeat_interval 1h. The story of every
scenario but the last two: /r/1 fires (message 1), /r/2 fires (message 2),
both resolve (message 3), while the receiver misbehaves. Then:

  - every message arrives exactly once: no body is accepted (2xx) twice, and
    every body the receiver was ever offered is eventually accepted;
  - in order per group: the first accepted message is the first one offered
    ({/r/1 firing}); an alert is never told firing after it was told resolved;
    the last message tells both resolved;
  - a refused attempt is the very message accepted next (a retry resends the
    same message; later ones wait behind it).

  503            the receiver answers 503 to the first 3 requests, no Retry-After.
  503+RA         the same with Retry-After: 1 (the gaps between attempts are
                 logged, not asserted).
  down           the receiver's port is closed (nothing listens) while the
                 three messages are produced; klaxon logs the outage; a second
                 sink on the same route, whose receiver is up, gets all three
                 meanwhile (one sink's outage holds back no other); then the
                 receiver starts on that port.
  sigkill        the receiver is down; /r/1 fires; klaxon logs the outage and is
                 killed with SIGKILL; the receiver starts; klaxon restarts with
                 the same state_dir: message 1 arrives, exactly once; killed
                 and restarted again, it is not sent a second time.
  400            the receiver answers 400 (a two-line body) once: that message is
                 dropped after one attempt (exactly one request in the next
                 seconds, no retry) and logged with the body's first line; the
                 next alert's message is then delivered.

The webhook URL carries a token in its query: klaxon's log (which reports
every outage and refusal with the URL) never shows its path or query.
Deadlines only guard against a hang; nothing asserts a duration.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, log, main, tail, tmpdir, write, yaml_str  # noqa: E402
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402

RULES = """\
rules:
  - alert: Rel
    source: nginx
    expr: last(status, path =~ '^/r/') >= 500
    window: 1m
    by: [path]
"""
QUIET = 2.5
TOKEN = "tok3n-in-the-query-d41d8cd9"   # a webhook URL's path and query are secrets


def setup(rv, name, start_from="beginning", peer=None):
    d = os.path.join(rv.dir, name)
    os.makedirs(os.path.join(d, "state"))
    access = os.path.join(d, "access.log")
    write(access, "")
    write(os.path.join(d, "rules.yml"), RULES)
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: %s}
sinks:
  - {name: out, type: stdout}
  - {name: hook, type: webhook, url: %s}
%snotify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
""" % (yaml_str(os.path.join(d, "state")), yaml_str(access), start_from,
       yaml_str(rv.url("/%s/hook?token=%s" % (name, TOKEN))),
       ("  - {name: peer, type: webhook, url: %s}\n" % yaml_str(peer)) if peer else ""))
    return Klaxon(d, cfg), access


def states(body):
    return sorted((a["labels"]["path"], a["status"]) for a in body["alerts"])


def show(reqs):
    return "\n".join("  %d %s" % (r.status, json.dumps(states(r.json()))) for r in reqs) or "  (none)"


def story(kl, access, offered):
    """/r/1 fires; once the receiver was offered message 1 (offered() true),
    /r/2 fires; then both resolve."""
    append(access, nginx_bytes("/r/1", 503))
    kl.wait_transition("Rel", "firing")
    kl.wait(offered, "klaxon to offer the first message", 40)
    append(access, nginx_bytes("/r/2", 503))
    kl.wait_transition("Rel", "firing", count=2)
    time.sleep(1.5)   # > group_interval: /r/2's message is formed before the resolutions
    append(access, [nginx_bytes("/r/1", 200), nginx_bytes("/r/2", 200)])
    kl.wait_transition("Rel", "resolved", count=2)


def all_resolved(rv, path):
    def done():
        acc = rv.accepted(path)
        return acc and states(acc[-1].json()) == [("/r/1", "resolved"), ("/r/2", "resolved")]
    return done


def check_delivery(rv, path, what, refused_expected=None):
    reqs = rv.requests(path)
    acc = [r for r in reqs if 200 <= r.status < 300]
    bad = [r for r in reqs if not 200 <= r.status < 300]
    ctx = "%s; requests in order:\n%s" % (what, show(reqs))
    bodies = [r.body for r in acc]
    check(len(set(bodies)) == len(bodies), "%s: a message was delivered twice" % ctx)
    check(set(r.body for r in reqs) == set(bodies),
          "%s: a message offered to the receiver was never delivered" % ctx)
    if refused_expected is not None:
        check(len(bad) == refused_expected, "%s: %d refused attempts, the receiver refused exactly %d"
              % (ctx, len(bad), refused_expected))
    # a refused attempt is retried before anything else is sent
    for i, r in enumerate(reqs):
        if not 200 <= r.status < 300:
            check(i + 1 < len(reqs) and reqs[i + 1].body == r.body,
                  "%s: request %d was refused but the next request is not its retry" % (ctx, i + 1))
    check(acc and acc[0].body == reqs[0].body, "%s: the first message offered is not the first "
          "delivered" % ctx)
    check(states(acc[0].json()) == [("/r/1", "firing")],
          "%s: the first message is %r, expected /r/1 firing" % (ctx, states(acc[0].json())))
    told_resolved = set()
    for r in acc:
        for p, st in states(r.json()):
            check(not (st == "firing" and p in told_resolved),
                  "%s: %s told firing after it was told resolved (out of order)" % (ctx, p))
            if st == "resolved":
                told_resolved.add(p)
    check(states(acc[-1].json()) == [("/r/1", "resolved"), ("/r/2", "resolved")],
          "%s: the last message does not tell both alerts resolved" % ctx)
    return reqs


def finish(kl):
    rc = kl.stop()
    check(rc == 0, "klaxon run exited %s on SIGTERM:\n%s" % (rc, tail(kl.stderr())))
    err = ""
    for i in range(1, kl.runs + 1):   # every run's log
        with open(os.path.join(kl.dir, "klaxon.%d.err" % i), errors="replace") as f:
            err += f.read()
    for secret in (TOKEN, "/hook", "/peer"):
        check(secret not in err, "klaxon's log shows the webhook URL's path or query (%r), "
              "which it must redact:\n%s" % (secret, tail(err)))


# ---------------------------------------------------------------- scenarios


def fail_503(rv, name, retry_after):
    path = "/%s/hook" % name
    kl, access = setup(rv, name)
    kl.start()
    story(kl, access, lambda: rv.requests(path))
    kl.wait(all_resolved(rv, path), "every message delivered after three 503s", 90)
    time.sleep(QUIET)
    reqs = check_delivery(rv, path, name, refused_expected=3)
    kl.wait_log("answered 503", "the outage to be logged")
    finish(kl)
    gaps = ["%.2f" % ((b.t_ms - a.t_ms) / 1000.0) for a, b in zip(reqs, reqs[1:4])]
    log("%s: %d requests, %d messages delivered once each, in order; gaps after the 503s "
        "(s, not asserted): %s%s" % (name, len(reqs), len([r for r in reqs if r.status == 200]),
                                     ", ".join(gaps),
                                     " (Retry-After: %s)" % retry_after if retry_after else ""))


def down(rv):
    name = "down"
    rv2 = Receiver(rv.dir, "down-receiver")
    rv2.reserve_port()
    kl, access = setup(rv2, name, peer=rv.url("/down/peer"))
    kl.start()
    path = "/%s/hook" % name
    story(kl, access, lambda: "retrying with backoff" in kl.stderr())
    check(not rv2.requests(path), "the receiver was down, yet it recorded requests")
    # another sink of the same route is not held back by this one's outage
    kl.wait(all_resolved(rv, "/down/peer"), "the other sink to get every message while the "
            "first one's receiver is down", 60)
    check_delivery(rv, "/down/peer", "down (the other sink)", refused_expected=0)
    check(not rv2.requests(path), "the receiver was down, yet it recorded requests")
    time.sleep(2)
    rv2.start()
    log("down: the receiver is up again on port %d" % rv2.port)
    kl.wait(all_resolved(rv2, path), "every message delivered once the receiver is up", 120)
    time.sleep(QUIET)
    reqs = check_delivery(rv2, path, name, refused_expected=0)
    kl.wait_log("answers again", "klaxon to log the end of the outage")
    finish(kl)
    rv2.stop()
    log("down: %d messages delivered once each, in order, after the outage" % len(reqs))


def sigkill(rv):
    name = "sigkill"
    rv3 = Receiver(rv.dir, "sigkill-receiver")
    rv3.reserve_port()
    kl, access = setup(rv3, name, start_from="end")
    kl.start()
    path = "/%s/hook" % name
    append(access, nginx_bytes("/r/1", 503))
    kl.wait_transition("Rel", "firing")
    kl.wait(lambda: "retrying with backoff" in kl.stderr(), "klaxon to fail its first attempt")
    rc = kl.kill()
    log("sigkill: klaxon killed (status %s) with a message pending" % rc)
    rv3.start()
    time.sleep(1)
    check(not rv3.requests(path), "a request arrived while klaxon was dead")
    kl.start()
    kl.wait(lambda: rv3.accepted(path), "the pending message after the restart", 60)
    time.sleep(QUIET)
    reqs = rv3.requests(path)
    check(len(reqs) == 1 and reqs[0].status == 200,
          "expected exactly one request (the spooled message), got:\n%s" % show(reqs))
    check(states(reqs[0].json()) == [("/r/1", "firing")],
          "the message delivered after the restart is %r, expected /r/1 firing" % states(reqs[0].json()))
    pending = [l for l in kl.stderr().splitlines() if "pending" in l]
    # delivered means acknowledged in the spool: another SIGKILL and restart
    # must not send it again
    kl.kill()
    kl.start()
    time.sleep(QUIET + 1)   # past the first retry step: a re-send would be here
    reqs = rv3.requests(path)
    check(len(reqs) == 1, "the message delivered before a second SIGKILL was sent again after "
          "the restart:\n%s" % show(reqs))
    finish(kl)
    rv3.stop()
    log("sigkill: the spooled message arrived once after the restart%s"
        % ((" (klaxon: %s)" % pending[0].strip()) if pending else ""))


def refused(rv):
    name = "refused"
    path = "/%s/hook" % name
    kl, access = setup(rv, name)
    kl.start()
    append(access, nginx_bytes("/r/1", 503))
    kl.wait_transition("Rel", "firing")
    kl.wait(lambda: rv.requests(path), "the first request")
    def refusal():
        return [l for l in kl.stderr().splitlines() if "'hook'" in l and "400" in l]
    kl.wait(refusal, "klaxon to log the refusal (a line naming sink 'hook' and 400)")
    time.sleep(5)   # past the first backoff steps (1 s, 2 s with jitter): a retry would be here
    reqs = rv.requests(path)
    check(len(reqs) == 1 and reqs[0].status == 400,
          "a message answered 400 was sent %d times (expected once, not retried):\n%s"
          % (len(reqs), show(reqs)))
    line = refusal()[0]
    check("bad payload: unknown field 'x'" in line,
          "the refusal is not logged with the status and the answer's first line: %r" % line)
    check("second line" not in kl.stderr(), "more than the answer's first line is logged:\n"
          + tail(kl.stderr()))

    append(access, nginx_bytes("/r/2", 503))
    kl.wait(lambda: rv.accepted(path), "the next message after the refused one")
    time.sleep(QUIET)
    reqs = rv.requests(path)
    check(len(reqs) == 2 and reqs[1].status == 200, "expected the refused request then one "
          "delivered message:\n%s" % show(reqs))
    check(("/r/2", "firing") in states(reqs[1].json()),
          "the message after the refused one does not hold /r/2: %r" % states(reqs[1].json()))
    finish(kl)
    log("400: dropped after one attempt, logged as %r; the next message was delivered" % line)


def body():
    d = tmpdir()
    rv = Receiver(d).start()
    rv.set_rules([
        {"path": "/503/hook", "status": 503, "count": 3},
        {"path": "/503ra/hook", "status": 503, "count": 3, "retry_after": "1"},
        {"path": "/refused/hook", "status": 400, "count": 1,
         "body": "bad payload: unknown field 'x'\nsecond line of the answer"},
    ])
    log("---- 503 ×3")
    fail_503(rv, "503", None)
    log("---- 503 ×3 with Retry-After: 1")
    fail_503(rv, "503ra", "1")
    log("---- receiver down")
    down(rv)
    log("---- SIGKILL with a pending message")
    sigkill(rv)
    log("---- 400")
    refused(rv)


if __name__ == "__main__":
    main(body)
