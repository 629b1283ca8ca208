#!/usr/bin/env bash
# The shared cache on a fresh clone: a 50-step chain (step k reads step k-1's output and writes
# SIZE bytes of its own, default 256 KiB) run and pushed by a teammate; then, interleaved:
#   noop      `mlrun run` again in the teammate's project (nothing changed: all 50 steps reused
#             from the local store)
#   clone     a fresh `git clone` running `mlrun run`: every step a shared-cache hit, its outputs
#             fetched from S3 and verified (the clone is made before the clock starts)
#   transfer  the same 50 objects alone: one `curl` fetching them in parallel from SeaweedFS's
#             filer over plain HTTP (no S3 signing, no hashing: a floor for the transfer); a
#             packed object (up to 1 MiB: all of them at the default SIZE) is its byte range of
#             its pack, one request each
# and the ratio the issue sets: clone <= 3 x noop + transfer. Also the PostgreSQL statements one
# clone run sends (pg_stat_statements would need a restart: counted from the server's log).
#
# Starts its own PostgreSQL and SeaweedFS (MLRUN_PG_PORT, MLRUN_S3_PORT; defaults 54373 and
# 18393) and stops them at the end. Needs a release build (`cargo build --release`).
#
#   scripts/bench-remote-cache.sh [ROUNDS]      (default 10; SIZE=bytes per output)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rounds=${1:-10}
size=${SIZE:-262144}
steps=50
mlrun=${MLRUN_BIN:-$repo/target/release/mlrun}
[ -x "$mlrun" ] || { echo "build it first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /tmp/mlrun-bench-cache.XXXXXX)
chmod 0755 "$work"
cleanup() {
  "$repo/scripts/s3-local-stop.sh" "$work/s3" >/dev/null 2>&1 || true
  "$repo/scripts/pg-local-stop.sh" "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export MLRUN_PG_PORT=${MLRUN_PG_PORT:-54373} MLRUN_S3_PORT=${MLRUN_S3_PORT:-18393}
export MLRUN_TOOLS_DIR=${MLRUN_TOOLS_DIR:-$repo/target/ci-tools} MLRUN_PG_PASSWORD=bench
scripts/pg-local-start.sh "$work/pg" >/dev/null
s3env=$(scripts/s3-local-start.sh "$work/s3")
export $s3env
export MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$MLRUN_PG_PORT/mlrun PGPASSWORD=bench
export MLRUN_REMOTE_OBJECTS=s3://mlrun/cache-bench
filer=http://127.0.0.1:$((MLRUN_S3_PORT + 3))/buckets/mlrun/cache-bench
psql_=(psql -h 127.0.0.1 -p "$MLRUN_PG_PORT" -U mlrun -d mlrun -qAt)

# the teammate's project: a chain of 50 steps
proj=$work/project
mkdir -p "$proj" && cd "$proj"
git init -q -b main
printf '/.mlrun/\n/o*.bin\n' >.gitignore
head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' >o00.txt
{
  echo '[pipeline]'
  echo 'name = "chain"'
  prev=o00.txt
  for k in $(seq -w 1 $steps); do
    echo
    echo "[steps.s$k]"
    echo "cmd = \"{ sha256sum $prev; head -c $size /dev/urandom; } > o$k.bin\""
    echo "inputs = [\"$prev\"]"
    echo "outputs = [\"o$k.bin\"]"
    prev=o$k.bin
  done
} >pipeline.toml
git add -A && git -c user.name=b -c user.email=b@b commit -qm chain
"$mlrun" run --no-remote-cache >/dev/null 2>&1
"$mlrun" push >/dev/null
run=$("${psql_[@]}" -c "SELECT id FROM runs")
"${psql_[@]}" -c "SELECT o.name, o.pack, o.pos, o.len FROM objects o WHERE o.name IN
    (SELECT 'sha256/' || blob_hash FROM io_edges WHERE run_id = '$run' AND direction = 'out')" |
  awk -F'|' -v f="$filer" '{
    if ($2 == "") { h = substr($1, 8); printf "url = \"%s/sha256/%s/%s\"\n", f, substr(h, 1, 2), substr(h, 3) }
    else printf "url = \"%s/packs/%s.pack\"\nrange = \"%d-%d\"\n", f, $2, $3, $3 + $4 - 1
    print "output = \"/dev/null\"" }' >"$work/objects.curl"
objects=$(grep -c '^url' "$work/objects.curl")
bytes=$("${psql_[@]}" -c "SELECT sum(b.size) FROM blobs b WHERE b.hash IN (SELECT blob_hash FROM io_edges WHERE run_id = '$run' AND direction = 'out')")

# one clone run checked: every step reused from the shared cache, and what it asked PostgreSQL
"${psql_[@]}" -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
log=$work/pg/server.log
start=$(wc -l <"$log")
git clone -q "$proj" "$work/check"
(cd "$work/check" && "$mlrun" run >/dev/null 2>"$work/check.err")
statements=$(tail -n +"$((start + 1))" "$log" | grep -c 'LOG:  \(statement\|execute\)' || true)
"${psql_[@]}" -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
reused=$(cd "$work/check" && "$mlrun" show latest --json | python3 -c "
import json, sys
steps = json.load(sys.stdin)['steps']
print(sum(s['status'] in ('cached', 'restored') for s in steps), len(steps))")
echo "clone run: $reused steps reused (of $steps), $statements PostgreSQL statements; $(cat "$work/check.err" | grep -c warn || true) warnings"

cd "$work"
python3 - "$mlrun" "$proj" "$work" "$rounds" <<'EOF'
import os, shutil, statistics, subprocess, sys, time
mlrun, proj, work, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
clone = os.path.join(work, "clone")

def timed(cmd, cwd):
    before = os.times()
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    dt = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    return dt * 1000, cpu * 1000

res = {k: ([], []) for k in ("noop", "clone", "transfer")}
for i in range(rounds + 1):
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", proj, clone], check=True)
    got = {
        "noop": timed([mlrun, "run"], proj),
        "clone": timed([mlrun, "run"], clone),
        "transfer": timed(["curl", "-sf", "-Z", "--parallel-max", "8", "-K",
                           os.path.join(work, "objects.curl")], work),
    }
    if i == 0:
        continue  # warm-up
    for k, (w, c) in got.items():
        res[k][0].append(w)
        res[k][1].append(c)
med = {k: statistics.median(v[0]) for k, v in res.items()}
for k, (w, c) in res.items():
    w = sorted(w)
    print(f"{k:8} median {med[k]:7.1f} ms (min {w[0]:.1f}, max {w[-1]:.1f}), CPU {statistics.median(c):.1f} ms")
bound = 3 * med["noop"] + med["transfer"]
print(f"clone / (3 x noop + transfer) = {med['clone']:.1f} / {bound:.1f} = {med['clone'] / bound:.2f}"
      f" ({'met' if med['clone'] <= bound else 'NOT met'}); {rounds} interleaved rounds;"
      f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
EOF
echo "objects: $objects outputs, $bytes bytes"
