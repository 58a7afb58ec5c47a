#!/usr/bin/env python3
"""`klaxon rotate` on a tree of real files with real ages (set with os.utime,
as `touch -d` does): the guide's "archive logs older than 7 days, delete after
30".

  - files older than compress_after are gzipped: `gzip -t` passes and `zcat`
    gives back their bytes exactly; the original name and mtime are in the
    gzip header (`gzip -lN`), the mode and mtime on the .gz;
  - files older than delete_after are deleted, younger ones kept, files the
    rule does not name untouched;
  - --dry-run prints the same actions and changes nothing;
  - a symlink planted in the directory, pointing at a file outside it, is
    left alone, and so is its target (content and mtime);
  - a FIFO and a hard-linked file are left alone;
  - a leftover NAME.gz.tmp (an interrupted run) is removed;
  - a world-writable directory is refused unless allow_unsafe_dir.
"""
import os
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (KLAXON, check, log, main, nginx_line, read_bytes, run, tail,  # noqa: E402
                    tmpdir, write)

DAY = 86400


def make(path, n_lines, age_days, seed):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n_lines):
            f.write(nginx_line("/%s/%d" % (seed, i), status=200 + (i % 7) * 50, rt=0.001 * (i % 900)))
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))


def klaxon_rotate(cfg, *extra, expect=0):
    rc, out, err = run([KLAXON, "rotate", "-c", cfg] + list(extra), timeout=120)
    text = out.decode("utf-8", "replace")
    check(rc == expect, "klaxon rotate %s exited %d (expected %d); stdout:\n%s\nstderr:\n%s"
          % (" ".join(extra), rc, expect, text, tail(err)))
    log("klaxon rotate %s:\n%s" % (" ".join(extra), text.rstrip()))
    return text


def body():
    d = tmpdir()
    logs = os.path.join(d, "logs")
    os.mkdir(logs, 0o755)
    outside = os.path.join(d, "outside.secret")
    write(outside, "not a log\n")
    old = time.time() - 60 * DAY
    os.utime(outside, (old, old))

    make(os.path.join(logs, "access.log"), 500, 0, "live")          # live: not named
    make(os.path.join(logs, "access.log.1"), 2000, 8, "a1")        # compress
    make(os.path.join(logs, "access.log.2"), 20000, 12, "a2")      # compress
    make(os.path.join(logs, "access.log.3"), 300, 3, "a3")         # too young
    make(os.path.join(logs, "access.log.4.gz"), 10, 20, "a4")      # compressed already
    make(os.path.join(logs, "access.log.5"), 300, 31, "a5")        # delete
    make(os.path.join(logs, "access.log.6.gz"), 10, 45, "a6")      # delete
    os.chmod(os.path.join(logs, "access.log.2"), 0o640)
    os.symlink(outside, os.path.join(logs, "access.log.7"))        # planted symlink
    os.utime(os.path.join(logs, "access.log.7"), (old, old), follow_symlinks=False)
    os.mkfifo(os.path.join(logs, "access.log.8"))
    os.utime(os.path.join(logs, "access.log.8"), (old, old))
    make(os.path.join(logs, "access.log.9"), 10, 9, "a9")
    os.link(os.path.join(logs, "access.log.9"), os.path.join(d, "hardlink-elsewhere"))
    write(os.path.join(logs, "access.log.10.gz.tmp"), "half an archive")  # a crash's leftover

    originals = {n: read_bytes(os.path.join(logs, n)) for n in ("access.log.1", "access.log.2")}
    mtimes = {n: os.stat(os.path.join(logs, n)).st_mtime for n in originals}

    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rotate:
  - {path: '%s/access.log.*', compress_after: 7d, delete_after: 30d}
""" % (os.path.join(d, "state"), logs))

    before = sorted(os.listdir(logs))
    dry = klaxon_rotate(cfg, "--dry-run")
    check(sorted(os.listdir(logs)) == before, "--dry-run changed the directory: %s" % os.listdir(logs))
    for want in ("compress %s/access.log.1 -> %s/access.log.1.gz" % (logs, logs),
                 "delete %s/access.log.5 (age 31d > delete_after 30d)" % logs,
                 "skip %s/access.log.7: a symbolic link" % logs):
        check(want in dry, "--dry-run does not say %r:\n%s" % (want, dry))

    out = klaxon_rotate(cfg)
    names = sorted(os.listdir(logs))
    log("after: %s" % names)
    want = sorted(["access.log", "access.log.1.gz", "access.log.2.gz", "access.log.3",
                   "access.log.4.gz", "access.log.7", "access.log.8", "access.log.9"])
    check(names == want, "after the scan the directory holds %s, expected %s" % (names, want))
    check("remove %s/access.log.10.gz.tmp (left by an interrupted run)" % logs in out,
          "the leftover .tmp removal is not reported:\n" + out)
    check("access.log.9: it has 2 hard links" in out, "the hard link is not reported:\n" + out)
    check("access.log.8: not a regular file" in out, "the FIFO is not reported:\n" + out)

    for n, data in originals.items():
        gz = os.path.join(logs, n + ".gz")
        r = subprocess.run(["gzip", "-t", gz], capture_output=True)
        check(r.returncode == 0, "gzip -t %s: %s" % (gz, r.stderr))
        r = subprocess.run(["zcat", gz], capture_output=True)
        check(r.returncode == 0 and r.stdout == data,
              "zcat %s does not give back the original bytes (%d vs %d bytes)"
              % (gz, len(r.stdout), len(data)))
        r = subprocess.run(["gzip", "-lNv", gz], capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout.rstrip().endswith(os.path.join(logs, n)),
              "gzip -lN does not show the original name %s:\n%s" % (n, r.stdout))
        st = os.stat(gz)
        check(int(st.st_mtime) == int(mtimes[n]), "%s has mtime %s, the original %s"
              % (gz, st.st_mtime, mtimes[n]))
    check(stat.S_IMODE(os.stat(os.path.join(logs, "access.log.2.gz")).st_mode) == 0o640,
          "the mode 0640 was not kept")

    # the symlink and its target, untouched
    check(os.path.islink(os.path.join(logs, "access.log.7")), "the symlink is gone")
    check(read_bytes(outside) == b"not a log\n", "the symlink's target was changed")
    check(int(os.stat(outside).st_mtime) == int(old), "the symlink's target mtime changed")
    check(read_bytes(os.path.join(d, "hardlink-elsewhere")) != b"", "the hard link's data changed")

    # a second scan has nothing left to do
    again = klaxon_rotate(cfg)
    check("compress " not in again and "delete " not in again, "a second scan acted:\n" + again)

    # a world-writable directory is refused, unless allowed
    make(os.path.join(logs, "access.log.11"), 10, 9, "a11")
    os.chmod(logs, 0o777)
    out = klaxon_rotate(cfg)
    check("the directory is world-writable" in out and os.path.exists(os.path.join(logs, "access.log.11")),
          "a world-writable directory was not refused:\n" + out)
    write(cfg, """\
state_dir: %s
listen: off
rotate:
  - {path: '%s/access.log.*', compress_after: 7d, allow_unsafe_dir: true}
""" % (os.path.join(d, "state"), logs))
    klaxon_rotate(cfg)
    check(os.path.exists(os.path.join(logs, "access.log.11.gz")), "allow_unsafe_dir did not allow it")
    os.chmod(logs, 0o755)


if __name__ == "__main__":
    main(body)
