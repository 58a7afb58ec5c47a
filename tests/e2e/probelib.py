"""probelib — what the probe end-to-end tests share: the example pack
(examples/rules/probes.yml) cut to the rules of the probes a test runs and
scaled to seconds, a klaxon config around it, and polling of klaxon's alert
lines (stdout sink) and events (jsonl sink)."""

import os
import re

from e2elib import SRC, alerts, check, json_lines, read_bytes, write

PACK = os.path.join(SRC, "examples", "rules", "probes.yml")


def pack_rules(sources, replace=()):
    """The pack's rules over `sources`, with each (old, new) of replace made
    exactly once, and every `for:` set to 0s (the tests wait for no minute)."""
    text = open(PACK, encoding="utf-8").read()
    head, _, body = text.partition("\nrules:\n")
    check(body, "%s has no 'rules:'" % PACK)
    blocks = re.split(r"(?m)^(?=  - alert: )", body)
    kept = []
    for b in blocks:
        m = re.search(r"(?m)^    source: (\S+)$", b)
        if m and m.group(1) in sources:
            kept.append(b)
    out = "rules:\n" + "".join(kept)
    for old, new in replace:
        check(out.count(old) == 1, "%s: expected one %r to scale down, found %d" % (PACK, old, out.count(old)))
        out = out.replace(old, new)
    return re.sub(r"(?m)^    for: \S+$", "    for: 0s", out)


def config(d, probes_yaml, rules_text, eval_interval="200ms"):
    rules = os.path.join(d, "rules.yml")
    write(rules, rules_text)
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
eval_interval: %s
rule_files: [%s]
probes:
%s
sinks:
  - {name: out, type: stdout}
  - {name: events, type: jsonl, path: %s, what: events}
""" % (os.path.join(d, "state"), eval_interval, rules, probes_yaml, os.path.join(d, "events.jsonl")))
    return cfg


class Watch:
    """klaxon's alert lines (out) and events (the jsonl sink in d)."""

    def __init__(self, d, out):
        self.out = out
        self.events_path = os.path.join(d, "events.jsonl")

    def alerts(self):
        return alerts(self.out, "klaxon run", complete_only=True)

    def state(self, alert):
        """The last status of alert ('firing', 'resolved', or None)."""
        last = None
        for a in self.alerts():
            if a["alert"] == alert:
                last = a["status"]
        return last

    def count(self, alert, status):
        return sum(1 for a in self.alerts() if a["alert"] == alert and a["status"] == status)

    def events(self, source):
        if not os.path.exists(self.events_path):
            return []
        return [e for e in json_lines(read_bytes(self.events_path), "events", complete_only=True)
                if e["source"] == source]

    def last_event(self, source, pred=lambda f: True):
        for e in reversed(self.events(source)):
            if pred(e["fields"]):
                return e["fields"]
        return None
