#!/usr/bin/env bash
# Kill mlrun with SIGKILL at random moments (while hashing a large input, while a step runs,
# while recording) N times, then check that the next command gives every run a true final
# status and that the database passes PRAGMA integrity_check.
#
#   scripts/crash-test.sh [N=100]        (uses target/release/mlrun; builds it if missing)
set -euo pipefail
N="${1:-100}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MLRUN="${MLRUN:-$ROOT/target/release/mlrun}"
[ -x "$MLRUN" ] || (cd "$ROOT" && cargo build --release)
WORK="$(mktemp -d)"
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q . && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m init
head -c 300000000 /dev/urandom > big.bin                 # ~0.2 s to hash: kills land mid-hash too
cat > pipeline.toml <<'TOML'
[params]
i = 0
[steps.hash_big]
cmd = "cp big.bin copy.bin"
inputs = ["big.bin"]
outputs = [{ path = "copy.bin", store = false }]
params = ["i"]
[steps.sleepy]
cmd = "sleep 0.$(( RANDOM % 5 )); echo {params.i} > s.txt"
outputs = ["s.txt"]
[steps.many]
cmd = "mkdir -p many && for f in $(seq 1 300); do echo $f {params.i} > many/$f; done"
inputs = ["s.txt"]
outputs = ["many/"]
TOML
for i in $(seq 1 "$N"); do
  "$MLRUN" run -p i="$i" --force --no-store > /dev/null 2>&1 &
  pid=$!
  sleep "0.$(( RANDOM % 9 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
"$MLRUN" runs -n 0 --json > runs.json          # the next command closes abandoned runs
python3 - "$N" <<'PY'
import json, sqlite3, sys
n = int(sys.argv[1])
runs = json.load(open("runs.json"))
db = sqlite3.connect(".mlrun/lineage.db")
integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
statuses = {}
for r in runs:
    statuses[r["status"]] = statuses.get(r["status"], 0) + 1
running_steps = db.execute("SELECT count(*) FROM step_execs WHERE status = 'running'").fetchone()[0]
true_status = sum(v for k, v in statuses.items() if k != "running")
print(f"runs started: {n}; recorded: {len(runs)}; with a final status: {true_status} ({statuses})")
print(f"steps still 'running': {running_steps}; integrity_check: {integrity}")
ok = integrity == "ok" and running_steps == 0 and true_status == len(runs)
print("RESULT", "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
