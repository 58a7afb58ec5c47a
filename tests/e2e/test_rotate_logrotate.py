#!/usr/bin/env python3
"""klaxon's rotator and Debian's real logrotate, on two copies of the same
tree, where both apply: the same files rotated, compressed and deleted, the
same survivors with the same contents.

The tree: logs over the size limit with older compressed generations (one
beyond the count kept), a log under the limit, an empty log. logrotate runs
with `size 1k, rotate 3, compress, nocreate, notifempty, missingok` and its
own state file (-s) in the test's folder; klaxon with the same policy
(`max_size: 1KiB, keep: 3, compress_after: 0s`). logrotate compresses the new
generation in the same run; klaxon's next scan does (the first one renames
it: a writer may still be finishing it), so klaxon rotate runs twice.
"""
import gzip
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, log, main, nginx_line, read_bytes, run, skip, tail, tmpdir, write  # noqa: E402


def build(root):
    os.mkdir(root, 0o755)
    def put(name, n, days, tag):
        p = os.path.join(root, name)
        data = "".join(nginx_line("/%s/%d" % (tag, i)) for i in range(n)).encode()
        if name.endswith(".gz"):
            with gzip.open(p, "wb") as f:
                f.write(data)
        else:
            with open(p, "wb") as f:
                f.write(data)
        t = time.time() - days * 86400
        os.utime(p, (t, t))
    put("access.log", 200, 0, "access")
    put("access.log.1.gz", 50, 1, "access1")
    put("access.log.2.gz", 50, 2, "access2")
    put("access.log.3.gz", 50, 3, "access3")   # beyond rotate 3 after the shift
    put("error.log", 100, 0, "error")
    put("small.log", 3, 0, "small")           # under 1k
    put("empty.log", 0, 0, "empty")


def contents(root):
    out = {}
    for n in sorted(os.listdir(root)):
        p = os.path.join(root, n)
        out[n] = gzip.open(p).read() if n.endswith(".gz") else read_bytes(p)
    return out


def body():
    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if os.access("/usr/sbin/logrotate", os.X_OK) else None)
    if not logrotate:
        skip("logrotate is not installed")
    d = tmpdir()
    a, b = os.path.join(d, "by-logrotate"), os.path.join(d, "by-klaxon")
    build(a)
    build(b)

    conf = os.path.join(d, "logrotate.conf")
    write(conf, """\
%s/*.log {
    size 1k
    rotate 3
    compress
    nocreate
    notifempty
    missingok
}
""" % a)
    os.chmod(conf, 0o644)
    r = subprocess.run([logrotate, "-s", os.path.join(d, "logrotate.state"), conf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "logrotate failed: %s%s" % (r.stdout, r.stderr))

    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, """\
state_dir: %s
listen: off
rotate:
  - {path: '%s/*.log', max_size: 1KiB, keep: 3, compress_after: 0s}
""" % (os.path.join(d, "state"), b))
    for i in range(2):
        rc, out, err = run([KLAXON, "rotate", "-c", cfg])
        check(rc == 0, "klaxon rotate exited %d:\n%s%s" % (rc, out.decode(), tail(err)))
        log("klaxon rotate, pass %d:\n%s" % (i + 1, out.decode().rstrip()))

    ca, cb = contents(a), contents(b)
    log("logrotate left: %s" % sorted(ca))
    log("klaxon left:    %s" % sorted(cb))
    check(sorted(ca) == sorted(cb), "different survivors: logrotate %s, klaxon %s" % (sorted(ca), sorted(cb)))
    for n in ca:
        check(ca[n] == cb[n], "%s differs: %d bytes after logrotate, %d after klaxon" % (n, len(ca[n]), len(cb[n])))
    for n in ca:
        if n.endswith(".gz"):
            for root in (a, b):
                r = subprocess.run(["gzip", "-t", os.path.join(root, n)], capture_output=True)
                check(r.returncode == 0, "gzip -t %s/%s failed" % (root, n))
    log("same %d files, same contents" % len(ca))


if __name__ == "__main__":
    main(body)
