#!/usr/bin/env python3
"""Bad input neither crashes nor stalls klaxon, is counted, and never makes
it write invalid JSON.

A log of good nginx_timed lines mixed with: NUL bytes, invalid UTF-8
(stray continuation bytes, overlong forms, surrogates, 0xFF), control
characters (ESC, BEL, DEL, CR, backspace), two lines of 1 MiB (one garbage,
one a well-formed line with a huge path), binary garbage, and a last line
without its newline. Then:
  - `klaxon replay` exits 0; its summary counts every line: events + parse
    errors + too long == lines, exactly two too long, at least one parse error
    per garbage line, and every clean good line is an event (the last one too);
  - every stdout line is strict UTF-8 JSON with no raw control characters;
  - `klaxon parse` (from the file and from standard input) prints the same
    number of events, all strict JSON, the last line (no newline) included;
  - `klaxon run` over the same file writes the same events to a jsonl events
    sink, all strict JSON, except the last line, which waits for its newline;
    once the newline is appended, that line is an event too;
  - when the sanitizer build exists (build-asan/src/klaxon), the same replay
    and parse under ASan+UBSan exit 0.
"""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, SRC, alerts, check, gen_nginx, json_lines, log, main,  # noqa: E402
                    nginx_line, read_bytes, replay_summary, run, start, stop, tail, tmpdir,
                    wait_for, write)

T0 = 1699999200


def good(i, status=200):
    return nginx_line("/api/debts/%d/" % i, status=status, rt=0.05, when=T0 + i).encode()


def build_log(path):
    rnd = random.Random(1234)
    gen = run([gen_nginx(), "--lines", "2000", "--rate", "20", "--seed", "5"])[1]
    clean = gen.splitlines(keepends=True)
    parts = []            # (bytes, kind): kind in good | maybe | garbage | toolong
    for i, line in enumerate(clean):
        parts.append((line, "good"))
        if i % 100 != 50:
            continue
        k = (i // 100) % 6
        base = good(10000 + i, 503)
        if k == 0:    # NUL bytes inside a well-formed line, and a line of NULs
            parts.append((base.replace(b"/api/", b"/a\x00pi/").replace(b"e2e/1.0", b"e2e\x00\x00/1.0"), "maybe"))
            parts.append((b"\x00" * 300 + b"\n", "garbage"))
        elif k == 1:  # invalid UTF-8 in the path and the agent
            parts.append((base.replace(b"/api/", b"/\xff\xfe\xc0\xaf\xed\xa0\x80\x80api/"), "maybe"))
            parts.append((base.replace(b"e2e/1.0", b"e2e\xe2\x82/1.0\xc3"), "maybe"))
        elif k == 2:  # control characters
            parts.append((base.replace(b"e2e/1.0", b"\x1b[31me2e\x07\x08\x7f\x0b\x0c/1.0"), "maybe"))
            parts.append((base.replace(b"HTTP/1.1", b"HTTP/1.1\r"), "maybe"))
            parts.append((base[:-1] + b"\r\n", "maybe"))
        elif k == 3:  # binary garbage, without empty lines
            blob = bytes(rnd.getrandbits(8) for _ in range(8192))
            for chunk in blob.split(b"\n"):
                if chunk.strip(b"\r"):
                    parts.append((chunk + b"\n", "garbage"))
        elif k == 4:  # half lines, wrong fields
            parts.append((base[: len(base) // 2] + b"\n", "garbage"))
            parts.append((b"this is not an nginx line\n", "garbage"))
            parts.append((base.replace(b" 503 ", b" 5o3 "), "garbage"))
        else:         # 1 MiB lines: garbage, and a well-formed line with a huge path
            if not any(k2 == "toolong" for _, k2 in parts):
                parts.append((b"A" * (1 << 20) + b"\n", "toolong"))
                parts.append((nginx_line("/big/" + "x" * (1 << 20), when=T0).encode(), "toolong"))
    last = good(99999).rstrip(b"\n")      # no newline at the end of the file
    parts.append((last, "good"))
    data = b"".join(p for p, _ in parts)
    with open(path, "wb") as f:
        f.write(data)
    counts = {k: sum(1 for _, k2 in parts if k2 == k) for k in ("good", "maybe", "garbage", "toolong")}
    counts["lines"] = len(parts)
    return counts


def check_replay(klaxon, cfg, path, d, counts, env=None, tag=""):
    rc, out, err = run([klaxon, "replay", "-c", cfg, "--source", "nginx=" + path], timeout=120, env=env)
    errs = err.decode("utf-8", "replace")
    check(rc == 0, "%sreplay exited %d on bad input; stderr:\n%s" % (tag, rc, errs[-5000:]))
    s = replay_summary(err)
    log(tag + "replay summary:", s)
    check(s["lines"] == counts["lines"],
          "%sreplay counted %d lines, the file has %d" % (tag, s["lines"], counts["lines"]))
    # Each line is an event or a parse error; a too-long line is cut at the
    # cap and then either parsed (an event or a parse error) or dropped.
    check(s["events"] + s["parse_errors"] in (s["lines"], s["lines"] - s["too_long"]),
          "%slines are neither events, parse errors nor too long: %s" % (tag, s))
    check(s["too_long"] == counts["toolong"],
          "%sexpected %d too-long lines, counted %d" % (tag, counts["toolong"], s["too_long"]))
    check(s["parse_errors"] >= counts["garbage"],
          "%s%d garbage lines but only %d parse errors" % (tag, counts["garbage"], s["parse_errors"]))
    check(s["events"] >= counts["good"],
          "%s%d good lines but only %d events" % (tag, counts["good"], s["events"]))
    got = alerts(out, tag + "replay stdout")
    log(tag + "%d alert transitions" % len(got))
    return s


def check_parse(klaxon, cfg, path, events, env=None, tag=""):
    rc, out, err = run([klaxon, "parse", "-c", cfg, "--source", "nginx", path], timeout=120, env=env)
    check(rc == 0, "%sparse exited %d; stderr:\n%s" % (tag, rc, err.decode(errors="replace")[-3000:]))
    ev = json_lines(out, tag + "parse output")
    check(len(ev) == events, "%sparse printed %d events, replay counted %d" % (tag, len(ev), events))
    for e in ev:
        check(set(("time", "source", "fields")) <= set(e), "%san event without time/source/fields: %s" % (tag, e))
    check(ev[-1]["fields"].get("path") == "/api/debts/99999/",
          "%sthe last line (no newline) is not the last event: %s" % (tag, ev[-1]))
    rc, out2, err = run([klaxon, "parse", "-c", cfg, "--source", "nginx", "-"], timeout=120, env=env,
                        stdin_bytes=read_bytes(path))
    check(rc == 0, "%sparse - exited %d; stderr:\n%s" % (tag, rc, err.decode(errors="replace")[-3000:]))
    check(out2 == out, "%sparse of standard input differs from parse of the file" % tag)
    return ev


def check_run(cfg, path, d, parsed):
    """klaxon run from the beginning of the file: the events sink gets every
    event but the unterminated last line; then that line's newline arrives."""
    events = os.path.join(d, "events.jsonl")
    err = os.path.join(d, "run.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "run.out"), stderr=err)
    n = len(parsed)

    def count():
        return len(json_lines(events, "events sink", complete_only=True))
    wait_for(lambda: count() >= n - 1, 60, "klaxon run to write %d events" % (n - 1), proc=kl, proc_log=err)
    time.sleep(1.0)   # the unterminated line must not show up
    check(count() == n - 1, "klaxon run wrote %d events before the last newline, expected %d"
          % (count(), n - 1))
    with open(path, "ab") as f:
        f.write(b"\n")
    wait_for(lambda: count() >= n, 30, "the last line to become an event once its newline came",
             proc=kl, proc_log=err)
    time.sleep(0.5)
    rc = stop(kl, timeout=15)
    check(rc == 0, "klaxon run exited %s on SIGTERM; stderr:\n%s" % (rc, tail(read_bytes(err))))
    ev = json_lines(events, "events sink")
    check(len(ev) == n, "the events sink has %d events, parse printed %d" % (len(ev), n))
    diff = [i for i, (a, b) in enumerate(zip(ev, parsed)) if a.get("fields") != b.get("fields")]
    check(not diff, "the events sink and klaxon parse disagree on %d events; first: %s vs %s"
          % (len(diff), diff and ev[diff[0]], diff and parsed[diff[0]]))
    alerts(os.path.join(d, "run.out"), "run stdout")


def body():
    d = tmpdir()
    path = os.path.join(d, "bad.log")
    counts = build_log(path)
    log("built %s: %s" % (path, counts))
    write(os.path.join(d, "rules.yml"), """\
rules:
  - alert: AnyServerError
    source: nginx
    expr: count(status >= 500) > 0
    window: 1m
  - alert: SlowAnything
    source: nginx
    expr: p99(request_time) > 1s
    window: 1m
""")
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rule_files: [rules.yml]
sources:
  - {name: nginx, path: %s, parser: nginx_timed, from: beginning}
sinks:
  - {name: out, type: stdout}
  - {name: ev, type: jsonl, path: %s, what: events}
""" % (os.path.join(d, "state"), path, os.path.join(d, "events.jsonl")))

    s = check_replay(KLAXON, cfg, path, d, counts)
    parsed = check_parse(KLAXON, cfg, path, s["events"])

    asan = os.path.join(SRC, "build-asan", "src", "klaxon")
    if os.path.realpath(KLAXON) == os.path.realpath(asan):
        log("klaxon is the sanitizer build already")
    elif os.access(asan, os.X_OK) and os.path.getmtime(asan) < os.path.getmtime(KLAXON) - 60:
        log("build-asan/src/klaxon is older than %s: sanitizer pass skipped (rebuild it)" % KLAXON)
    elif os.access(asan, os.X_OK):
        env = {"ASAN_OPTIONS": "abort_on_error=1:halt_on_error=1:detect_leaks=1",
               "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:print_stacktrace=1"}
        s2 = check_replay(asan, cfg, path, d, counts, env=env, tag="[asan] ")
        check(s2 == s, "the sanitizer build counts differently: %s vs %s" % (s2, s))
        check_parse(asan, cfg, path, s["events"], env=env, tag="[asan] ")
    else:
        log("no build-asan/src/klaxon: sanitizer pass skipped")

    check_run(cfg, path, d, parsed)   # last: it appends the final newline


if __name__ == "__main__":
    main(body)
