#!/usr/bin/env python3
"""The five notifier formats, field by field, on a real HTTP receiver.

One `klaxon run` follows an nginx_timed file with one rule, Err5xx
(`count(status >= 500) >= 1`, window 5s, by path, labels {severity: page},
a summary and a runbook annotation), and has six sinks: stdout (the
transitions, the reference) and webhook (signed with secret_file),
alertmanager, slack, discord and teams, each pointing at tests/e2e/receiver.py
on its own path; notify: group_wait 0s, group_interval 1s.

Phase 1, clean: one 503 on /api/debts fires Err5xx{path=/api/debts}; the
window slides past it and it resolves. Every sink gets exactly one firing and
then one resolved message, and each is checked field by field:
  - webhook: Alertmanager's webhook payload v4: version "4", groupKey (the same
    in both), status, receiver (the sink's name), groupLabels {alertname},
    commonLabels, commonAnnotations (what every alert shares), externalURL, and
    alerts[] with status, labels (alertname + the transition's labels),
    annotations (the transition's, plus value = the transition's value),
    startsAt (= the transition's `started`), endsAt (Go's zero time while
    firing, the resolved transition's `at` after), generatorURL and the
    fingerprint (recomputed here: FNV-1a 64 over the sorted labels, as
    Alertmanager does);
  - alertmanager: a POST to <url>/api/v2/alerts whose body is an array of
    alerts with labels, annotations, startsAt, and endsAt once resolved;
  - slack: text (the headline) and attachments (title, text = summary and
    runbook, color, fields value/path/...);
  - discord: content, allowed_mentions with nothing allowed, embeds (title,
    description, integer color, fields);
  - teams: a MessageCard (@type, @context, themeColor, summary, title,
    sections with activityTitle, text and facts).
Every request is a POST with Content-Type application/json; every webhook
request carries X-Klaxon-Timestamp and X-Klaxon-Signature, verified here with
Python's hmac module over "<timestamp>.<body>"; the other sinks' are unsigned;
the secret never shows in klaxon's output.

Phase 2, hostile: five 503 lines whose paths hold nginx `\\xHH` escapes,
backslashes, raw control characters, invalid UTF-8 (stray, truncated,
surrogate, overlong, beyond U+10FFFF) and `<&>@everyone`, next to lines with
NUL bytes and garbage. Every payload of every sink is strict UTF-8 JSON; the
path labels (webhook, alertmanager) and path fields (slack with its & < >
entities, discord, teams) are exactly the raw bytes decoded with U+FFFD
replacement; and no string of any payload holds a NUL (none was written).

Phase 3, limits: twelve alerts with 1600-character paths (multi-byte, some
outside the BMP). Webhook and alertmanager carry every path whole; slack keeps
at most 20 attachments and 40,000 characters of text; discord at most 10
embeds (the content says how many were left out), title 256, description
4096, 25 fields of 256/1024, 6000 over all embeds (counted in UTF-16 units);
teams stays under 28 KB and 10 sections; every cut value is a prefix of the
real one on a whole character, marked with "…".

A second alertmanager sink is given its URL with /api/v2/alerts already on:
it is not doubled.

Deadlines only guard against a hang; nothing asserts a duration.
"""
import calendar
import hashlib
import hmac
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, fail, log, main, tail, tmpdir, write, yaml_str  # noqa: E402
from receiver import Klaxon, Receiver, append, nginx_bytes  # noqa: E402

SECRET = "e2e-hmac-key-7f3a9c"
EXTERNAL = "http://klaxon.example:9731"
ALERT = "Err5xx"
SINKS = {           # sink name → (type, receiver path, where the receiver sees it)
    "hook": ("webhook", "/hook", "/hook"),
    "am": ("alertmanager", "/am", "/am/api/v2/alerts"),
    "am2": ("alertmanager", "/am2/api/v2/alerts", "/am2/api/v2/alerts"),   # given in full
    "chat": ("slack", "/slack", "/slack"),
    "disc": ("discord", "/discord", "/discord"),
    "msteams": ("teams", "/teams", "/teams"),
}
RULES = """\
rules:
  - alert: Err5xx
    source: nginx
    expr: count(status >= 500) >= 1
    window: 5s
    by: [path]
    labels: {severity: page}
    annotations:
      summary: '5xx on {{ labels.path }}: {{ value }}'
      runbook: 'https://runbooks.example/5xx'
"""

# Hostile paths, as bytes in the log line.
HOSTILE = [
    b"/h1/nginx\\x22esc\\x5C\\xC3\\x28\\x00",                 # nginx's escapes, as text
    b"/h2/back\\slash\\\\dbl\\\\",                            # raw backslashes
    b"/h3/ctl\x01\x02\x1b[31m\x7f\x08\x0c\x0b\ttab",          # raw control characters
    b"/h4/bad\xff\xfe\xc3\x28\xe2\x82\xed\xa0\x80\xf4\x90\x80\x80\xc0\xaf\xe0\x80-end",
    b"/h5/utf8-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80<&>@everyone<@123>",
]


def expected_text(raw):
    return raw.decode("utf-8", "replace")


def slack_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def rfc3339(ts):
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$", ts or "")
    check(m, "not an RFC 3339 UTC time: %r" % (ts,))
    t = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return t + (float(m.group(7)) if m.group(7) else 0.0)


def fingerprint(labels):
    """prometheus/common's labelSetToFingerprint: FNV-1a 64 over name, 0xff,
    value, 0xff for each label in name order."""
    h = 0xcbf29ce484222325
    for k in sorted(labels, key=lambda x: x.encode("utf-8")):
        for part in (k.encode("utf-8"), b"\xff", labels[k].encode("utf-8"), b"\xff"):
            for c in part:
                h ^= c
                h = (h * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)


def parse(req, what):
    """Strict: UTF-8, JSON, and no NUL in any string (none was logged)."""
    try:
        text = req.body.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        fail("%s: the body is not valid UTF-8 (%s): %r" % (what, e, req.body[:300]))
    try:
        obj = json.loads(text)
    except ValueError as e:
        fail("%s: the body is not valid JSON (%s): %s" % (what, e, text[:600]))
    for s in strings(obj):
        check("\x00" not in s, "%s: a string holds a NUL character, which no input had "
              "(garbage from the formatter?): %r\nbody: %s" % (what, s, text[:1500]))
    return obj


def check_request(req, sink, what):
    typ, _, seen = SINKS[sink]
    check(req.rec["method"] == "POST", "%s: method %s, expected POST" % (what, req.rec["method"]))
    check(req.path == seen, "%s: path %r, expected %r" % (what, req.path, seen))
    ctype = req.headers.get("content-type", "")
    check(ctype.split(";")[0].strip().lower() == "application/json",
          "%s: Content-Type %r, expected application/json" % (what, ctype))
    if sink == "hook":
        ts = req.headers.get("x-klaxon-timestamp")
        sig = req.headers.get("x-klaxon-signature")
        check(ts and re.match(r"^\d+$", ts), "%s: X-Klaxon-Timestamp missing or not unix "
              "seconds: %r (headers %s)" % (what, ts, req.headers))
        check(sig and sig.startswith("sha256="), "%s: X-Klaxon-Signature missing or not "
              "sha256=<hex>: %r" % (what, sig))
        want = hmac.new(SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        check(hmac.compare_digest(sig, "sha256=" + want),
              "%s: the signature does not verify: got %s, HMAC-SHA256(secret, ts + '.' + body) "
              "is sha256=%s" % (what, sig, want))
        # a sanity check of the value, not a timing assertion: a day either way
        check(abs(int(ts) - req.t_ms / 1000.0) < 86400,
              "%s: X-Klaxon-Timestamp %s is not the current time" % (what, ts))
    else:
        for h in ("x-klaxon-signature", "x-klaxon-timestamp"):
            check(h not in req.headers, "%s: %s sent to a sink without secret_file" % (what, h))


# ---------------------------------------------------------------- per format


def check_webhook(body, status, expect, what):
    """expect: list of (labels dict incl. alertname, transition) per alert."""
    for k in ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels",
              "commonAnnotations", "externalURL", "alerts"):
        check(k in body, "%s: no %r in the webhook payload: %s" % (what, k, json.dumps(body)[:800]))
    check(body["version"] == "4", "%s: version %r, expected \"4\"" % (what, body["version"]))
    check(isinstance(body["groupKey"], str) and body["groupKey"],
          "%s: groupKey %r is not a non-empty string" % (what, body["groupKey"]))
    check(body["status"] == status, "%s: status %r, expected %r" % (what, body["status"], status))
    check(body["receiver"] == "hook", "%s: receiver %r, expected the sink's name 'hook'"
          % (what, body["receiver"]))
    check(body["groupLabels"] == {"alertname": ALERT},
          "%s: groupLabels %r, expected {'alertname': %r}" % (what, body["groupLabels"], ALERT))
    check(body["externalURL"] == EXTERNAL, "%s: externalURL %r, expected %r"
          % (what, body["externalURL"], EXTERNAL))
    alerts = body["alerts"]
    check(isinstance(alerts, list) and len(alerts) == len(expect),
          "%s: %d alerts, expected %d: %s" % (what, len(alerts) if isinstance(alerts, list) else -1,
                                              len(expect), json.dumps(alerts)[:800]))
    by_fp = {}
    for labels, tr in expect:
        by_fp[fingerprint(labels)] = (labels, tr)
    seen = set()
    for a in alerts:
        for k in ("status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"):
            check(k in a, "%s: an alert without %r: %s" % (what, k, json.dumps(a)))
        # find the expected alert by its labels (fingerprints of invalid UTF-8
        # labels are computed by klaxon over the raw bytes: match by labels)
        match = [(l, t) for l, t in expect if l == a["labels"]]
        check(match, "%s: unexpected alert labels %r; expected one of %r"
              % (what, a["labels"], [l for l, _ in expect]))
        labels, tr = match[0]
        key = json.dumps(labels, sort_keys=True)
        check(key not in seen, "%s: alert %r twice in one message" % (what, labels))
        seen.add(key)
        check(a["status"] == status, "%s: alert status %r, expected %r" % (what, a["status"], status))
        check(re.match(r"^[0-9a-f]{16}$", a["fingerprint"] or ""),
              "%s: fingerprint %r is not 16 hex digits" % (what, a["fingerprint"]))
        if "\ufffd" not in "".join(labels.values()):   # else klaxon hashed raw bytes
            check(a["fingerprint"] == fingerprint(labels),
                  "%s: fingerprint %s, Alertmanager's for %r is %s"
                  % (what, a["fingerprint"], labels, fingerprint(labels)))
        ann = a["annotations"]
        check("value" in ann, "%s: no 'value' annotation: %r" % (what, ann))
        check(float(ann["value"]) == float(tr["value"]),
              "%s: annotations.value %r, the transition's value is %r" % (what, ann["value"], tr["value"]))
        for k, v in (tr.get("annotations") or {}).items():
            check(ann.get(k) == v, "%s: annotation %r is %r, the transition has %r"
                  % (what, k, ann.get(k), v))
        check(set(ann) == set(tr.get("annotations") or {}) | {"value"},
              "%s: annotations %r; expected the transition's %r plus value"
              % (what, sorted(ann), sorted(tr.get("annotations") or {})))
        check(int(rfc3339(a["startsAt"])) == int(rfc3339(tr["started"])),
              "%s: startsAt %s, the transition started at %s" % (what, a["startsAt"], tr["started"]))
        if status == "firing":
            check(a["endsAt"] == "0001-01-01T00:00:00Z",
                  "%s: a firing alert's endsAt is %r, expected Go's zero time as Alertmanager "
                  "writes it" % (what, a["endsAt"]))
        else:
            check(int(rfc3339(a["endsAt"])) == int(rfc3339(tr["at"])),
                  "%s: endsAt %s, the alert resolved at %s" % (what, a["endsAt"], tr["at"]))
            check(rfc3339(a["endsAt"]) >= rfc3339(a["startsAt"]),
                  "%s: endsAt %s before startsAt %s" % (what, a["endsAt"], a["startsAt"]))
        check(isinstance(a.get("generatorURL", ""), str), "%s: generatorURL not a string" % what)
    # common labels and annotations: exactly what every alert shares
    def common(key):
        first = alerts[0][key]
        return {k: v for k, v in first.items() if all(x[key].get(k) == v for x in alerts)}
    check(body["commonLabels"] == common("labels"),
          "%s: commonLabels %r, expected %r" % (what, body["commonLabels"], common("labels")))
    check(body["commonAnnotations"] == common("annotations"),
          "%s: commonAnnotations %r, expected %r"
          % (what, body["commonAnnotations"], common("annotations")))
    return {json.dumps(l, sort_keys=True): a["fingerprint"] for a in alerts
            for l in [a["labels"]]}


def check_alertmanager(body, status, expect, what):
    check(isinstance(body, list), "%s: the body is not a JSON array: %s" % (what, json.dumps(body)[:500]))
    check(len(body) == len(expect), "%s: %d alerts, expected %d" % (what, len(body), len(expect)))
    for a in body:
        for k in ("labels", "annotations", "startsAt"):
            check(k in a, "%s: an alert without %r: %s" % (what, k, json.dumps(a)))
        match = [(l, t) for l, t in expect if l == a["labels"]]
        check(match, "%s: unexpected labels %r" % (what, a["labels"]))
        labels, tr = match[0]
        check(float(a["annotations"].get("value", "nan")) == float(tr["value"]),
              "%s: annotations.value %r, the transition's value is %r"
              % (what, a["annotations"].get("value"), tr["value"]))
        for k, v in (tr.get("annotations") or {}).items():
            check(a["annotations"].get(k) == v, "%s: annotation %r is %r, the transition has %r"
                  % (what, k, a["annotations"].get(k), v))
        check(int(rfc3339(a["startsAt"])) == int(rfc3339(tr["started"])),
              "%s: startsAt %s, the transition started at %s" % (what, a["startsAt"], tr["started"]))
        if status == "firing":
            check("endsAt" not in a or rfc3339(a["endsAt"]) > time.time(),
                  "%s: a firing alert posted with endsAt %r in the past (Alertmanager would "
                  "resolve it)" % (what, a.get("endsAt")))
        else:
            check("endsAt" in a, "%s: a resolved alert posted without endsAt (Alertmanager would "
                  "keep it firing): %s" % (what, json.dumps(a)))
            check(int(rfc3339(a["endsAt"])) == int(rfc3339(tr["at"])),
                  "%s: endsAt %s, the alert resolved at %s" % (what, a["endsAt"], tr["at"]))
        if "generatorURL" in a:
            check(a["generatorURL"].startswith("http"), "%s: generatorURL %r is not a URL"
                  % (what, a["generatorURL"]))


def card_paths(cards, fields_key, name_key, value_key):
    out = []
    for c in cards:
        fields = c.get(fields_key) or []
        check(isinstance(fields, list), "fields is not a list: %r" % (fields,))
        for f in fields:
            if f.get(name_key) == "path":
                out.append(f.get(value_key))
    return out


def check_texts(cards, fields_key, name_key, value_key, text_key, expect, esc, what):
    """Each card's text holds its alert's summary (found by its path field)."""
    for c in cards:
        p = card_paths([c], fields_key, name_key, value_key)
        check(len(p) == 1, "%s: a card without one path field: %s" % (what, json.dumps(c)[:600]))
        tr = [t for l, t in expect if esc(l["path"]) == p[0]][0]
        summary = esc(tr["annotations"]["summary"])
        check(summary in (c.get(text_key) or ""), "%s: the card's %s %r does not hold the "
              "summary %r" % (what, text_key, c.get(text_key), summary))


def check_chat(typ, body, status, expect, what):
    paths = [l["path"] for l, _ in expect]
    word = "FIRING" if status == "firing" else "RESOLVED"
    if typ == "slack":
        check(isinstance(body.get("text"), str) and body["text"],
              "%s: no text (the headline): %s" % (what, json.dumps(body)[:600]))
        check(word in body["text"] and ALERT in body["text"],
              "%s: the headline %r does not say %s and %s" % (what, body["text"], word, ALERT))
        atts = body.get("attachments")
        check(isinstance(atts, list) and len(atts) == len(expect),
              "%s: %s attachments, expected one per alert (%d)" % (what, len(atts or []), len(expect)))
        for a in atts:
            for k in ("title", "color", "fields"):
                check(k in a, "%s: an attachment without %r: %s" % (what, k, json.dumps(a)))
            check(word in a["title"] and ALERT in a["title"], "%s: attachment title %r"
                  % (what, a["title"]))
            check(re.match(r"^#[0-9A-Fa-f]{6}$", a["color"]), "%s: color %r" % (what, a["color"]))
            check("https://runbooks.example/5xx" in a.get("text", ""),
                  "%s: the runbook is not in the attachment's text %r" % (what, a.get("text")))
        got = card_paths(atts, "fields", "title", "value")
        check(sorted(got) == sorted(slack_escape(p) for p in paths),
              "%s: path fields %r, expected %r (with Slack's &amp; &lt; &gt;)"
              % (what, got, [slack_escape(p) for p in paths]))
        check_texts(atts, "fields", "title", "value", "text", expect, slack_escape, what)
    elif typ == "discord":
        check(isinstance(body.get("content"), str) and word in body["content"]
              and ALERT in body["content"], "%s: content %r" % (what, body.get("content")))
        check(len(body["content"]) <= 2000, "%s: content over Discord's 2000" % what)
        check(body.get("allowed_mentions") == {"parse": []},
              "%s: allowed_mentions %r, expected {'parse': []}" % (what, body.get("allowed_mentions")))
        embeds = body.get("embeds")
        check(isinstance(embeds, list) and len(embeds) == len(expect),
              "%s: %s embeds, expected %d" % (what, len(embeds or []), len(expect)))
        for e in embeds:
            check(isinstance(e.get("title"), str) and word in e["title"], "%s: embed title %r"
                  % (what, e.get("title")))
            check(isinstance(e.get("color"), int), "%s: embed color %r is not an integer"
                  % (what, e.get("color")))
            check("https://runbooks.example/5xx" in (e.get("description") or ""),
                  "%s: the runbook is not in the description %r" % (what, e.get("description")))
            for f in e.get("fields", []):
                check(isinstance(f.get("name"), str) and isinstance(f.get("value"), str)
                      and f["value"] != "", "%s: a field %r" % (what, f))
        got = card_paths(embeds, "fields", "name", "value")
        check(sorted(got) == sorted(paths), "%s: path fields %r, expected %r" % (what, got, paths))
        check_texts(embeds, "fields", "name", "value", "description", expect, lambda x: x, what)
    else:   # teams
        check(body.get("@type") == "MessageCard", "%s: @type %r" % (what, body.get("@type")))
        check(str(body.get("@context", "")).endswith("schema.org/extensions"),
              "%s: @context %r" % (what, body.get("@context")))
        check(re.match(r"^#?[0-9A-Fa-f]{6}$", body.get("themeColor", "")),
              "%s: themeColor %r" % (what, body.get("themeColor")))
        for k in ("summary", "title"):
            check(isinstance(body.get(k), str) and word in body[k] and ALERT in body[k],
                  "%s: %s %r" % (what, k, body.get(k)))
        secs = body.get("sections")
        check(isinstance(secs, list) and len(secs) == len(expect),
              "%s: %s sections, expected %d" % (what, len(secs or []), len(expect)))
        for s in secs:
            check(isinstance(s.get("activityTitle"), str) and word in s["activityTitle"],
                  "%s: activityTitle %r" % (what, s.get("activityTitle")))
            check("https://runbooks.example/5xx" in (s.get("text") or ""),
                  "%s: the runbook is not in the section's text %r" % (what, s.get("text")))
        got = card_paths(secs, "facts", "name", "value")
        check(sorted(got) == sorted(paths), "%s: path facts %r, expected %r" % (what, got, paths))
        check_texts(secs, "facts", "name", "value", "text", expect, lambda x: x, what)


# ---------------------------------------------------------------- limits


def u16(s):
    return len(s.encode("utf-16-le")) // 2


def cut_ok(got, full, what):
    """got is full, or a prefix of it (whole characters) followed by "…"."""
    check(got == full or (got.endswith("\u2026") and full.startswith(got[:-1])),
          "%s: %r… is neither the value nor a prefix of it marked with …" % (what, got[:80]))


def check_limits(rv, before, paths):
    for sink, (typ, _, _) in SINKS.items():
        ms = messages(rv, sink)[before:]
        check(ms, "phase 3: no message to %s" % sink)
        for i, req in enumerate(ms):
            parse(req, "phase 3, message %d to %s (%s)" % (i + 1, sink, typ))
        req = ms[-1]
        what = "phase 3, %s (%s)" % (sink, typ)
        body = parse(req, what)
        if typ == "webhook":
            got = sorted(a["labels"]["path"] for a in body["alerts"])
            check(got == sorted(paths), "%s: the path labels are not the paths, whole" % what)
        elif typ == "alertmanager":
            got = sorted(a["labels"]["path"] for a in body)
            check(got == sorted(paths), "%s: the path labels are not the paths, whole" % what)
        elif typ == "slack":
            atts = body["attachments"]
            check(len(atts) == len(paths) and len(atts) <= 20, "%s: %d attachments for %d alerts"
                  % (what, len(atts), len(paths)))
            check(len(body["text"]) <= 40000, "%s: text over 40,000 characters" % what)
            for v in card_paths(atts, "fields", "title", "value"):
                cut_ok(v, [p for p in paths if p.startswith(v.rstrip("\u2026")[:12])][0], what)
        elif typ == "discord":
            embeds = body["embeds"]
            check(len(body["content"]) <= 2000, "%s: content over 2000" % what)
            check(len(embeds) <= 10, "%s: %d embeds, Discord takes at most 10" % (what, len(embeds)))
            check(str(len(paths) - len(embeds)) in body["content"],
                  "%s: %d alerts left out, and the content %r does not say so"
                  % (what, len(paths) - len(embeds), body["content"]))
            total = 0
            for e in embeds:
                check(u16(e.get("title", "")) <= 256, "%s: an embed title over 256" % what)
                check(u16(e.get("description", "")) <= 4096, "%s: a description over 4096" % what)
                check(len(e.get("fields", [])) <= 25, "%s: more than 25 fields" % what)
                total += u16(e.get("title", "")) + u16(e.get("description", ""))
                for f in e.get("fields", []):
                    check(u16(f["name"]) <= 256 and u16(f["value"]) <= 1024,
                          "%s: a field over 256/1024: %r" % (what, f["name"]))
                    total += u16(f["name"]) + u16(f["value"])
            check(total <= 6000, "%s: %d characters over all embeds, Discord takes at most 6000"
                  % (what, total))
            for v in card_paths(embeds, "fields", "name", "value"):
                cut_ok(v, [p for p in paths if p.startswith(v.rstrip("\u2026")[:12])][0], what)
        else:
            check(len(req.body) <= 28 * 1024, "%s: %d bytes, over Teams' 28 KB" % (what, len(req.body)))
            check(len(body["sections"]) <= 10, "%s: %d sections" % (what, len(body["sections"])))
            for v in card_paths(body["sections"], "facts", "name", "value"):
                cut_ok(v, [p for p in paths if p.startswith(v.rstrip("\u2026")[:12])][0], what)
        log("%s ok (%d bytes)" % (what, len(req.body)))


# ---------------------------------------------------------------- the test


def messages(rv, sink):
    return rv.requests(SINKS[sink][2])


def wait_messages(kl, rv, n, what, deadline_s=40):
    def ready():
        return all(len(messages(rv, s)) >= n for s in SINKS)
    kl.wait(ready, what, deadline_s)
    time.sleep(1.5)   # > group_interval: a message too many would show up now


def expectation(kl, paths_raw, status):
    """[(labels with alertname, transition)] for these paths, from stdout."""
    out = []
    for raw in paths_raw:
        p = expected_text(raw)
        trs = kl.transitions(ALERT, status)
        trs = [t for t in trs if t["labels"].get("path") == p]
        check(len(trs) == 1, "%d %s transitions of %s{path=%r} on stdout, expected 1:\n%s"
              % (len(trs), status, ALERT, p, "\n".join(json.dumps(t) for t in kl.transitions())))
        labels = dict(trs[0]["labels"])
        labels["alertname"] = ALERT
        check(labels == {"alertname": ALERT, "source": "nginx", "severity": "page", "path": p},
              "the transition's labels are %r" % (trs[0]["labels"],))
        out.append((labels, trs[0]))
    return out


def check_round(kl, rv, index, status, paths_raw, what):
    expect = expectation(kl, paths_raw, status)
    fps = None
    for sink, (typ, _, _) in SINKS.items():
        msgs = messages(rv, sink)
        check(len(msgs) > index, "%s: sink %s (%s) got %d messages, expected at least %d:\n%s"
              % (what, sink, typ, len(msgs), index + 1, "\n".join(repr(m) for m in msgs)))
        req = msgs[index]
        w = "%s, %s message to sink %s (%s)" % (what, status, sink, typ)
        check(req.status == 200, "%s: the receiver answered %d" % (w, req.status))
        check_request(req, sink, w)
        body = parse(req, w)
        if typ == "webhook":
            fps = check_webhook(body, status, expect, w)
        elif typ == "alertmanager":
            check_alertmanager(body, status, expect, w)
        else:
            check_chat(typ, body, status, expect, w)
        log("%s: %s ok (%d bytes)" % (what, sink, len(req.body)))
    return fps, messages(rv, "hook")[index].json()["groupKey"]


def body():
    d = tmpdir()
    rv = Receiver(d).start()
    access = os.path.join(d, "access.log")
    write(access, "")
    write(os.path.join(d, "rules.yml"), RULES)
    os.makedirs(os.path.join(d, "state"))
    secret = os.path.join(d, "hmac.secret")
    write(secret, SECRET + "\n")
    cfg = os.path.join(d, "klaxon.yml")
    sinks = "".join("  - {name: %s, type: %s, url: %s%s}\n"
                    % (name, typ, yaml_str(rv.url(path)),
                       (", secret_file: " + yaml_str(secret)) if name == "hook" else "")
                    for name, (typ, path, _) in SINKS.items())
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
external_url: %s
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
%snotify: {group_wait: 0s, group_interval: 1s, repeat_interval: 1h, send_resolved: true}
""" % (yaml_str(os.path.join(d, "state")), yaml_str(EXTERNAL), yaml_str(access), sinks))
    kl = Klaxon(d, cfg).start()

    # ---- phase 1: one clean alert, firing then resolved
    clean = [b"/api/debts"]
    append(access, [nginx_bytes("/api/debts?page=%d" % i) for i in range(20)]
           + [nginx_bytes(clean[0], 503)] + [nginx_bytes("/ok") for i in range(5)])
    kl.wait_transition(ALERT, "firing")
    wait_messages(kl, rv, 1, "a firing message at every sink")
    fps1, key1 = check_round(kl, rv, 0, "firing", clean, "phase 1")
    kl.wait_transition(ALERT, "resolved", deadline_s=60)
    wait_messages(kl, rv, 2, "a resolved message at every sink")
    fps2, key2 = check_round(kl, rv, 1, "resolved", clean, "phase 1")
    counts = {s: len(messages(rv, s)) for s in SINKS}
    check(set(counts.values()) == {2}, "phase 1: one alert fired and resolved, yet the sinks got "
          "%r messages (expected 2 each: firing, resolved)" % counts)
    check(fps1 == fps2, "the fingerprint changed between firing and resolved: %r, %r" % (fps1, fps2))
    check(key1 == key2, "the groupKey changed between firing and resolved: %r, %r" % (key1, key2))

    # ---- phase 2: hostile content
    lines = [nginx_bytes(b"\x00\x00\x00 binary \xff garbage \x00", 200),
             nginx_bytes("/ok", agent=b"agent \x00 with NUL \"quoted\" \\ \xfe"),
             b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not a line at all\n"]
    for i, p in enumerate(HOSTILE):
        lines.append(nginx_bytes(p, 503, agent=b"evil \xff\\x22agent\\ \x01",
                                 referer=b"http://x/\\x22\xc3"))
    append(access, lines)
    kl.wait(lambda: len([t for t in kl.transitions(ALERT, "firing")
                         if t["labels"]["path"] in [expected_text(p) for p in HOSTILE]]) >= len(HOSTILE),
            "the hostile paths' firing transitions on stdout")
    # they were written at once, but may be read in two batches: the last
    # message of each sink is the one with all of them
    def all_in():
        for s in SINKS:
            ms = messages(rv, s)[2:]
            if not ms:
                return False
            body = ms[-1].json()
            n = len(body) if isinstance(body, list) else len(
                body.get("alerts") or body.get("attachments") or body.get("embeds")
                or body.get("sections") or [])
            if n < len(HOSTILE):
                return False
        return True
    kl.wait(all_in, "a message with every hostile alert at every sink", 40)
    time.sleep(1.5)
    for s, (typ, _, _) in SINKS.items():
        for i, req in enumerate(messages(rv, s)[2:]):
            parse(req, "phase 2, message %d to %s (%s)" % (i + 1, s, typ))
    n_firing = len(messages(rv, "hook"))
    check(all(len(messages(rv, s)) == n_firing for s in SINKS),
          "the sinks got different numbers of messages: %r" % {s: len(messages(rv, s)) for s in SINKS})
    check_round(kl, rv, n_firing - 1, "firing", HOSTILE, "phase 2")

    kl.wait(lambda: len([t for t in kl.transitions(ALERT, "resolved")
                         if t["labels"]["path"] in [expected_text(p) for p in HOSTILE]]) >= len(HOSTILE),
            "the hostile paths' resolved transitions on stdout", 60)
    def resolved_in():
        for s in SINKS:
            ms = messages(rv, s)[n_firing:]
            if not ms:
                return False
            body = ms[-1].json()
            st = [a.get("status") for a in body["alerts"]] if s == "hook" else None
            if st is not None and (len(st) < len(HOSTILE) or set(st) != {"resolved"}):
                return False
        return True
    kl.wait(resolved_in, "a resolved message for every hostile alert at every sink", 40)
    time.sleep(1.5)
    for s, (typ, _, _) in SINKS.items():
        for i, req in enumerate(messages(rv, s)[n_firing:]):
            parse(req, "phase 2, resolved message %d to %s (%s)" % (i + 1, s, typ))
    check_round(kl, rv, len(messages(rv, "hook")) - 1, "resolved", HOSTILE, "phase 2")

    # ---- phase 3: many long alerts: complete where the format has no limit,
    # within each chat service's limits, cut on whole characters with "…"
    before = len(messages(rv, "hook"))
    unit = "\u00e9\u20ac\U0001F600x"   # 2, 3, 4 and 1 bytes; 1, 1, 2 and 1 UTF-16 units
    longs = [("/long/%02d/" % i + unit * 400).encode("utf-8") for i in range(12)]
    append(access, [nginx_bytes(p, 503) for p in longs])
    def twelve():
        ms = messages(rv, "hook")[before:]
        return ms and len(ms[-1].json()["alerts"]) == len(longs)
    kl.wait(twelve, "a webhook message with the twelve long alerts", 40)
    time.sleep(1.5)
    check_limits(rv, before, [expected_text(p) for p in longs])

    # ---- the secret never shows; a clean stop
    rc = kl.stop()
    err = kl.stderr()
    check(SECRET not in err and SECRET not in open(kl.out, errors="replace").read(),
          "the HMAC secret appears in klaxon's output:\n" + tail(err))
    check(rc == 0, "klaxon run exited %s on SIGTERM:\n%s" % (rc, tail(err)))


if __name__ == "__main__":
    main(body)
