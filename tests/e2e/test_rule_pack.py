#!/usr/bin/env python3
"""The example rule pack's unit tests pass: `klaxon test examples/rules/tests/*.yml`.

Every rule file of the pack that has a test file (nginx, app, postgres, probes) must
have every one of its rules named in an `expect` (a case that fires) and in an
`absent` (a case that must not fire) of its test file; then klaxon test must
exit 0 with every test passed.
"""
import glob
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, SRC, check, log, main, run  # noqa: E402

PACK = ("nginx", "app", "postgres", "probes")


def body():
    tests_dir = os.path.join(SRC, "examples", "rules", "tests")
    nrules = 0
    for name in PACK:
        rules = open(os.path.join(SRC, "examples", "rules", name + ".yml"), encoding="utf-8").read()
        path = os.path.join(tests_dir, name + ".yml")
        check(os.path.exists(path), "no test file for examples/rules/%s.yml" % name)
        text = open(path, encoding="utf-8").read()
        for alert in re.findall(r"^\s*- alert: (\w+)", rules, re.M):
            nrules += 1
            check(re.search(r"alert: %s\b" % alert, text),
                  "%s: rule %s has no expected transition" % (path, alert))
            check(re.search(r"absent: \[[^\]]*\b%s\b" % alert, text),
                  "%s: rule %s has no case that must not fire (absent)" % (path, alert))
    files = sorted(glob.glob(os.path.join(tests_dir, "*.yml")))
    rc, out, err = run([KLAXON, "test"] + files, timeout=120)
    out, err = out.decode(), err.decode()
    log(out + err)
    check(rc == 0, "klaxon test exited %d" % rc)
    m = re.search(r"^klaxon test: (\d+) passed, 0 failed, 0 errors$", out, re.M)
    check(m and int(m.group(1)) >= 2 * nrules,
          "the summary line is missing or counts fewer than two tests per rule (%d rules)" % nrules)
    check(not re.search(r"^  (FAIL|ERROR) ", out, re.M), "a test failed")
    check(len(re.findall(r"^  PASS  ", out, re.M)) == int(m.group(1)), "PASS lines and the count differ")


main(body)
