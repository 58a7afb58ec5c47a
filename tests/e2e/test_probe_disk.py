#!/usr/bin/env python3
"""The disk probe on a small filesystem the test makes: a tmpfs of 4 MiB
mounted on a temporary folder (`mount -t tmpfs -o size=4m`), probed every
300ms, with examples/rules/probes.yml's disk rules (every `for:` 0s).
Asserts: the probe's events (free_pct near 100, free_bytes, total_bytes of
4 MiB, inodes_free_pct); filled past 90%: DiskSpaceCritical and DiskSpaceLow
fire; emptied: both resolve. Where the machine forbids mounting (not root, no
CAP_SYS_ADMIN in a container), the test is skipped (77) with the reason,
never passed. Deadlines only guard against a hang.
"""
import atexit
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, log, main, read_bytes, run, skip, start, stop, tail, tmpdir, wait_for  # noqa: E402
import probelib  # noqa: E402

SIZE = 4 * 1024 * 1024


def body():
    d = tmpdir("klaxon-probe-disk")
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    if os.geteuid() != 0:
        skip("mounting a tmpfs needs root (running as uid %d)" % os.geteuid())
    rc, out, err = run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mnt])
    if rc != 0:
        skip("this machine forbids mounting a tmpfs: %s" % (err or out).decode("utf-8", "replace").strip())
    # before e2elib's cleanup removes the folder (atexit runs LIFO)
    atexit.register(lambda: subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    probes = "  - {name: disk, disk: %s, interval: 300ms}" % mnt
    cfg = probelib.config(d, probes, probelib.pack_rules({"disk"}))
    out_path, err_path = os.path.join(d, "klaxon.out"), os.path.join(d, "klaxon.err")
    kl = start([KLAXON, "run", "-c", cfg], stdout=out_path, stderr=err_path)
    w = probelib.Watch(d, out_path)

    def wait_state(alert, status):
        wait_for(lambda: w.state(alert) == status, 30, "%s %s" % (alert, status), proc=kl, proc_log=err_path)

    ev = wait_for(lambda: w.last_event("disk"), 30, "a disk event", proc=kl, proc_log=err_path)
    log("empty: %s" % ev)
    check(ev["up"] == 1 and ev["free_pct"] > 95, "an empty tmpfs: %s" % ev)
    check(ev["total_bytes"] == SIZE, "total_bytes %s, expected %d" % (ev["total_bytes"], SIZE))
    check("inodes_free_pct" in ev and "free_bytes" in ev, "disk event: %s" % ev)
    check(w.state("DiskSpaceCritical") is None and w.state("DiskSpaceLow") is None,
          "a disk alert fired on an empty filesystem")

    fill = os.path.join(mnt, "fill")
    with open(fill, "wb") as f:
        f.write(b"\0" * int(SIZE * 0.93))
    wait_state("DiskSpaceCritical", "firing")
    wait_state("DiskSpaceLow", "firing")
    ev = w.last_event("disk", lambda f: f["free_pct"] < 10)
    log("filled: %s" % ev)
    check(ev["free_bytes"] < SIZE * 0.1, "free_bytes: %s" % ev)
    os.unlink(fill)
    wait_state("DiskSpaceCritical", "resolved")
    wait_state("DiskSpaceLow", "resolved")
    rc = stop(kl)
    check(rc == 0, "klaxon run exited %s: %s" % (rc, tail(read_bytes(err_path))))


if __name__ == "__main__":
    main(body)
