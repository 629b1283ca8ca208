#!/usr/bin/env bash
# `mlrun compare` over 1,000 runs with 20 params and 10 metrics (issue 14: <= 100 ms).
#
# The store is made by mlrun itself: one real run of a pipeline with 20 params whose step
# reports 10 metrics, then that run's rows copied 999 times with other param and metric values
# (SQL on the store mlrun wrote, so the schema and indexes are exactly mlrun's). Timed with
# hyperfine when installed, else with the best of 20 runs of the release binary.
# Usage: scripts/bench-compare-runs.sh [WORK_DIR]   (default: target/bench-compare-runs)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin mlrun
m=$PWD/target/release/mlrun
work=${1:-target/bench-compare-runs}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
{
  echo '[pipeline]'
  echo 'name = "bench"'
  echo '[params]'
  for i in $(seq -w 1 20); do echo "p$i = $((10#$i))"; done
  echo '[steps.train]'
  printf 'cmd = "'
  for i in $(seq -w 1 10); do printf 'echo m%s=0.%s >> $MLRUN_METRICS; ' "$i" "$i"; done
  echo 'echo ok > model.txt"'
  echo 'outputs = ["model.txt"]'
  echo 'params = ["*"]'
} > pipeline.toml
"$m" pipeline.toml >/dev/null
python3 - <<'PY'
import json, sqlite3
db = sqlite3.connect(".mlrun/lineage.db")
cols = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
run = dict(zip(cols, db.execute("SELECT * FROM runs").fetchone()))
ecols = [r[1] for r in db.execute("PRAGMA table_info(step_execs)") if r[1] != "id"]
exe = dict(zip(ecols, db.execute(f"SELECT {','.join(ecols)} FROM step_execs").fetchone()))
params = json.loads(run["params"])
with db:
    for n in range(1, 1000):
        r = dict(run)
        r["id"] = "%012x7%019x" % (int(run["id"][:12], 16) + n * 1000, n)
        r["started_at"] = run["started_at"] + n * 1000
        r["ended_at"] = r["started_at"] + 500
        # every third param varies between runs; the others stay as in pipeline.toml
        p = {k: (v * (n % 7 + 1) if i % 3 == 0 else v) for i, (k, v) in enumerate(sorted(params.items()))}
        r["params"] = json.dumps(p)
        db.execute(f"INSERT INTO runs ({','.join(r)}) VALUES ({','.join('?' * len(r))})", list(r.values()))
        e = dict(exe, run_id=r["id"], started_at=r["started_at"], ended_at=r["ended_at"])
        cur = db.execute(f"INSERT INTO step_execs ({','.join(e)}) VALUES ({','.join('?' * len(e))})", list(e.values()))
        for i in range(1, 11):
            db.execute("INSERT INTO metrics (step_exec, key, value, source) VALUES (?, ?, ?, 'bench')",
                       (cur.lastrowid, "m%02d" % i, ((n * 7919 * i) % 1000) / 1000))
print("runs:", db.execute("SELECT count(*) FROM runs").fetchone()[0],
      "metrics rows:", db.execute("SELECT count(*) FROM metrics").fetchone()[0])
PY
export NO_COLOR=1
"$m" compare -n 0 | head -4
echo "rows: $("$m" compare -n 0 --csv | tail -n +2 | wc -l)"
cmds=("$m compare -n 0" "$m compare -n 0 --all" "$m compare -n 0 --sort m03" "$m compare -n 0 --json" "$m compare -n 0 --csv")
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 --min-runs 20 "${cmds[@]}"
else
  for c in "${cmds[@]}"; do
    python3 - "$c" <<'PY'
import subprocess, sys, time
cmd = sys.argv[1].split()
best = min((lambda t: (subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(20))
print(f"{' '.join(cmd[1:]):40} best of 20: {best * 1000:.1f} ms")
PY
  done
fi
