#!/usr/bin/env python3
"""A crash at each step of the rotator leaves the original or a complete
archive, never neither, and the next scan finishes the job.

The crash is the test hook KLAXON_ROTATE_FAIL_AT=STEP (rotate/rotate_int.h):
`klaxon rotate` ends with _exit(99) at that step, cleaning nothing up, as a
kill -9 there would. For each step the test checks what is on disk right after
the crash, then runs `klaxon rotate` again without the hook and checks the end
state: for compression, NAME.gz complete (zcat gives the original bytes) and
NAME gone, no .tmp; for rotations, every line of the original in exactly one
file (none lost, none doubled). The one exception is inherent to copytruncate
(logrotate's too): a crash after the copy is in place and before the
truncation leaves the lines in both the copy and the live file; none is lost.
"""
import gzip
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, log, main, nginx_line, read_bytes, run, tail, tmpdir, write  # noqa: E402

DAY = 86400


def make(path, n, age_days, tag):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(nginx_line("/%s/%d" % (tag, i)))
    if age_days:
        t = time.time() - age_days * DAY
        os.utime(path, (t, t))
    return read_bytes(path)


def rotate(cfg, step=None):
    env = {"KLAXON_ROTATE_FAIL_AT": step} if step else {"KLAXON_ROTATE_FAIL_AT": ""}
    return run([KLAXON, "rotate", "-c", cfg], timeout=120, env=env)


def all_lines(logs, stem):
    """Every line of stem and its generations, plain or gzipped."""
    out = []
    for n in sorted(os.listdir(logs)):
        if not n.startswith(stem) or n.endswith(".tmp"):
            continue
        p = os.path.join(logs, n)
        data = gzip.open(p).read() if n.endswith(".gz") else read_bytes(p)
        out.extend(data.splitlines())
    return out


def compress_case(d, step):
    logs = os.path.join(d, "c-" + step)
    os.mkdir(logs)
    orig = make(os.path.join(logs, "app.log.1"), 60000, 9, step)  # ~6 MB: a partial write is real
    cfg = os.path.join(d, "c-%s.yml" % step)
    write(cfg, "state_dir: %s\nrotate:\n  - {path: '%s/app.log.*', compress_after: 7d}\n"
          % (os.path.join(d, "state"), logs))
    rc, out, err = rotate(cfg, step)
    check(rc == 99, "step %s: klaxon rotate exited %d, not 99 (the hook did not fire?); stderr:\n%s"
          % (step, rc, tail(err)))
    names = sorted(os.listdir(logs))
    log("compress, crash at %s: %s" % (step, names))
    plain = os.path.join(logs, "app.log.1")
    gz = plain + ".gz"
    if os.path.exists(gz):
        check(gzip.open(gz).read() == orig, "step %s: app.log.1.gz exists but is not complete" % step)
    else:
        check(read_bytes(plain) == orig, "step %s: neither the original nor a complete archive" % step)
    if step == "gzip_renamed":
        check(os.path.exists(plain) and os.path.exists(gz), "gzip_renamed: expected both files")
    else:
        check(os.path.exists(plain + ".gz.tmp"), "step %s: expected the .tmp the crash left" % step)
    rc, out, err = rotate(cfg)
    check(rc == 0, "step %s: the scan after the crash exited %d:\n%s%s" % (step, rc, out.decode(), tail(err)))
    names = sorted(os.listdir(logs))
    check(names == ["app.log.1.gz"], "step %s: after the next scan: %s" % (step, names))
    check(gzip.open(gz).read() == orig, "step %s: the archive is not the original's bytes" % step)


def rotation_case(d, step, method):
    logs = os.path.join(d, "r-" + step)
    os.mkdir(logs)
    make(os.path.join(logs, "app.log"), 3000, 0, "live")
    make(os.path.join(logs, "app.log.1"), 1000, 1, "g1")
    make(os.path.join(logs, "app.log.2"), 1000, 2, "g2")
    want = sorted(all_lines(logs, "app.log"))
    cfg = os.path.join(d, "r-%s.yml" % step)
    write(cfg, "state_dir: %s\nrotate:\n  - {path: '%s/app.log', max_size: 10KB, method: %s, keep: 5}\n"
          % (os.path.join(d, "state"), logs, method))
    rc, out, err = rotate(cfg, step)
    check(rc == 99, "step %s: klaxon rotate exited %d, not 99; stderr:\n%s" % (step, rc, tail(err)))
    log("%s, crash at %s: %s" % (method, step, sorted(os.listdir(logs))))
    got = sorted(all_lines(logs, "app.log"))
    if step == "copy_renamed":
        check(set(got) == set(want), "step %s: lines lost in the crash" % step)
        return
    check(got == want, "step %s: after the crash %d lines are on disk, %d expected (lost or doubled)"
          % (step, len(got), len(want)))
    rc, out, err = rotate(cfg)
    check(rc == 0, "step %s: the scan after the crash exited %d:\n%s%s" % (step, rc, out.decode(), tail(err)))
    names = sorted(os.listdir(logs))
    log("%s, after the next scan: %s" % (method, names))
    check(not any(n.endswith(".tmp") for n in names), "step %s: a .tmp is left: %s" % (step, names))
    got = sorted(all_lines(logs, "app.log"))
    check(got == want, "step %s: after the next scan %d lines, %d expected" % (step, len(got), len(want)))


def body():
    d = tmpdir()
    for step in ("gzip_partial", "gzip_tmp", "gzip_renamed"):
        compress_case(d, step)
    for step in ("rotate_shift", "rotate_renamed"):
        rotation_case(d, step, "rename")
    for step in ("copy_tmp", "copy_renamed"):
        rotation_case(d, step, "copytruncate")


if __name__ == "__main__":
    main(body)
