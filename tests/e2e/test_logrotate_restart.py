#!/usr/bin/env python3
"""`klaxon run` restarted under real logrotate: SIGKILLs under load, and files
rotated twice while it was stopped. (The load itself, its writer, logrotate
modes and figures: test_logrotate_load.py.)

A. SIGKILL under load. In each logrotate mode (create, copytruncate,
   dateext+compress+delaycompress), the load of test_logrotate_load.py runs
   (a writer process at tens of thousands of lines/s, logrotate -f every few
   hundredths of a second); klaxon is killed with SIGKILL at random moments
   (seeded: LOAD_SEED, printed), KILLS times in all, each followed by a
   restart after a short random pause. Once the writer and logrotate are done
   and klaxon caught up, a clean SIGTERM. Then:
     - no number that was on disk at the end (the rotated files, .gz
       decompressed, and the live one) is missing from klaxon's events;
     - a number seen more than once was read again after a kill because the
       checkpoint (written every CHECKPOINT_INTERVAL) did not cover it yet:
       each extra copy needs a kill of its own in whose window the copy
       before it reached the sink (the test reads the sink every 0.05 s and
       once more right after each kill); a kill's window runs from the last
       checkpoint written before it (the checkpoint file's mtime, taken just
       before the kill; the start of the load if there was none yet) to the
       kill. Read time, not write time: a restart reads a backlog of lines
       written long before. Duplicates are counted per kill and reported.
B. Rotated twice while stopped. For each layout (create without compression;
   create with compress + delaycompress, so the file the checkpoint names is
   app.log.2.gz when klaxon comes back; copytruncate) and each way of stopping
   (SIGTERM; SIGKILL once the checkpoint covers everything read): 1000 lines
   are read, klaxon stops, 500 more lines go to app.log, logrotate rotates,
   500 lines go to the new app.log, logrotate rotates again, 500 more lines;
   klaxon restarts: all 2500 numbers exactly once.
Every assertion is evaluated and printed, then the test fails if any did.
"""
import os
import shutil
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, log, main, nginx_line, read_bytes, run, tmpdir, wait_for  # noqa: E402
from test_logrotate_load import (BASE, CHECKPOINT_INTERVAL, MODES,  # noqa: E402
                                 Klaxon, Load, Verdicts, find_logrotate, logrotate_conf,
                                 print_figures, ranges, rotated_files, scan_disk, where_missing)

KILLS = 20                  # in all, spread over the modes
KILL_SECONDS = 13.0         # the writer's time per mode, enough for its kills
KILL_GAP = (0.6, 2.0)       # seconds of klaxon running between two kills: most runs
                            # write a checkpoint (after 1 s), some are killed before
RESTART_PAUSE = (0.0, 0.3)  # seconds klaxon stays dead


def kill_plan(rng, kills):
    def plan(ld):
        for i in range(kills):
            ld.pause(rng.uniform(*KILL_GAP))
            if not ld.writer.running():
                log("%s: the writer is done; %d of %d kills" % (ld.tag, i, kills))
                break
            try:
                ckpt = os.stat(ld.kl.ckpt).st_mtime   # before the kill: a lower bound
            except FileNotFoundError:
                ckpt = None
            at = time.time()
            ld.kl.kill()
            ld.kl.events.update()     # what the killed run wrote, seen before any restart
            observed = time.time()
            if os.environ.get("KLAXON_KEEP_TMP") and os.path.exists(ld.kl.ckpt):
                shutil.copyfile(ld.kl.ckpt, "%s.run%d" % (ld.kl.ckpt, ld.kl.runs))
            k = {"at": at, "ckpt": ckpt, "run": ld.kl.runs, "since_start": at - ld.kl.launched,
                 "observed": observed}
            time.sleep(rng.uniform(*RESTART_PAUSE))
            ld.kl.launch()
            k["restart"] = ld.kl.launched
            ld.kills.append(k)
    return plan


RESTORE_KINDS = [("in place", r"resuming \""), ("found rotated", r"while we were stopped; resuming"),
                 ("lost", r"whatever it held past that offset is lost"),
                 ("new, from 0", r"is not the file the checkpoint names")]


def restart_log(ld, run_no):
    """What a restarted run said about the files its checkpoint named."""
    text = read_bytes(ld.kl.err(run_no)).decode("utf-8", "replace")
    counts = [(name, len(re.findall(pat, text))) for name, pat in RESTORE_KINDS]
    return ", ".join("%d %s" % (c, name) for name, c in counts if c) or "-"


def explain_dups(ld, bad, windows, n=6):
    """For a few numbers read too often: how often, where they were on disk at
    the end, when the sink first had them relative to the kills' windows."""
    out = []
    for s in sorted(bad)[:n]:
        seen = ld.kl.events.seen_at[s]
        rel = ["kill %d: window %+.2f..%+.2f s" % (i + 1, lo - seen[0], hi - seen[0])
               for i, (lo, hi, _) in enumerate(windows) if hi - 5 < seen[0] < hi + 5]
        name = ld.where.get(s, "(not on disk)")
        place = ""
        if s in ld.where.pos:
            place = " line %d, byte %d" % ld.where.pos[s]
        out.append("  /seq/%d seen %d times; at the end in %s%s; relative to its first read: %s"
                   % (s, ld.kl.events.counts[s], name, place, "; ".join(rel) or "no kill within 5 s"))
    # Where a run of them ends in its file: did klaxon say it found the file
    # truncated when it was at that byte (and go back to 0 over lines it had read)?
    ends = {}
    for s in sorted(bad):
        if s in ld.where.pos and ld.where.get(s + 1) == ld.where.get(s) and s + 1 in ld.where.pos:
            ends[ld.where.get(s)] = ld.where.pos[s + 1][1]
    for name, b in sorted(ends.items()):
        for i in range(1, ld.kl.runs + 1):
            for ln in read_bytes(ld.kl.err(i)).decode("utf-8", "replace").splitlines():
                if "we were at %d)" % b in ln:
                    out.append("  %s: the run of duplicates ends at byte %d; run %d logged: %s"
                               % (name, b, i, ln.replace(ld.d + "/", "")))
    return "\n".join(out)


def kill_windows(ld):
    """Per kill, when the lines it may make klaxon read again reached the
    sink: from the last checkpoint written before it (the start of the load
    if none was) to the kill (to the sink's reading right after it), and the
    kill itself."""
    return [(k["ckpt"] if k["ckpt"] is not None else ld.t_start, k["observed"], k["at"])
            for k in ld.kills]


def excused(seen_at, windows):
    """The kills that explain a number's extra copies (one kill each: the copy
    before it reached the sink inside that kill's window, the copy itself
    after the kill), or None if some copy has no such kill."""
    used = []
    for prev, cur in zip(seen_at, seen_at[1:]):
        k = next((i for i, (lo, hi, at) in enumerate(windows)
                  if i not in used and lo <= prev <= hi and cur >= at), None)
        if k is None:
            return None
        used.append(k)
    return used


def under_kills(logrotate, mode, kills, rng, first, v):
    ld = Load(logrotate, mode, rng, first, seconds=KILL_SECONDS, tag=mode + "+kill")
    ld.go(kill_plan(random.Random(rng.random()), kills))
    required = set(ld.where)
    row = ld.finish(required)
    t = ld.tag
    ld.harness_checks(v)
    v.check(ld.kills, "%s: klaxon was killed during the load" % t, "%d kills" % len(ld.kills))

    # duplicates: each extra copy needs a kill after whose last checkpoint the
    # copy before it was written to the sink
    windows = kill_windows(ld)
    per_kill = [0] * len(ld.kills)
    bad = []
    for n, c in sorted(ld.dups.items()):
        if not (ld.writer.first <= n < ld.writer.first + ld.writer.n):
            continue            # reported as never written
        used = excused(ld.kl.events.seen_at[n], windows)
        if used is None:
            bad.append(n)
        else:
            for i in used:
                per_kill[i] += 1
    for i, k in enumerate(ld.kills):
        down = sum(1 for r in ld.rot.times if k["at"] <= r <= k["restart"])
        lo, hi, _ = windows[i]
        in_window = sum(1 for ts in ld.kl.events.seen_at.values() if lo <= ts[0] <= hi)
        log("%s: kill %d (run %d, %.2f s after its start, %s): %d lines read again of %d "
            "written in its window; %d rotations while it was down (at least); the restart "
            "found the files its checkpoint named: %s" % (
                t, i + 1, k["run"], k["since_start"],
                "checkpoint %.2f s old" % (k["at"] - k["ckpt"]) if k["ckpt"] else "no checkpoint yet",
                per_kill[i], in_window, down, restart_log(ld, k["run"] + 1)))
    # (in_window: lines the sink received between that checkpoint and the kill)
    # a restart that could not find a file its checkpoint names although it is
    # still on disk under a rotated name (the sibling search raced logrotate)
    on_disk = {}
    for name in rotated_files(ld.d):
        if not name.endswith(".gz"):
            st = os.stat(os.path.join(ld.d, name))
            on_disk[st.st_ino] = (name, st.st_size)
    unread, at_end = [], []
    for i in range(2, ld.kl.runs + 1):
        text = read_bytes(ld.kl.err(i)).decode("utf-8", "replace")
        for m in re.finditer(r"\(inode (\d+), checkpoint offset (\d+)\) was ([a-z ]+) while we "
                             r"were stopped and is not among", text):
            ino, off = int(m.group(1)), int(m.group(2))
            if ino in on_disk and ld.mode != "copytruncate":
                name, size = on_disk[ino]
                (unread if size > off else at_end).append(
                    "run %d: inode %d (offset %d) said lost, on disk as %s (%d bytes)"
                    % (i, ino, off, name, size))
    if at_end:
        log("%s: NOTE: %d times a restart declared lost a file still on disk, at its end "
            "(nothing unread, so nothing lost): %s" % (t, len(at_end), "; ".join(at_end[:4])))
    v.check(not unread, "%s: no restart declared lost a file still on disk with unread lines" % t,
            "; ".join(unread[:6]))
    v.check(not ld.never_written, "%s: klaxon saw no number that was never written" % t,
            ranges(ld.never_written))
    v.check(not ld.missing, "%s: no number on disk missing after %d SIGKILLs" % (t, len(ld.kills)),
            "%d missing: %s\n%s" % (len(ld.missing), where_missing(ld.missing, ld.where),
                                   ld.inode_history(ld.missing))
            if ld.missing else "%d numbers" % len(required))
    verdict = "%s: duplicates only of lines read within a kill's last checkpoint interval" % t
    detail = ("%d numbers read more often than kills allow: %s\n%s" % (
                len(bad), ranges(bad), explain_dups(ld, bad, windows))
              if bad else "%d lines read twice after %d kills (%s per kill), %d events torn" % (
                row["dup"], len(ld.kills), ", ".join(map(str, per_kill)), ld.kl.events.torn))
    v.check(not bad, verdict, detail)
    return row


# ---------------------------------------------------------------------------
# B. rotated twice while stopped

LAYOUTS = {
    "create": "create 0644\n    nocompress",
    "create+compress+delaycompress": "create 0644\n    compress\n    delaycompress",
    "copytruncate": "copytruncate\n    nocompress",
}


def append_seqs(path, lo, hi):
    """Lines lo..hi-1, appended with one write, the file opened by its path
    (a writer that reopened after every rotation)."""
    data = "".join(nginx_line("/seq/%d" % i, rt=0.01) for i in range(lo, hi)).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def checkpoint_covers(kl, path):
    """The checkpoint holds the live file at its full size."""
    try:
        st = os.stat(path)
        text = read_bytes(kl.ckpt).decode("utf-8", "replace")
    except FileNotFoundError:
        return False
    return any(re.search(r"\bino=%d off=%d\b" % (st.st_ino, st.st_size), ln)
               for ln in text.splitlines())


def stopped_twice(logrotate, layout, how, v):
    d = tmpdir("klaxon-lr-stopped")
    app = os.path.join(d, BASE)
    kl = Klaxon(d, app)
    conf = logrotate_conf(d, app, LAYOUTS[layout])
    state = os.path.join(d, "logrotate.state")
    t = "rotated twice while stopped (%s, %s)" % (layout, how)

    def rotate():
        rc, out, err = run([logrotate, "-f", "-s", state, conf], timeout=60)
        check(rc == 0, "%s: logrotate failed: %s" % (t, (out + err).decode("utf-8", "replace")))

    append_seqs(app, 0, 1000)
    kl.launch()
    missing = kl.catch_up(range(1000), deadline=60, idle=10, settle=0)
    check(not missing, "%s: klaxon did not read the first 1000 lines: %s" % (t, ranges(missing)))
    if how == "SIGKILL":
        wait_for(lambda: checkpoint_covers(kl, app), 30, "the checkpoint to cover all of app.log",
                 proc=kl.p, proc_log=kl.err())
        kl.kill()
    else:
        kl.term()
    append_seqs(app, 1000, 1500)     # the rest of the file the checkpoint names, unread
    rotate()
    append_seqs(app, 1500, 2000)     # the next generation, never seen by klaxon
    rotate()
    append_seqs(app, 2000, 2500)     # the file now under the name
    files = " ".join(sorted(rotated_files(d)) + [BASE])
    kl.launch()
    kl.catch_up(range(2500), deadline=60, idle=2.0)
    kl.term()
    kl.events.update()
    where = scan_disk(d)[0]
    got = kl.events.counts
    missing = [s for s in range(2500) if got[s] == 0]
    dups = sorted(s for s, c in got.items() if c > 1)
    extra = sorted(s for s in got if not 0 <= s < 2500)
    said = " | ".join(ln.replace(d + "/", "") for ln in
                      read_bytes(kl.err(2)).decode("utf-8", "replace").splitlines()
                      if re.search(r"resuming|while we were stopped|lost|not the file", ln))
    ok = not missing and not dups and not extra
    v.check(ok, "%s: every number exactly once" % t,
            "files at restart: %s; missing %d%s; read twice %d%s; never written %d; "
            "the restart said: %s" % (
                files, len(missing), (" (" + where_missing(missing, where) + ")") if missing else "",
                len(dups), (" (" + ranges(dups) + ")") if dups else "", len(extra), said))
    return {"mode": "%s, %s" % (layout, how), "written": 2500, "on disk": len(where),
            "seen": len(got), "lost": len(missing), "dup": sum(c - 1 for c in got.values() if c > 1),
            "lr lost": 2500 - len(where), "lr lost seen": 0, "rotations": 2,
            "kills": 1 if how == "SIGKILL" else 0, "lines/s": "-"}


def body():
    logrotate = find_logrotate()
    seed = int(os.environ.get("LOAD_SEED") or random.randrange(1 << 30))
    log("seed %d (LOAD_SEED=%d reproduces the rotation gaps and the kill moments)" % (seed, seed))
    rng = random.Random(seed)
    v = Verdicts()
    rows = []
    modes = [m for m in MODES if m in os.environ.get("KLAXON_KILL_MODES", " ".join(MODES)).split()]
    # KLAXON_KILL_LOAD=0 leaves part A out (a quicker run of part B)
    if os.environ.get("KLAXON_KILL_LOAD") != "0":
        for i, mode in enumerate(modes):
            kills = KILLS // len(modes) + (1 if i < KILLS % len(modes) else 0)
            rows.append(under_kills(logrotate, mode, kills, rng, (i + 1) * 10_000_000, v))
    else:
        log("part A (SIGKILLs under load) left out: KLAXON_KILL_LOAD=0")
    for layout in LAYOUTS:
        for how in ("SIGTERM", "SIGKILL"):
            rows.append(stopped_twice(logrotate, layout, how, v))
    print_figures(rows, "restarts under rotation (seed %d; checkpoint interval %.0f s)"
                  % (seed, CHECKPOINT_INTERVAL))
    v.finish()


if __name__ == "__main__":
    main(body)
