#!/usr/bin/env python3
"""Rerun the adversarial review's attacks on mlrun and print one table of what they found.

    scripts/review-attacks.py [--quick] [--only NAME,...]

Uses target/release/mlrun (MLRUN=... to choose another binary). Each attack runs in a fresh
temporary git repository and cleans up after itself. Needs root for the disk-full attack (a small
tmpfs); it is reported as skipped otherwise.

Attacks (the figures the review asked for are in brackets):
  kills     SIGKILL `run`, `gc` and `replay` at random moments; then every run and step has a
            final status and integrity_check is ok                         [0 left running]
  shared    6 pipelines on one store for 2 minutes (--quick: 20 s), `gc --keep-last 1` every
            second; every succeeded step keeps its metrics                  [0 lost metrics]
  diskfull  the store on a full filesystem: the run is not `succeeded`, mlrun does not exit 0
                                                   [0 runs succeeded with an incomplete record]
  biglog    a step printing 1 GiB (--quick: 256 MiB): peak RSS of mlrun, the log recorded whole
                                                                             [RSS <= 64 MiB]
  secrets   >= 27 planted secrets of every kind: looked for in every byte under .mlrun/, the live
            output and the output of show/diff/export/status/lineage       [0 found]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLRUN = os.environ.get("MLRUN", os.path.join(ROOT, "target", "release", "mlrun"))


def env_for(home):
    e = dict(os.environ)
    e.update(
        HOME=home,
        NO_COLOR="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
        GIT_CONFIG_GLOBAL="/dev/null",
    )
    e.pop("CI", None)
    return e


class Project:
    """A temporary git repository with a pipeline."""

    def __init__(self, pipeline, files=None):
        self.tmp = tempfile.mkdtemp(prefix="mlrun-attack-")
        self.root = os.path.join(self.tmp, "p")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.root)
        os.makedirs(self.home)
        self.env = env_for(self.home)
        self.git("init", "-q", "-b", "main")
        self.write(".gitignore", "/.mlrun/\n")
        self.write("pipeline.toml", pipeline)
        for k, v in (files or {}).items():
            self.write(k, v)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "init")

    def write(self, rel, text):
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)

    def git(self, *args):
        subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True)

    def mlrun(self, *args, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run(
            [MLRUN, *args], cwd=self.root, env=e, capture_output=True, text=True, **kw
        )

    def spawn(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.Popen(
            [MLRUN, *args],
            cwd=self.root,
            env=e,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def db(self, store=None):
        return sqlite3.connect(os.path.join(store or os.path.join(self.root, ".mlrun"), "lineage.db"))

    def close(self):
        subprocess.run(["pkill", "-9", "-f", self.tmp], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
def attack_kills(quick):
    n = 15 if quick else 40
    p = Project(
        """
[params]
i = 0
[steps.big]
cmd = "head -c 50000000 /dev/urandom > big.bin"
outputs = ["big.bin"]
params = ["i"]
[steps.many]
cmd = "mkdir -p many && for f in $(seq 1 200); do echo $f {params.i} > many/$f; done"
inputs = ["big.bin"]
outputs = ["many/"]
params = ["i"]
[steps.m]
cmd = "echo loss=0.{params.i} > \\"$MLRUN_METRICS\\"; cat many/1 > m.txt"
inputs = ["many/"]
outputs = ["m.txt"]
params = ["i"]
"""
    )
    try:
        assert p.mlrun("run", "-p", "i=0").returncode == 0
        kills = {"run": 0, "gc": 0, "replay": 0}
        for i in range(1, n + 1):
            for what, args in (
                ("run", ["run", "-p", f"i={i}"]),
                ("gc", ["gc", "--keep-last", "1"]),
                ("replay", ["replay", "latest"]),
            ):
                proc = p.spawn(*args)
                time.sleep(random.random() * 0.8)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills[what] += 1
                proc.wait()
        p.mlrun("runs", "-n", "0", "--json")  # the next command closes abandoned runs
        db = p.db()
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        running = db.execute(
            "SELECT (SELECT count(*) FROM runs WHERE status = 'running')"
            " + (SELECT count(*) FROM step_execs WHERE status = 'running')"
        ).fetchone()[0]
        fsck = p.mlrun("fsck")
        return {
            "what": f"SIGKILL run/gc/replay at random ({kills['run']}/{kills['gc']}/{kills['replay']} killed mid-way)",
            "found": f"{running} runs+steps left running; integrity_check {integrity}; fsck exit {fsck.returncode}",
            "ok": running == 0 and integrity == "ok" and fsck.returncode == 0,
            "detail": fsck.stdout[-2000:] + fsck.stderr[-2000:] if fsck.returncode else "",
        }
    finally:
        p.close()


# --------------------------------------------------------------------------------------------
def attack_shared(quick):
    seconds = 20 if quick else 120
    tmp = tempfile.mkdtemp(prefix="mlrun-shared-")
    store = os.path.join(tmp, "store")
    projects = []
    stop = threading.Event()
    results = []
    lock = threading.Lock()
    try:
        for k in range(6):
            projects.append(
                Project(
                    f"""
[pipeline]
name = "p{k}"
[params]
i = 0
[steps.a]
cmd = "head -c 200000 /dev/urandom > a.bin; echo {{params.i}} >> a.bin"
outputs = ["a.bin"]
params = ["i"]
[steps.b]
cmd = "sha256sum a.bin > b.txt; echo 'score={k}.{{params.i}}' >> \\"$MLRUN_METRICS\\"; printf '{{\\"acc\\": 0.5}}' > m.json"
inputs = ["a.bin"]
outputs = ["b.txt"]
metrics = ["m.json"]
"""
                )
            )

        def runner(pr):
            i = 0
            while not stop.is_set():
                i += 1
                r = pr.mlrun("--store", store, "run", "-p", f"i={i}")
                with lock:
                    results.append((r.returncode, (r.stdout + r.stderr)[-800:]))

        def gc():
            while not stop.is_set():
                projects[0].mlrun("--store", store, "gc", "--keep-last", "1")
                time.sleep(1)

        threads = [threading.Thread(target=runner, args=(pr,)) for pr in projects]
        threads.append(threading.Thread(target=gc))
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        db = sqlite3.connect(os.path.join(store, "lineage.db"))
        lost = db.execute(
            "SELECT count(*) FROM step_execs s WHERE s.step = 'b' AND s.status = 'succeeded'"
            " AND (SELECT count(*) FROM metrics m WHERE m.step_exec = s.id) < 2"
        ).fetchone()[0]
        succeeded = db.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()[0]
        failed = [r for r in results if r[0] != 0]
        fsck = projects[0].mlrun("--store", store, "fsck")
        return {
            "what": f"6 pipelines on one store for {seconds} s, gc every second",
            "found": f"{len(results)} runs ({succeeded} succeeded, {len(failed)} failed); {lost} steps lost metrics; fsck exit {fsck.returncode}",
            "ok": lost == 0 and not failed and fsck.returncode == 0,
            "detail": "\n".join(f[1] for f in failed[:3]) + fsck.stdout[-1000:],
        }
    finally:
        stop.set()
        for pr in projects:
            pr.close()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
def attack_diskfull(quick):
    """The store's filesystem fills up while a step runs (the step itself fills it): the step's
    record cannot be written, so the run must not be `succeeded` nor mlrun exit 0; and the read
    commands must still work on the full disk."""
    tmp = tempfile.mkdtemp(prefix="mlrun-full-")
    mnt = os.path.join(tmp, "small")
    os.makedirs(mnt)
    p = Project(
        f"""
[steps.fill]
cmd = "python3 -c \\"import sys\\nfor i in range(20000): print('line', i)\\"; dd if=/dev/zero of={mnt}/filler bs=64k 2>/dev/null; echo x > o.txt"
outputs = ["o.txt"]
"""
    )
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            return {"what": "store on a full filesystem", "found": "skipped: cannot mount a tmpfs (" + r.stderr.strip() + ")", "ok": None}
        store = os.path.join(mnt, "store")
        r = p.mlrun("--store", store, "run")
        runs = p.mlrun("--store", store, "runs", "--json")
        try:
            status = json.loads(runs.stdout)[0]["status"]
        except (ValueError, IndexError, KeyError):
            status = f"? (`runs`: {runs.stderr.strip()[:200]})"
        show = p.mlrun("--store", store, "show")
        # space again: the next command closes the run with what happened
        os.remove(os.path.join(mnt, "filler"))
        later = p.mlrun("--store", store, "runs", "--json")
        try:
            closed = json.loads(later.stdout)[0]["status"]
        except (ValueError, IndexError, KeyError):
            closed = f"? (`runs`: {later.stderr.strip()[:200]})"
        return {
            "what": "the store's filesystem fills up during a step (16 MiB tmpfs)",
            "found": f"mlrun exit {r.returncode}; run recorded {status}; on the full disk `runs` exit {runs.returncode}, `show` exit {show.returncode}; once space is freed the run is {closed}",
            "ok": r.returncode != 0 and status != "succeeded" and runs.returncode == 0 and show.returncode == 0 and closed == "failed",
            "detail": r.stdout[-1500:] + r.stderr[-1500:] + runs.stderr[-500:] + show.stderr[-500:],
        }
    finally:
        p.close()
        subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
def attack_biglog(quick):
    mib = 256 if quick else 1024
    p = Project(
        f"""
[steps.loud]
cmd = "python3 -c \\"import sys\\nline=(b'0123456789abcdef'*8)[:127]+b'\\\\\\\\n'\\nw=sys.stdout.buffer.write\\nfor i in range({mib}*1024*1024//128): w(line)\\" ; echo ok > o.txt"
outputs = ["o.txt"]
"""
    )
    try:
        r = subprocess.run(
            ["/usr/bin/time", "-v", MLRUN, "run"],
            cwd=p.root,
            env=p.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        rss = next(
            (int(line.split(":")[1]) for line in r.stderr.splitlines() if "Maximum resident set size" in line),
            -1,
        )
        status = p.mlrun("runs", "--json")
        st = json.loads(status.stdout)[0]["status"] if status.stdout.strip() else "?"
        # the whole log, as mlrun gives it back
        full = subprocess.run([MLRUN, "show", "--logs", "--full"], cwd=p.root, env=p.env, capture_output=True)
        line = (b"0123456789abcdef" * 8)[:127] + b"\n"
        logged = full.stdout.count(line)
        expected = mib * 1024 * 1024 // 128
        return {
            "what": f"a step printing {mib} MiB",
            "found": f"peak RSS {rss / 1024:.1f} MiB; run {st}; {logged} of {expected} lines given back by `show --logs --full`",
            "ok": r.returncode == 0 and 0 < rss <= 64 * 1024 and st == "succeeded" and logged >= expected,
            "detail": "" if r.returncode == 0 else r.stderr[-1500:],
        }
    finally:
        p.close()


# --------------------------------------------------------------------------------------------
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\\n"
    "MIIEowIBAAKCAQEAq7BFUpkGp3+LQmlQDlzmhFuN1pqPZ0PEMbodyHUbmq9SeCYN\\n"
    "PLANTEDPEMBODYLINEnumberTWO0123456789abcdefABCDEFghijklmnopqrstu\\n"
    "-----END RSA PRIVATE KEY-----"
)


def planted():
    """(where it is planted, the secret text to look for). Each value is unique and long enough
    that finding it anywhere means it leaked."""
    s = {}
    # environment variables, by name
    s["env DB_PASSWORD (weak)"] = ("DB_PASSWORD", "Summer2024")
    s["env API_TOKEN"] = ("API_TOKEN", "tok-planted-0001-api-token")
    s["env MYSQL_PWD"] = ("MYSQL_PWD", "planted-mysql-pwd-0002")
    s["env API_PASS"] = ("API_PASS", "planted-api-pass-0003")
    s["env SMTP_PASS"] = ("SMTP_PASS", "planted-smtp-pass-0004")
    s["env ORACLE_PWD"] = ("ORACLE_PWD", "planted-oracle-pwd-0005")
    s["env TWILIO_SID"] = ("TWILIO_SID", "planted-twilio-sid-0006")
    s["env TRACKER_COOKIE"] = ("TRACKER_COOKIE", "planted-tracker-cookie-0007")
    s["env AWS_SECRET_ACCESS_KEY"] = ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYPLANTED0008")
    s["env SESSION_ID"] = ("SESSION_ID", "planted-session-0009")
    # values that look like credentials, under harmless names
    s["value AWS access key id"] = ("HARMLESS_1", "AKIAPLANTED000000010")
    s["value GitHub token"] = ("HARMLESS_2", "ghp_PlantedGitHubToken0011abcdefghijklmn")
    s["value GitLab token"] = ("HARMLESS_3", "glpat-Planted0012abcdefghij")
    s["value Slack token"] = ("HARMLESS_4", "xoxb-123456789012-PLANTED0013-abcdefghij")
    s["value JWT"] = ("HARMLESS_5", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkMDAxNCJ9.UExBTlRFRDAwMTRzaWduYXR1cmU")
    s["value user:pass@ URL"] = ("HARMLESS_6", "https://alice:planted-url-pass-0015@db.example.invalid/x")
    return s


def attack_secrets(quick):
    sec = planted()
    cmd_token = "ghp_PlantedCommandToken0016abcdefghijklm"
    argv_token = "ghp_PlantedArgvToken0017abcdefghijklmnop"
    params = {
        "password": "planted-param-password-0018",
        "api_key": "planted-param-apikey-0019",
        "token": "planted-param-token-0020",
        "db.password": "planted-param-dbpass-0021",
    }
    printed = {
        "stdout GitHub token": "ghp_PlantedPrintedToken0022abcdefghijklm",
        "stderr Slack token": "xoxp-123456789012-PLANTED0023-abcdefghij",
        "stdout password=": "planted-printed-password-0024",
        "stdout PEM body": "PLANTEDPEMBODYLINEnumberTWO0123456789abcdefABCDEFghijklmnopqrstu",
    }
    diff_token = "ghp_PlantedDiffToken0025abcdefghijklmnopq"
    diff_pass = "planted-diff-password-0026"
    env_toml = "planted-pipeline-env-token-0027"
    pipeline = f"""
[params]
password = "{params['password']}"
api_key = "{params['api_key']}"
token = "{params['token']}"
[params.db]
password = "{params['db.password']}"

[env]
HF_TOKEN = "{env_toml}"

[steps.fetch]
cmd = "echo 'curl -H \\"Authorization: Bearer {cmd_token}\\"' > /dev/null; echo {{params.token}} {{params.password}} > /dev/null; echo x > f.txt"
outputs = ["f.txt"]
params = ["password", "api_key", "db.password"]

[steps.argv]
cmd = ["sh", "-c", "echo y > a.txt", "{argv_token}"]
outputs = ["a.txt"]

[steps.talk]
cmd = "python3 talk.py"
inputs = ["talk.py", "f.txt"]
outputs = ["t.txt"]
"""
    talk = (
        "import sys\n"
        f"print('token {printed['stdout GitHub token']}')\n"
        f"print('{printed['stderr Slack token']}', file=sys.stderr)\n"
        f"print('password={printed['stdout password=']}')\n"
        f"print('{PEM}')\n"
        "open('t.txt','w').write('ok')\n"
    )
    p = Project(pipeline, {"talk.py": talk, "config.py": "URL = 'x'\n"})
    try:
        # an uncommitted change holding secrets
        p.write("config.py", f"URL = 'x'\nGITHUB = '{diff_token}'\nDB = 'password={diff_pass}'\n")
        envs = {k: v for (k, v) in sec.values()}
        run = p.mlrun("run", env=envs)
        p.mlrun("run", "-p", "api_key=planted-param-apikey-0019b", env=envs)
        looked = {"live run output": run.stdout + run.stderr}
        for args in (
            ["show"],
            ["show", "--json"],
            ["show", "--logs"],
            ["show", "--patch"],
            ["diff", "latest~1", "latest"],
            ["diff", "latest~1", "latest", "--json", "--patch"],
            ["export", "latest", "--format", "openlineage"],
            ["export", "latest", "--format", "prov"],
            ["status"],
            ["status", "--json"],
            ["lineage", "t.txt", "--json"],
            ["runs", "--json"],
        ):
            r = p.mlrun(*args, env=envs)
            looked["mlrun " + " ".join(args)] = r.stdout + r.stderr
        store_bytes = b""
        for d, _, files in os.walk(os.path.join(p.root, ".mlrun")):
            for f in files:
                with open(os.path.join(d, f), "rb") as fh:
                    store_bytes += fh.read()
        secrets = {k: v for k, (_, v) in sec.items()}
        secrets.update({f"cmd token": cmd_token, "argv token": argv_token})
        secrets.update({f"param {k}": v for k, v in params.items()})
        secrets.update(printed)
        secrets.update({"diff GitHub token": diff_token, "diff password=": diff_pass, "[env] HF_TOKEN": env_toml})
        found = []
        for name, value in secrets.items():
            where = [k for k, text in looked.items() if value in text]
            if value.encode() in store_bytes:
                where.append("bytes under .mlrun/")
            if where:
                found.append(f"{name}: {', '.join(where)}")
        return {
            "what": f"{len(secrets)} planted secrets (env names, value patterns, commands, argv, params, output, PEM, diff, [env])",
            "found": f"{len(found)} found; run exit {run.returncode}",
            "ok": not found and run.returncode == 0,
            "detail": "\n".join(found) + ("" if run.returncode == 0 else run.stdout[-1500:] + run.stderr[-1500:]),
        }
    finally:
        p.close()


ATTACKS = {
    "kills": attack_kills,
    "shared": attack_shared,
    "diskfull": attack_diskfull,
    "biglog": attack_biglog,
    "secrets": attack_secrets,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs, for a first look")
    ap.add_argument("--only", default=",".join(ATTACKS), help="comma-separated attacks")
    a = ap.parse_args()
    if not os.access(MLRUN, os.X_OK):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    rows = []
    for name in a.only.split(","):
        t0 = time.time()
        r = ATTACKS[name](a.quick)
        r["name"], r["secs"] = name, time.time() - t0
        rows.append(r)
        verdict = "skipped" if r["ok"] is None else ("ok" if r["ok"] else "FAILED")
        print(f"| {name} | {r['what']} | {r['found']} | {verdict} |", flush=True)
        if r["ok"] is False and r.get("detail"):
            print("  " + r["detail"].replace("\n", "\n  "), file=sys.stderr)
    failed = [r for r in rows if r["ok"] is False]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
