#!/usr/bin/env bash
# Overhead of `--trace`, measured with hyperfine; every figure is a ratio against the untraced
# run of the same command in the same hyperfine invocation.
#
#   scripts/bench/trace-overhead.sh            # builds target/release/mlrun if needed
#   MLRUN=path/to/mlrun RUNS=20 scripts/bench/trace-overhead.sh
#
# Two workloads:
#   compute  a CPU-bound Python loop (few file accesses): the target is < 3% overhead
#   files    Python opening and reading 5,000 small files: target < 2.5x untraced,
#            and at least 2x faster than `strace -f -e trace=%file` on the same command
# Each is measured twice: the tracer alone (`mlrun __mlrun-trace`, what a traced step runs
# under) against the bare command and strace, and end to end (`mlrun run --force` with and
# without `--trace`, which adds the fixed cost of hashing, recording and the helper's start).
# Ratios: mean and fastest wall time, and mean CPU time (user + system, all processes), which
# other load on the machine disturbs least.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

MLRUN="${MLRUN:-$repo/target/release/mlrun}"
RUNS="${RUNS:-10}"
if [ ! -x "$MLRUN" ]; then
  cargo build --release
fi
for tool in hyperfine strace python3 git jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done
# the interpreter itself, not a version-manager shim (a shim adds a shell to every run)
PY=$(python3 -c 'import sys; print(sys.executable)')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q . && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
mkdir files
"$PY" - <<'EOF'
for i in range(5000):
    with open(f"files/f{i:05d}.txt", "w") as f:
        f.write("x" * 100)
EOF
cat > read.py <<'EOF'
import os
n = 0
for name in sorted(os.listdir("files")):
    with open(os.path.join("files", name)) as f:
        n += len(f.read())
print(n)
EOF
cat > compute.py <<'EOF'
s = 0
for i in range(25_000_000):
    s += i * i % 7
print(s)
EOF
cat > pipeline.toml <<EOF
[steps.files]
cmd = ["$PY", "read.py"]
inputs = ["read.py", "files/"]
[steps.compute]
cmd = ["$PY", "compute.py"]
inputs = ["compute.py"]
EOF
export NO_COLOR=1
"$MLRUN" run >/dev/null 2>&1 # fill the hash cache, create the store

bench() { # name, then commands
  local name=$1
  shift
  hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/$name.json" "$@" >/dev/null
}

ratios() { # name: each command's wall time (mean, min) and CPU time relative to the first one
  jq -r '.results as $r | $r[0] as $b | $r[] |
    "  \(.command | .[0:70])\n      mean \(.mean * 1000 | floor) ms (x\(.mean / $b.mean * 1000 | round / 1000))  min \(.min * 1000 | floor) ms (x\(.min / $b.min * 1000 | round / 1000))  cpu \((.user + .system) * 1000 | floor) ms (x\((.user + .system) / ($b.user + $b.system) * 1000 | round / 1000))"' \
    "$work/$1.json"
}

trace() { echo "$MLRUN __mlrun-trace /dev/null -- $*"; }

echo "mlrun: $("$MLRUN" --version) · $(nproc) cores · load $(cut -d' ' -f1-3 /proc/loadavg) · $(uname -r)"
echo
echo "== files: 5,000 small files, tracer alone (target: < 2.5x bare, >= 2x faster than strace)"
bench files-tracer "$PY read.py" "$(trace "$PY" read.py)" "strace -f -e trace=%file -o /dev/null $PY read.py"
ratios files-tracer
echo
echo "== compute: CPU-bound loop, tracer alone (target: < 1.03x)"
bench compute-tracer "$PY compute.py" "$(trace "$PY" compute.py)"
ratios compute-tracer
echo
echo "== end to end: mlrun run --force, untraced vs --trace"
bench files-run "$MLRUN run --force=files -j1" "$MLRUN run --force=files -j1 --trace"
ratios files-run
bench compute-run "$MLRUN run --force=compute -j1" "$MLRUN run --force=compute -j1 --trace"
ratios compute-run
