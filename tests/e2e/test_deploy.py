#!/usr/bin/env python3
"""The shipped deployment, checked where Docker cannot run it.

  1. deploy/docker-compose.yml is valid YAML; every file it mounts or builds
     from exists in the repository; every named volume and secret it uses is
     declared; klaxon's service mounts the log volumes nginx, the app and
     PostgreSQL write (read-only except where the rotator writes), and every
     path deploy/klaxon.yml reads lies inside one of klaxon's mounts; the
     one-shot log-init service runs the installed deploy/log-init as root over
     the folders klaxon mounts, before every service that writes them, and
     the groups it counts on are added (klaxon: postgres's, web: klaxon's).
  2. deploy/Dockerfile: every COPY source exists; the entrypoint and command
     are `klaxon run -c /etc/klaxon/klaxon.yml`; the config it installs there is
     deploy/klaxon.yml; it runs as a non-root user (the uid log-init gives the
     folders to) with a HEALTHCHECK on /healthz and a volume for state_dir;
     its runtime stage installs the package of every library the installed
     binary links (readelf's NEEDED, ldd, dpkg -S).
  3. `meson dist` makes a tarball of the checkout that builds, and
     `meson install --destdir` from it puts in place what the image's runtime stage
     copies: the binary, the man pages, klaxon.yml, the rule pack and
     log-init (identical to deploy/log-init, executable).
  4. deploy/klaxon.yml, with /run/secrets/ and /var/log/ mapped to the
     test's folders, passes `klaxon check` against the installed rule pack, and
     `klaxon run` with it starts, follows an nginx log written in the format of
     deploy/nginx.conf and prints the parsed event's alert pipeline without an
     error, then stops cleanly on SIGTERM.
  5. deploy/klaxon.service has the hardening the issue asks for.
test_deploy_perms.py plays the stack's users with the real servers.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import yaml

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import KLAXON, check, free_port, log, main, read_bytes, start, stop, tmpdir, wait_for, write  # noqa: E402

SRC = os.environ.get("KLAXON_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SRC, "deploy")


def compose_checks():
    with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
        c = yaml.safe_load(f)
    services, volumes, secrets = c["services"], c.get("volumes") or {}, c.get("secrets") or {}
    for want in ("nginx", "web", "db", "redis", "klaxon"):
        check(want in services, "compose: no service %r" % want)
    for name, svc in services.items():
        for m in svc.get("volumes", []):
            src = m.split(":")[0]
            if src.startswith("./") or src.startswith("../"):
                check(os.path.exists(os.path.join(DEPLOY, src)),
                      "compose: %s mounts %s, which is not in deploy/" % (name, src))
            else:
                check(src in volumes, "compose: %s uses volume %r, not declared" % (name, src))
        for s in svc.get("secrets", []):
            check(s in secrets, "compose: %s uses secret %r, not declared" % (name, s))
    kl = services["klaxon"]
    build = kl["build"]
    check(os.path.exists(os.path.join(DEPLOY, build["context"], build["dockerfile"])),
          "compose: klaxon's build file is missing")
    mounts = {}
    for m in kl["volumes"]:
        parts = m.split(":")
        mounts[parts[1]] = (parts[0], len(parts) > 2 and parts[2] == "ro")
    writers = {}
    for name in ("nginx", "web", "db"):
        for m in services[name].get("volumes", []):
            parts = m.split(":")
            if parts[0].endswith("-logs"):
                writers[parts[0]] = parts[1]
    for vol, path in writers.items():
        hits = [p for p, (v, _) in mounts.items() if v == vol]
        check(hits, "compose: klaxon does not mount the log volume %s" % vol)
    for p, (v, ro) in mounts.items():
        if v in ("pg-logs", "db-data", "backups"):
            check(ro, "compose: klaxon's mount of %s should be read-only" % v)
    # deploy/klaxon.yml reads only inside klaxon's mounts (or its image).
    with open(os.path.join(DEPLOY, "klaxon.yml")) as f:
        k = yaml.safe_load(f)
    roots = list(mounts) + ["/run/secrets", "/etc/klaxon"]
    paths = [s["path"] for s in k["sources"]] + [r["path"] for r in k.get("rotate", [])]
    for p in k.get("probes", []):
        for key in ("disk", "file", "postgres_file"):
            if key in p:
                paths.append(p[key])
    for s in k.get("sinks", []):
        for key in ("url_file", "secret_file"):
            if key in s:
                paths.append(s[key])
    for p in paths:
        check(any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots),
              "deploy/klaxon.yml reads %s, outside klaxon's mounts %s" % (p, sorted(roots)))
    for r in k.get("rotate", []):
        d = os.path.dirname(r["path"])
        check(d in mounts and not mounts[d][1], "the rotator writes in %s, mounted read-only" % d)
    # nginx writes the file klaxon follows, and not under the names the
    # official image links to its stdout and stderr (a new volume copies the links)
    with open(os.path.join(DEPLOY, "nginx.conf")) as f:
        conf = f.read()
    logs = re.findall(r"^\s*(?:access_log|error_log)\s+(\S+)", conf, re.M)
    nginx_src = [s["path"] for s in k["sources"] if s["name"] == "nginx"]
    check(logs and all(os.path.basename(p) not in ("access.log", "error.log") for p in logs),
          "deploy/nginx.conf logs to %s: the nginx image links access.log and error.log to "
          "its stdout and stderr" % logs)
    check(nginx_src and nginx_src[0] in logs,
          "klaxon's nginx source %s is not a file deploy/nginx.conf writes (%s)" % (nginx_src, logs))
    log_init_checks(services, mounts)
    log("compose: %d services, klaxon mounts %s" % (len(services), sorted(mounts)))
    return k


def log_init_defaults():
    """The ids and folders deploy/log-init uses when compose sets none."""
    text = read_bytes(os.path.join(DEPLOY, "log-init")).decode()
    return dict(re.findall(r'^([A-Z_]+)=\$\{\1:-"?([^}"]*)"?\}$', text, re.M))


def log_init_checks(services, mounts):
    """The one-shot service that readies the volumes runs deploy/log-init as
    root, over every folder klaxon writes or reads through a group, before any
    service that writes there starts; the groups it counts on are added."""
    li = services.get("log-init")
    check(li, "compose: no log-init service")
    check(str(li.get("user")).split(":")[0] in ("0", "root"), "compose: log-init does not run as root")
    check(li.get("entrypoint") == ["/usr/libexec/klaxon/log-init"],
          "compose: log-init's entrypoint is %r, not the installed deploy/log-init" % li.get("entrypoint"))
    check(li.get("image") == services["klaxon"].get("image"), "compose: log-init runs another image than klaxon")
    defaults = log_init_defaults()
    li_mounts = {m.split(":")[1]: m.split(":")[0] for m in li.get("volumes", [])}
    for key in ("NGINX_LOGS", "APP_LOGS", "PG_LOGS", "KLAXON_STATE"):
        path = defaults.get(key)
        check(path in li_mounts, "compose: log-init does not mount %s (%s)" % (path, key))
        check(mounts.get(path, (None,))[0] == li_mounts[path],
              "compose: log-init's %s is not the volume klaxon mounts there" % path)
    for name in ("nginx", "web", "db", "klaxon"):
        dep = (services[name].get("depends_on") or {}).get("log-init") or {}
        check(dep.get("condition") == "service_completed_successfully",
              "compose: %s does not wait for log-init to complete" % name)
    check(defaults.get("POSTGRES_GID") in services["klaxon"].get("group_add", []),
          "compose: klaxon is not in the group (%s) PostgreSQL's logs are readable by" % defaults.get("POSTGRES_GID"))
    check(defaults.get("KLAXON_GID") in services["web"].get("group_add", []),
          "compose: web is not in klaxon's group (%s), which owns the app's log folder" % defaults.get("KLAXON_GID"))


def dockerfile_checks():
    text = read_bytes(os.path.join(DEPLOY, "Dockerfile")).decode()
    lines = [l for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.startswith("#")]
    froms = [l for l in lines if l.startswith("FROM ")]
    check(len(froms) == 2 and "bookworm-slim" in froms[1], "Dockerfile: not a two-stage build onto bookworm-slim")
    for l in lines:
        if l.startswith("COPY ") and "--from=" not in l:
            for src in shlex.split(l)[1:-1]:
                check(os.path.exists(os.path.join(SRC, src)), "Dockerfile: COPY %s: missing" % src)
    entry = [l for l in lines if l.startswith("ENTRYPOINT")][0]
    cmd = [l for l in lines if l.startswith("CMD")][0]
    check('"/usr/bin/klaxon"' in entry, "Dockerfile: the entrypoint is not /usr/bin/klaxon")
    check('"run", "-c", "/etc/klaxon/klaxon.yml"' in cmd, "Dockerfile: CMD is not run -c /etc/klaxon/klaxon.yml")
    check("deploy/klaxon.yml /install/etc/klaxon/klaxon.yml" in text,
          "Dockerfile: /etc/klaxon/klaxon.yml is not deploy/klaxon.yml")
    uid = re.search(r"useradd .*--uid (\d+) .*klaxon", text.replace("\\\n", " "))
    check(uid and uid.group(1) == log_init_defaults().get("KLAXON_UID"),
          "Dockerfile: klaxon's uid is not the one deploy/log-init gives the folders to")
    user = [l for l in lines if l.startswith("USER ")]
    check(user and user[-1].split()[1] not in ("root", "0"), "Dockerfile: runs as root")
    check(any(l.startswith("HEALTHCHECK") and "/healthz" in l for l in lines), "Dockerfile: no HEALTHCHECK on /healthz")
    check(any(l.startswith("VOLUME") and "/var/lib/klaxon" in l for l in lines), "Dockerfile: no state volume")
    log("Dockerfile: two stages, non-root, healthcheck, entrypoint as the tests run it")


def run_checked(argv, what, **kw):
    rc = subprocess.run(argv, capture_output=True, text=True, **kw)
    check(rc.returncode == 0, "%s failed:\n%s%s" % (what, rc.stdout[-3000:], rc.stderr[-2000:]))
    return rc.stdout


def dist_tree(d):
    """`meson dist` of the checkout, unpacked: the tree an installer builds
    from. Outside a git checkout (a tarball's own tree) that tree itself."""
    if subprocess.run(["git", "-C", SRC, "rev-parse", "--is-inside-work-tree"],
                      capture_output=True).returncode != 0:
        log("not a git checkout: meson dist left out, installing from the source tree")
        return SRC
    build = os.path.join(d, "dist-build")
    run_checked(["meson", "setup", build, SRC, "-Dtests=false"], "meson setup (for dist)")
    # the committed tree (--allow-dirty: a work in progress is not in it)
    run_checked(["meson", "dist", "-C", build, "--no-tests", "--formats", "gztar", "--allow-dirty"], "meson dist")
    tarballs = glob.glob(os.path.join(build, "meson-dist", "*.tar.gz"))
    check(len(tarballs) == 1, "meson dist made %s" % tarballs)
    out = os.path.join(d, "dist")
    os.makedirs(out)
    with tarfile.open(tarballs[0]) as tf:
        names = tf.getnames()
        if hasattr(tarfile, "data_filter"):
            tf.extractall(out, filter="data")
        else:
            tf.extractall(out)   # Python before 3.11.4: our own tarball, trusted
    tops = os.listdir(out)
    check(len(tops) == 1, "the dist tarball holds %s at its top, not one folder" % tops)
    log("meson dist: %s, %d entries" % (os.path.basename(tarballs[0]), len(names)))
    return os.path.join(out, tops[0])


def install_checks(d):
    """Build from `meson dist`'s tarball and `meson install --destdir` it."""
    src = dist_tree(d)
    build = os.path.join(d, "build")
    dest = os.path.join(d, "dest")
    run_checked(["meson", "setup", build, src, "--prefix=/usr", "--sysconfdir=/etc", "-Dtests=false"], "meson setup")
    run_checked(["ninja", "-C", build, "src/klaxon"], "ninja")
    run_checked(["meson", "install", "-C", build, "--no-rebuild"], "meson install", env=dict(os.environ, DESTDIR=dest))
    want = ["usr/bin/klaxon", "usr/share/man/man1/klaxon.1", "usr/share/man/man5/klaxon.yml.5",
            "usr/share/man/man5/klaxon-rules.5", "etc/klaxon/klaxon.yml"]
    for rf in sorted(os.listdir(os.path.join(src, "examples", "rules"))):
        if rf.endswith(".yml"):
            want.append("etc/klaxon/rules/" + rf)
    want.append("usr/libexec/klaxon/log-init")
    for w in want:
        check(os.path.isfile(os.path.join(dest, w)), "meson install: %s missing" % w)
    init = os.path.join(dest, "usr/libexec/klaxon/log-init")
    check(os.access(init, os.X_OK) and read_bytes(init) == read_bytes(os.path.join(src, "deploy", "log-init")),
          "meson install: usr/libexec/klaxon/log-init is not deploy/log-init, executable")
    log("meson install: %d files the image copies are in place" % len(want))
    return dest


SECRETS = (("slack_webhook_url", "http://127.0.0.1:9/slack"), ("pager_url", "http://127.0.0.1:9/hook"),
           ("pager_hmac", "k3y"), ("pg_dsn", "host=127.0.0.1 port=9 dbname=x connect_timeout=1"))


def deploy_config(root, rules_dir, port):
    """deploy/klaxon.yml's text with its absolute paths moved under root (the
    folders made, the secrets written), the rule pack read from rules_dir and
    the HTTP server on port."""
    for sub in ("run/secrets", "var/log/nginx", "var/log/app", "var/log/postgresql",
                "var/lib/postgresql/data", "backups", "var/lib/klaxon"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for name, val in SECRETS:
        write(os.path.join(root, "run/secrets", name), val + "\n")
    text = read_bytes(os.path.join(DEPLOY, "klaxon.yml")).decode()
    for prefix in ("/run/secrets", "/var/log", "/var/lib/postgresql", "/var/lib/klaxon", "/backups"):
        text = text.replace(prefix, root + prefix)
    text = text.replace("rule_files: [rules/*.yml]", "rule_files: [%s/*.yml]" % rules_dir)
    return text.replace("listen: 127.0.0.1:9731", "listen: 127.0.0.1:%d" % port)


def run_config(d, dest, k):
    """deploy/klaxon.yml with its absolute paths moved under d."""
    root = os.path.join(d, "root")
    text = deploy_config(root, os.path.join(dest, "etc/klaxon/rules"), free_port())
    cfg = os.path.join(d, "klaxon.yml")
    write(cfg, text)
    rc = subprocess.run([KLAXON, "check", "-c", cfg], capture_output=True, text=True)
    check(rc.returncode == 0, "klaxon check on deploy/klaxon.yml:\n%s" % rc.stderr)
    log(rc.stderr.strip())
    access = os.path.join(root, "var/log/nginx/debt-access.log")
    write(access, "")
    err = os.path.join(d, "run.err")
    p = start([KLAXON, "run", "-c", cfg], stdout=os.path.join(d, "run.out"), stderr=err)
    wait_for(lambda: b"run: " in read_bytes(err), 30, "klaxon run to start", proc=p, proc_log=err)
    # a line as deploy/nginx.conf's `timed` format writes it
    with open(access, "a") as f:
        f.write('10.0.0.7 - - [14/Nov/2023:22:13:20 +0000] "GET /api/debts HTTP/1.1" 200 512 "-" '
                '"curl/7.88" rt=0.012 urt="0.011"\n')
    wait_for(lambda: b"following" in read_bytes(err), 30, "the nginx log to be followed", proc=p, proc_log=err)
    rc = stop(p, timeout=15)
    check(rc == 0, "klaxon run with deploy/klaxon.yml exited %s:\n%s" % (rc, read_bytes(err).decode()[-3000:]))
    text = read_bytes(err).decode()
    check("k3y" not in text and "127.0.0.1:9/hook" not in text, "a secret appears in klaxon's log")
    check("did not match" not in text, "the nginx line in deploy/nginx.conf's format did not parse:\n" + text)
    log("klaxon run with deploy/klaxon.yml: started, followed, stopped cleanly; no secret in its log")


def runtime_stage_packages():
    """The packages deploy/Dockerfile's last stage installs."""
    text = read_bytes(os.path.join(DEPLOY, "Dockerfile")).decode().replace("\\\n", " ")
    last = text[text.rindex("\nFROM "):]
    m = re.search(r"apt-get install\s+(.*?)(?:&&|$)", last, re.M)
    check(m, "Dockerfile: the runtime stage installs no packages")
    return {w for w in m.group(1).split() if not w.startswith("-")}


def runtime_libs_checks(binary):
    """Every library the installed binary links directly comes from a package
    the image's runtime stage installs (libc6 is always there)."""
    if not shutil.which("dpkg") or not shutil.which("readelf"):
        log("no dpkg or readelf here: the runtime stage's libraries are not checked")
        return
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        run_checked(["readelf", "-d", binary], "readelf -d"))
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", run_checked(["ldd", binary], "ldd"), re.M))
    installed = runtime_stage_packages() | {"libc6"}
    for lib in needed:
        check(lib in paths, "ldd does not resolve %s, which %s needs" % (lib, binary))
        real = os.path.realpath(paths[lib])
        owners = None
        for cand in (real, real[len("/usr"):] if real.startswith("/usr/") else "/usr" + real):
            rc = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if rc.returncode == 0:
                owners = {o.split(":")[0].strip() for o in rc.stdout.split(": ")[0].split(",")}
                break
        check(owners, "dpkg knows no package of %s (%s)" % (lib, real))
        check(owners & installed, "the image's runtime stage lacks %s (for %s): it installs %s"
              % (sorted(owners), lib, sorted(installed)))
    log("Dockerfile: the runtime stage installs the packages of all %d libraries klaxon links" % len(needed))


def unit_checks():
    text = read_bytes(os.path.join(DEPLOY, "klaxon.service")).decode()
    for want in ("DynamicUser=yes", "ProtectSystem=strict", "ReadWritePaths=", "NoNewPrivileges=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=klaxon"):
        check(want in text, "klaxon.service: no %s" % want)
    if subprocess.run(["which", "systemd-analyze"], capture_output=True).returncode == 0:
        rc = subprocess.run(["systemd-analyze", "verify", os.path.join(DEPLOY, "klaxon.service")],
                            capture_output=True, text=True)
        bad = [l for l in rc.stderr.splitlines() if "klaxon.service" in l and "Unknown" in l]
        check(not bad, "systemd-analyze: %s" % bad)
    log("klaxon.service: hardened as asked")


def body():
    d = tmpdir()
    k = compose_checks()
    dockerfile_checks()
    dest = install_checks(d)
    runtime_libs_checks(os.path.join(dest, "usr/bin/klaxon"))
    run_config(d, dest, k)
    unit_checks()


if __name__ == "__main__":
    main(body)
