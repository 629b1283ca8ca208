#!/usr/bin/env bash
# Push figures for the team remote, measured in one run against the same local servers:
#   1. `mlrun push` of a run whose input is N files of 10 KB (default 20,000), to a fresh remote
#   2. `dvc push` of the same files to the same S3 server (DVC with its S3 plugin, installed into
#      a throwaway virtualenv under target/ci-tools/dvc-s3)
#   3. a push with nothing new: a second run of the same data (its record is new, its 20,000
#      objects are all on the remote), and `mlrun push` with no run left to push; `dvc push`
#      again for comparison
# It starts its own PostgreSQL and SeaweedFS (scripts/pg-local-start.sh, s3-local-start.sh) on
# ports of its own and stops them at the end. Needs a release build (`cargo build --release`).
#
#   scripts/bench-remote.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
n=${1:-20000}
mlrun=$repo/target/release/mlrun
[ -x "$mlrun" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
tools=${MLRUN_TOOLS_DIR:-$repo/target/ci-tools}
if [ ! -x "$tools/dvc-s3/bin/dvc" ]; then
  python3 -m venv "$tools/dvc-s3" && "$tools/dvc-s3/bin/pip" install -q 'dvc[s3]'
fi
dvc=$tools/dvc-s3/bin/dvc

work=$(mktemp -d /tmp/mlrun-bench-remote.XXXXXX)
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
export MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/mlrun PGPASSWORD=bench
export MLRUN_REMOTE_OBJECTS=s3://mlrun/bench

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }

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
"$mlrun" run --no-remote-cache >/dev/null 2>&1

t0=$(now); "$mlrun" push >/dev/null; t1=$(now)
mlrun_push=$(secs "$t0" "$t1")
# a new run of the same data: its record is new, every object is on the remote already
"$mlrun" run --force --no-remote-cache >/dev/null 2>&1
t0=$(now); "$mlrun" push >/dev/null; t1=$(now)
mlrun_same=$(secs "$t0" "$t1")
t0=$(now); "$mlrun" push >/dev/null; t1=$(now)
mlrun_noop=$(secs "$t0" "$t1")

# DVC: the same files, tracked with `dvc add`, pushed to the same server
dproj=$work/dvc
mkdir -p "$dproj" && cp -r "$proj/data" "$dproj/data"
cd "$dproj"
git init -q -b main
"$dvc" init -q
"$dvc" add -q data >/dev/null
"$dvc" remote add -q -d bench s3://mlrun/dvc-bench
"$dvc" remote modify -q bench endpointurl "$AWS_ENDPOINT_URL"
t0=$(now); "$dvc" push -q >/dev/null 2>&1; t1=$(now)
dvc_push=$(secs "$t0" "$t1")
t0=$(now); "$dvc" push -q >/dev/null 2>&1; t1=$(now)
dvc_noop=$(secs "$t0" "$t1")

ratio() { python3 -c "print(f'{$1 / max($2, 1e-9):.1f}')"; }
echo "files: $n x 10 KB; servers: PostgreSQL + SeaweedFS on loopback; $(nproc) cores"
echo "mlrun push (all objects + record):        ${mlrun_push} s"
echo "dvc push (same files):                    ${dvc_push} s   -> mlrun $(ratio "$dvc_push" "$mlrun_push")x faster"
echo "mlrun push, new run of the same data:     ${mlrun_same} s   (record only; objects known from the index)"
echo "mlrun push, nothing to push:              ${mlrun_noop} s"
echo "dvc push, nothing new:                    ${dvc_noop} s   -> mlrun (new run, same data) $(ratio "$dvc_noop" "$mlrun_same")x faster"
