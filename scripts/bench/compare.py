#!/usr/bin/env python3
"""Turn one bench-compare session into the tables of BENCHMARKS.md.

usage: compare.py RESULTS_DIR        (reads summary.tsv and sha_speed.txt written there)

The workloads' knobs (N, SIZE_MIB, NFILES, FILE_BYTES) are read from the `knobs:` line of
machine.txt that bench-compare.sh writes, else from the environment, else the defaults.
Prints markdown: every measurement per tool (median, min–max, CPU, background load), then the
figures each issue asks for, computed from medians of the same session, with met / MISSED.
"""
import csv
import os
import re
import sys

res = sys.argv[1] if len(sys.argv) > 1 else "."
knobs = dict(os.environ)
try:
    line = next(x for x in open(os.path.join(res, "machine.txt")) if x.startswith("knobs:"))
    knobs.update(re.findall(r"(\w+)=(\S+)", line))
except (OSError, StopIteration):
    pass
N = int(knobs.get("N", 50))
BIG = int(knobs.get("SIZE_MIB", 2048)) * 2**20
NFILES = int(knobs.get("NFILES", 20000))
SMALL = NFILES * int(knobs.get("FILE_BYTES", 10240))
RSS_LIMIT_MIB = 64e6 / 2**20  # "64 MB"

data = {}
for row in csv.DictReader(open(os.path.join(res, "summary.tsv")), delimiter="\t"):
    data.setdefault(row["tool"], {})[row["measurement"]] = row  # last row wins


def get(tool, m):
    return data.get(tool, {}).get(m)


def med(tool, m):
    r = get(tool, m)
    return float(r["median_s"]) if r else None


def cpu(tool, m):
    r = get(tool, m)
    return float(r["cpu_s"]) if r and r.get("cpu_s") else None


def ms(v):
    if v is None:
        return "–"
    return f"{v * 1000:,.0f} ms" if v >= 1 else f"{v * 1000:,.1f} ms"


def openssl_speed():
    """single-core `openssl speed -evp sha256`, 16 KiB blocks, in bytes/s"""
    try:
        text = open(os.path.join(res, "sha_speed.txt")).read()
    except OSError:
        return None
    m = re.search(r"^sha256\s+.*?([\d.]+)k\s*$", text, re.M)
    return float(m.group(1)) * 1000 if m else None


TOOLS = [t for t in ("mlrun", "mlrun-nostore", "dvc", "dvc-nocache") if t in data]
TOOLS += [t for t in data if t not in TOOLS]

ROWS = [
    ("a", f"chain{N}.bash", f"plain bash, {N} × cp (baseline)"),
    ("a", f"chain{N}.first", f"first run, {N}-step chain"),
    ("b", f"chain{N}.noop", "no-op re-run"),
    ("b", f"chain{N}.status", "status, nothing changed"),
    ("b", "startup", "`--version` (CLI startup floor)"),
    ("c", "big.first", f"first run, {BIG / 2**30:g} GiB input"),
    ("c", "big.noop", "no-op re-run"),
    ("c", "big.touched", "re-run after `touch` (rehash, no rerun)"),
    ("c", "big.openssl256", "`openssl dgst -sha256` (baseline)"),
    ("c", "big.sha256sum", "`sha256sum` (baseline)"),
    ("c", "big.md5sum", "`md5sum` (baseline)"),
    ("c", "big.cat", "`cat > /dev/null` (baseline)"),
    ("c", "big.cp", "`cp` of the file (baseline: copy floor)"),
    ("d", "small.first", f"first run, {NFILES:,} files"),
    ("d", "small.noop", "no-op re-run"),
    ("d", "small.status", "status, nothing changed"),
    ("d", "small.touch1", "re-run after touching 1 file"),
    ("d", "small.modify1", "re-run after changing 1 file (step reruns)"),
    ("d", "small.sha256sum", "`find | xargs sha256sum` (baseline)"),
    ("d", "small.stat", "`find | wc -l` (walk only)"),
    ("d", "small.cp", "`cp -r` of the directory (baseline: copy floor)"),
]
BYTES = {"big.first": BIG, "big.touched": BIG, "big.openssl256": BIG, "big.sha256sum": BIG,
         "big.md5sum": BIG, "big.cat": BIG, "big.cp": BIG, "small.first": SMALL, "small.sha256sum": SMALL,
         "small.cp": SMALL}

print("### All measurements\n")
print("Wall time median (min–max) over the runs; CPU = mean user+sys per run (children included);")
print("bg = CPU % used by other processes just before/after. Baselines were measured in each tool's")
print("own workload run; the ones shown are from the mlrun run (ratios below use those).\n")
print("| wl | measurement | tool | median (min–max) | GB/s | CPU | bg % |")
print("|---|---|---|---|---|---|---|")
for wl, m, label in ROWS:
    baseline = "baseline" in label or m.endswith(".bash") or m == "small.stat"
    tools = [next((t for t in TOOLS if get(t, m)), None)] if baseline else TOOLS
    for t in tools:
        r = get(t, m) if t else None
        if not r:
            continue
        rng = f"{ms(float(r['median_s']))} ({ms(float(r['min_s']))}–{ms(float(r['max_s']))})"
        gbps = f"{BYTES[m] / float(r['median_s']) / 1e9:.2f}" if m in BYTES else ""
        c = ms(float(r["cpu_s"])) if r.get("cpu_s") else ""
        print(f"| {wl} | {label} | {'—' if baseline else t} | {rng} | {gbps} | {c} | {r.get('bg_busy_pct', '')} |")

print("\n### Peak memory (GNU time -v, maximum resident set size)\n")
print("| tool | measurement | median MiB (min–max) |\n|---|---|---|")
peak = {}
for t in TOOLS:
    for m, r in data[t].items():
        if m.endswith(".maxrss_MiB"):
            print(f"| {t} | {m[: -len('.maxrss_MiB')]} | {r['median_s']} ({r['min_s']}–{r['max_s']}) |")
            peak[t] = max(peak.get(t, 0.0), float(r["max_s"]))

# ------------------------------------------------------------------ targets
out = []


def target(issue, what, value, goal, ok):
    verdict = {True: "met", False: "**MISSED**", None: "not measured", "info": ""}[ok]
    out.append((issue, what, value, goal, verdict))


def div(a, b):
    return a / b if a is not None and b else None


per_step = div((med("mlrun", f"chain{N}.first") or 0) - (med("mlrun", f"chain{N}.bash") or 0), N) \
    if med("mlrun", f"chain{N}.first") and med("mlrun", f"chain{N}.bash") else None
per_step_cpu = div((cpu("mlrun", f"chain{N}.first") or 0) - (cpu("mlrun", f"chain{N}.bash") or 0), N) \
    if cpu("mlrun", f"chain{N}.first") and cpu("mlrun", f"chain{N}.bash") else None
for issue in ("2", "7"):
    target(issue, f"per-step overhead over bash, first run: (mlrun − bash) / {N}",
           f"{per_step * 1000:.2f} ms (CPU: {per_step_cpu * 1000:.2f} ms)" if per_step is not None else "–",
           "< 5 ms", per_step < 0.005 if per_step is not None else None)

hash_only = med("mlrun-nostore", "big.first")
touched = med("mlrun", "big.touched")
gb = div(BIG, hash_only)
target("2", f"hashing a large file ({BIG / 2**30:g} GiB, `run --no-store` first run)",
       f"{gb / 1e9:.2f} GB/s" if gb else "–", "≥ 1.5 GB/s", gb >= 1.5e9 if gb else None)
speed = openssl_speed()
if gb and speed:
    target("7", "large-file hashing vs `openssl speed -evp sha256` (1 core, 16 KiB blocks)",
           f"{gb / 1e9:.2f} / {speed / 1e9:.2f} GB/s = {100 * gb / speed:.0f}%", "≥ 85%", gb / speed >= 0.85)
    gbt = div(BIG, touched)
    if gbt:
        target("7", "same, mlrun re-run after `touch` (rehash, step reused)",
               f"{gbt / 1e9:.2f} / {speed / 1e9:.2f} GB/s = {100 * gbt / speed:.0f}%", "≥ 85%", gbt / speed >= 0.85)
else:
    target("7", "large-file hashing vs openssl speed", "–", "≥ 85%", None)

noop = med("mlrun", f"chain{N}.noop")
target("3", f"no-op re-run, {N}-step chain", ms(noop), "< 50 ms", noop < 0.05 if noop else None)
dvc_noop = med("dvc", f"chain{N}.noop")
r = div(dvc_noop, noop)
target("7", f"no-op re-run, {N} steps: DVC / mlrun", f"{ms(dvc_noop)} / {ms(noop)} = {r:.1f}×" if r else "–",
       "≥ 20×", r >= 20 if r else None)
st, dst = med("mlrun", f"chain{N}.status"), med("dvc", f"chain{N}.status")
r = div(dst, st)
if r:
    target("7", f"status, {N} steps: DVC / mlrun", f"{ms(dst)} / {ms(st)} = {r:.0f}×", "(reported)", "info")

sha = med("mlrun", "small.sha256sum")
for t, what in (("mlrun-nostore", "hash only (`--no-store`)"), ("mlrun", "incl. copying into the object store")):
    first = med(t, "small.first")
    r = div(sha, first)
    target("3", f"{NFILES:,}-file first run, {what}: `find|xargs sha256sum` / mlrun",
           f"{ms(sha)} / {ms(first)} = {r:.2f}×" if r else "–", "≥ 1×", r >= 1 if r else None)
    target("7", f"{NFILES:,}-file first run, {what}: single-threaded sha256sum / mlrun",
           f"{r:.2f}×" if r else "–", "≥ 1.6×", r >= 1.6 if r else None)
for m, floor, what in (("small.first", "small.cp", f"{NFILES:,}-file"), ("big.first", "big.cp", "large-file")):
    first, cp = med("mlrun", m), med("mlrun", floor)
    if first and cp:
        target("7", f"{what} first run with the object store, against its copy floor (`cp`)",
               f"{ms(first)} / {ms(cp)} = {first / cp:.2f}× the copy", "(reported)", "info")
sn = med("mlrun", "small.noop")
for issue in ("3", "7"):
    target(issue, f"{NFILES:,}-file no-change re-run", ms(sn), "< 150 ms", sn < 0.15 if sn else None)
ss = med("mlrun", "small.status")
target("3", f"{NFILES:,}-file `status`, nothing changed", ms(ss), "< 150 ms", ss < 0.15 if ss else None)
for t in ("mlrun", "mlrun-nostore"):
    if t in peak:
        target("7", f"peak RSS, c and d ({t}), worst run", f"{peak[t]:.1f} MiB",
               f"< 64 MB ({RSS_LIMIT_MIB:.1f} MiB)", peak[t] < RSS_LIMIT_MIB)

# issue 21: the goals it adds, each a ratio of medians of this session
sn_goal = med("mlrun", "small.noop")
target("21", f"{NFILES:,}-file no-change re-run", ms(sn_goal), "≤ 60 ms",
       sn_goal <= 0.060 if sn_goal else None)
r = get("mlrun", "small.first.maxrss_MiB")
target("21", f"peak RSS, {NFILES:,}-file first run (mlrun), median", f"{float(r['median_s']):.1f} MiB" if r else "–",
       "≤ 32 MiB", float(r["median_s"]) <= 32 if r else None)
ns, ossl = med("mlrun-nostore", "big.first"), med("mlrun-nostore", "big.openssl256")
r = div(ns, ossl)
target("21", f"`run --no-store` over {BIG / 2**30:g} GiB / `openssl dgst -sha256` (wall)",
       f"{ms(ns)} / {ms(ossl)} = {r:.2f}×" if r else "–", "≤ 1.1×", r <= 1.1 if r else None)
cns, cossl = cpu("mlrun-nostore", "big.first"), cpu("mlrun-nostore", "big.openssl256")
r = div(cns, cossl)
if r:
    target("21", "same, CPU time (user + system)", f"{ms(cns)} / {ms(cossl)} = {r:.2f}×", "(reported)", "info")
mf, df = med("mlrun", "big.first"), med("dvc", "big.first")
r = div(mf, df)
target("21", f"first run with the object store, {BIG / 2**30:g} GiB untracked input: mlrun / DVC",
       f"{ms(mf)} / {ms(df)} = {r:.2f}×" if r else "–", "≤ 1×", r <= 1 if r else None)

print("\n### Targets\n")
print("| issue | figure | measured | target | |\n|---|---|---|---|---|")
for row in out:
    print("| " + " | ".join(row) + " |")
