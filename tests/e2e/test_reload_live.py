#!/usr/bin/env python3
"""SIGHUP reloads the rules of a running klaxon; a broken rule file keeps the old ones.

  1. rules.yml has OldRule (a /trigger-old request in the last 5 s); a
     /trigger-old line makes it fire.
  2. rules.yml is replaced by a file with a syntax error; SIGHUP: klaxon logs
     the problem as FILE:LINE:COL, keeps running, and keeps OldRule: after it
     resolves, another /trigger-old line fires it again.
  3. rules.yml gets a valid NewRule (a /trigger-new request); SIGHUP: a
     /trigger-new line fires NewRule.
  4. SIGTERM: exit 0.
Deadlines only guard against a hang.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, alerts, check, log, main, nginx_line, read_bytes, start,  # noqa: E402
                    stop, tail, tmpdir, wait_for, write)

OLD = """\
rules:
  - alert: OldRule
    source: nginx
    expr: count(path == "/trigger-old") > 0
    window: 5s
"""
BROKEN = """\
rules:
  - alert: Broken
    source: nginx
    expr: count(path == ) > 0
    window: 5s
"""
NEW = """\
rules:
  - alert: NewRule
    source: nginx
    expr: count(path == "/trigger-new") > 0
    window: 5s
"""


def replace(path, text):
    tmp = path + ".tmp"
    write(tmp, text)
    os.rename(tmp, path)


def body():
    d = tmpdir()
    access = os.path.join(d, "access.log")
    rules = os.path.join(d, "rules.yml")
    write(access, "")
    write(rules, OLD)
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
eval_interval: 1s
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
""" % (os.path.join(d, "state"), access))
    out = os.path.join(d, "alerts.jsonl")
    err = os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out, stderr=err)

    def append(path):
        with open(access, "a", encoding="utf-8") as f:
            f.write(nginx_line(path))

    def transitions(alert, status):
        return [a for a in alerts(out, "klaxon stdout", complete_only=True)
                if a["alert"] == alert and a["status"] == status]

    def reloads():
        return len(re.findall(r"reload", read_bytes(err).decode("utf-8", "replace")))

    # 1. the old rule works
    append("/trigger-old")
    wait_for(lambda: transitions("OldRule", "firing"), 30, "OldRule to fire", proc=kl, proc_log=err)
    wait_for(lambda: transitions("OldRule", "resolved"), 30, "OldRule to resolve as its window empties",
             proc=kl, proc_log=err)
    log("1: OldRule fired and resolved")

    # 2. a broken file: logged, old rules kept
    n = reloads()
    replace(rules, BROKEN)
    kl.send_signal(1)
    wait_for(lambda: reloads() > n, 30, "klaxon to log the failed reload", proc=kl, proc_log=err)
    e = read_bytes(err).decode("utf-8", "replace")
    check(re.search(r"rules\.yml:4:\d+: ", e),
          "the broken rule file's problem is not logged as rules.yml:4:COL: ...; stderr:\n" + tail(e))
    check(kl.poll() is None, "klaxon exited after a broken reload")
    append("/trigger-old")
    wait_for(lambda: len(transitions("OldRule", "firing")) >= 2, 30,
             "OldRule to fire again after the failed reload (the old rules keep running)",
             proc=kl, proc_log=err)
    check(not transitions("Broken", "firing"), "the broken rule fired")
    log("2: broken reload logged, OldRule still runs")

    # 3. a good file: the new rule works
    n = reloads()
    replace(rules, NEW)
    kl.send_signal(1)
    wait_for(lambda: reloads() > n, 30, "klaxon to log the reload", proc=kl, proc_log=err)
    append("/trigger-new")
    wait_for(lambda: transitions("NewRule", "firing"), 30, "NewRule to fire after the reload",
             proc=kl, proc_log=err)
    log("3: NewRule loaded and fired")

    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err))))
    log("stderr of klaxon:\n" + tail(read_bytes(err), 20))


if __name__ == "__main__":
    main(body)
