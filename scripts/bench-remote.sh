#!/usr/bin/env bash
# Push figures for the team remote, measured in one run against the same local servers:
#   1. `mlrun push` of a run whose input is N files of 10 KB (default 20,000), to a fresh remote
#   2. `dvc push` of the same files to the same S3 server (DVC with its S3 plugin, installed into
#      a throwaway virtualenv under target/ci-tools/dvc-s3)
#   3. a push with nothing new: a second run of the same data (its record is new, its 20,000
#      objects are all on the remote), and `mlrun push` with no run left to push; `dvc push`
#      again for comparison
# Besides wall time it reports the CPU time of mlrun (user + sys) and of the S3 server: on a
# shared machine those depend much less on the load. With MLRUN_BENCH_BASE=/path/to/other/mlrun
# the mlrun figures are measured for that binary too, alternating with this one round by round
# (MLRUN_BENCH_ROUNDS, default 1), each push to a fresh database and prefix of the same servers.
# It starts its own PostgreSQL and SeaweedFS (scripts/pg-local-start.sh, s3-local-start.sh) on
# ports of its own (MLRUN_PG_PORT, MLRUN_S3_PORT) in a temporary directory (under $TMPDIR) and
# stops them at the end. Needs a release build (`cargo build --release`).
#
#   scripts/bench-remote.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
n=${1:-20000}
mlrun=$repo/target/release/mlrun
[ -x "$mlrun" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
base=${MLRUN_BENCH_BASE:-}
rounds=${MLRUN_BENCH_ROUNDS:-1}
tools=${MLRUN_TOOLS_DIR:-$repo/target/ci-tools}
if [ ! -x "$tools/dvc-s3/bin/dvc" ]; then
  python3 -m venv "$tools/dvc-s3" && "$tools/dvc-s3/bin/pip" install -q 'dvc[s3]'
fi
dvc=$tools/dvc-s3/bin/dvc

work=$(mktemp -d "${TMPDIR:-/tmp}/mlrun-bench-remote.XXXXXX")
chmod 0755 "$work"
cleanup() {
  "$repo/scripts/s3-local-stop.sh" "$work/s3" >/dev/null 2>&1 || true
  "$repo/scripts/pg-local-stop.sh" "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export MLRUN_PG_PORT=${MLRUN_PG_PORT:-54371} MLRUN_S3_PORT=${MLRUN_S3_PORT:-18391}
export MLRUN_TOOLS_DIR=$tools MLRUN_PG_PASSWORD=bench
scripts/pg-local-start.sh "$work/pg" >/dev/null
s3env=$(scripts/s3-local-start.sh "$work/s3")
export $s3env
export PGPASSWORD=bench MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/mlrun
weed_pid=$(cat "$work/s3/weed.pid")

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
weed_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$weed_pid/stat"; }
# timed BIN LABEL: one `BIN push`, as "LABEL wall-s mlrun-cpu-s s3-cpu-s"
timed() {
  local w0 w1 t0 t1 cpu
  w0=$(weed_cpu)
  t0=$(now)
  cpu=$(/usr/bin/time -f "%U %S" "$1" push 2>&1 >/dev/null | tail -1 | awk '{printf "%.2f", $1 + $2}')
  t1=$(now)
  w1=$(weed_cpu)
  echo "$2 $(secs "$t0" "$t1") $cpu $(python3 -c "print(f'{$w1 - $w0:.2f}')")"
}

# the project: N files of 10 KB of random bytes, an input no commit holds (so mlrun stores it)
proj=$work/project
mkdir -p "$proj/data"
python3 - "$proj/data" "$n" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(10240))
EOF
cd "$proj"
git init -q -b main
printf '/data/\n/out/\n/.mlrun/\n/.dvc/cache/\n' >.gitignore
cat >pipeline.toml <<'EOF'
[pipeline]
name = "bench"

[steps.count]
cmd = "mkdir -p out && ls data | wc -l > out/count.txt"
inputs = ["data"]
outputs = ["out/count.txt"]
EOF
git add -A && git -c user.name=b -c user.email=b@b commit -qm bench
# the run, recorded once by the older binary (a newer one migrates its own copy of the store)
"${base:-$mlrun}" run --no-remote-cache >/dev/null 2>&1
cp -a .mlrun "$work/store-after-run"

results=$work/results
db=0
for _ in $(seq 1 "$rounds"); do
  for bin in $base $mlrun; do
    db=$((db + 1))
    psql -q -h 127.0.0.1 -p "$MLRUN_PG_PORT" -U mlrun -d mlrun -c "CREATE DATABASE bench$db"
    export MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/bench$db
    export MLRUN_REMOTE_OBJECTS=s3://mlrun/bench$db
    label=this
    [ "$bin" = "$mlrun" ] || label=base
    rm -rf .mlrun && cp -a "$work/store-after-run" .mlrun
    timed "$bin" "$label:full" >>"$results"
    # a new run of the same data: its record is new, every object is on the remote already
    "$bin" run --force --no-remote-cache >/dev/null 2>&1
    timed "$bin" "$label:same" >>"$results"
    timed "$bin" "$label:noop" >>"$results"
  done
done

# DVC: the same files, tracked with `dvc add`, pushed to the same server
dproj=$work/dvc
mkdir -p "$dproj" && cp -r "$proj/data" "$dproj/data"
cd "$dproj"
git init -q -b main
"$dvc" init -q
"$dvc" add -q data >/dev/null
"$dvc" remote add -q -d bench s3://mlrun/dvc-bench
"$dvc" remote modify -q bench endpointurl "$AWS_ENDPOINT_URL"
w0=$(weed_cpu)
t0=$(now); "$dvc" push -q >/dev/null 2>&1; t1=$(now)
w1=$(weed_cpu)
dvc_push=$(secs "$t0" "$t1")
dvc_s3=$(python3 -c "print(f'{$w1 - $w0:.2f}')")
t0=$(now); "$dvc" push -q >/dev/null 2>&1; t1=$(now)
dvc_noop=$(secs "$t0" "$t1")

ratio() { python3 -c "print(f'{$1 / max($2, 1e-9):.1f}')"; }
# the medians of a label's wall, mlrun cpu and S3 cpu
med() {
  python3 - "$results" "$1" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.split()[0] == sys.argv[2]]
print(" ".join(f"{statistics.median(float(r[i]) for r in rows):.3f}" for i in (1, 2, 3)))
EOF
}
echo "files: $n x 10 KB; servers: PostgreSQL + SeaweedFS on loopback; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(wall, mlrun user+sys CPU, S3 server CPU; medians of $rounds round(s))"
for label in ${base:+base} this; do
  read -r full fcpu fs3 <<<"$(med "$label:full")"
  read -r same scpu ss3 <<<"$(med "$label:same")"
  read -r noop _ _ <<<"$(med "$label:noop")"
  echo "[$label] mlrun push (all objects + record):    ${full} s  cpu ${fcpu} s  S3 cpu ${fs3} s  -> $(ratio "$dvc_push" "$full")x faster than dvc push"
  echo "[$label] mlrun push, new run of the same data: ${same} s  cpu ${scpu} s  S3 cpu ${ss3} s  -> $(ratio "$dvc_noop" "$same")x faster than dvc's no-op push"
  echo "[$label] mlrun push, nothing to push:          ${noop} s"
done
echo "dvc push (same files):                    ${dvc_push} s  S3 cpu ${dvc_s3} s"
echo "dvc push, nothing new:                    ${dvc_noop} s"
