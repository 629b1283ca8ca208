#!/usr/bin/env python3
"""Where did a run's CPU go? Summarise `perf script` output (cpu-clock samples with call
graphs, e.g. `perf record -e cpu-clock --call-graph dwarf`) by mlrun phase.

usage: perf script -i perf.data | perf_phases.py [BUCKET_SECONDS]

Prints the share of samples per phase (a sample counts for the first phase whose function
appears in its stack, in the order below), then a timeline: per time bucket, the phases
seen, so serial stretches (one core busy) show up next to parallel ones.
"""
import collections
import sys

PHASES = [  # (substring of a stack frame, phase)
    ("hash::walk", "walk"),
    ("hash::hash_file", "read+sha256"),
    ("hash::hash_open", "read+sha256"),
    ("do_sys_openat2", "open/close"),
    ("__x64_sys_close", "open/close"),
    ("do_statx", "stat"),
    ("symlink_metadata", "stat"),
    ("hash::file_entry", "stat"),
    ("HashCache::flush", "stat cache: write"),
    ("HashCache::load", "stat cache: load"),
    ("cache::unpack", "stat cache: decode"),
    ("HashCache::get", "stat cache: lookup"),
    ("HashCache::put", "stat cache: remember"),
    ("put_version", "record: versions"),
    ("store::record", "record: other"),
    ("store::objects", "object store"),
    ("fingerprint::git", "git"),
    ("fingerprint::env", "env capture"),
    ("hash::manifest", "manifest"),
    ("fingerprint_dir", "fingerprint: other (rayon, entries, sort)"),
    ("Store::open", "store open"),
    ("pipeline::", "parse"),
]
CHILDREN = {"sh", "dash", "bash", "cp", "ls", "wc", "python3", "git"}

bucket = float(sys.argv[1]) if len(sys.argv) > 1 else 0.02
samples, head, stack = [], None, []


def flush():
    if head is None:
        return
    comm, t = head
    phase = "other"
    if comm in CHILDREN:
        phase = f"step process ({comm})"
    else:
        for frame in stack:
            hit = next((p for s, p in PHASES if s in frame), None)
            if hit:
                phase = hit  # innermost frame that names a phase wins
                break
    samples.append((t, phase))


for line in sys.stdin:
    if not line.strip():
        flush()
        head, stack = None, []
    elif line[0] in " \t":
        parts = line.split(None, 1)
        if len(parts) == 2:
            stack.append(parts[1])
    else:
        flush()
        stack = []
        fields = line.split()
        t = next((f[:-1] for f in fields if f.endswith(":") and f[:-1].replace(".", "").isdigit()), None)
        head = (fields[0], float(t)) if t else None
flush()
if not samples:
    sys.exit("no samples")
t0 = min(t for t, _ in samples)
total = collections.Counter(p for _, p in samples)
print(f"{len(samples)} samples")
for p, n in total.most_common():
    print(f"  {100 * n / len(samples):5.1f}%  {p}")
print(f"\ntimeline ({bucket * 1000:.0f} ms buckets: samples per phase)")
per = collections.defaultdict(collections.Counter)
for t, p in samples:
    per[int((t - t0) / bucket)][p] += 1
for b in sorted(per):
    print(f"  {b * bucket * 1000:6.0f} ms  " + "  ".join(f"{p}:{n}" for p, n in per[b].most_common(4)))
