#!/usr/bin/env bash
# What sending lineage live costs a run: a 50-step chain of no-op steps run with `--force`
# (every step runs), measured with hyperfine in one invocation in three ways:
#   off   no OpenLineage server configured (the baseline)
#   up    a local receiver that answers 200 (scripts/bench/openlineage-receiver.py)
#   down  a URL where nothing listens (connection refused)
# and reported as per-step overhead over the baseline: (mean - mean_off) / 50.
# Targets (issue "Send lineage live"): up <= 0.5 ms per step, down <= 1 ms per step.
#
#   scripts/bench/openlineage-overhead.sh            # builds target/release/mlrun if needed
#   MLRUN=path/to/mlrun RUNS=20 scripts/bench/openlineage-overhead.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
MLRUN="${MLRUN:-$repo/target/release/mlrun}"
RUNS="${RUNS:-15}"
STEPS=50
if [ ! -x "$MLRUN" ]; then
  cargo build --release
fi
for tool in hyperfine python3 git; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

work=$(mktemp -d)
receiver_pid=
cleanup() {
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$repo/scripts/bench/openlineage-receiver.py" 0 >"$work/port" &
receiver_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
up_port=$(cat "$work/port")
down_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

for v in off up down; do
  mkdir -p "$work/$v"
  (
    cd "$work/$v"
    git init -q . && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
    {
      echo '[pipeline]'
      echo 'name = "chain"'
      prev=
      for i in $(seq 1 $STEPS); do
        echo "[steps.s$i]"
        if [ -z "$prev" ]; then
          echo "cmd = \"echo $i > f$i\""
        else
          echo "cmd = \"cat f$prev > f$i\""
          echo "inputs = [\"f$prev\"]"
        fi
        echo "outputs = [\"f$i\"]"
        prev=$i
      done
    } >pipeline.toml
    case $v in
      up) printf '[openlineage]\nurl = "http://127.0.0.1:%s"\n' "$up_port" >mlrun.toml ;;
      down) printf '[openlineage]\nurl = "http://127.0.0.1:%s"\n' "$down_port" >mlrun.toml ;;
    esac
    "$MLRUN" pipeline.toml >/dev/null 2>&1 || true
  )
done

# `down` would queue more events on every run; the outbox is emptied before each one so all
# runs do the same work (sending fails at once: the port is closed).
hyperfine --warmup 2 --runs "$RUNS" --export-json "$work/h.json" -N \
  --prepare "bash -c 'sqlite3 $work/down/.mlrun/lineage.db \"DELETE FROM openlineage_outbox\" || true'" \
  -n off "bash -c 'cd $work/off && $MLRUN pipeline.toml --force >/dev/null 2>&1'" \
  -n up "bash -c 'cd $work/up && $MLRUN pipeline.toml --force >/dev/null 2>&1'" \
  -n down "bash -c 'cd $work/down && $MLRUN pipeline.toml --force >/dev/null 2>&1'" >&2

python3 - "$work/h.json" "$STEPS" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
steps = int(sys.argv[2])
off = r["off"]["mean"]
print(f"50-step chain, --force: off {off*1000:.1f} ms")
for name, target in (("up", 0.5), ("down", 1.0)):
    m = r[name]["mean"]
    per = (m - off) * 1000 / steps
    print(f"  {name:4} {m*1000:.1f} ms = {m/off:.3f}x off, {per:+.3f} ms per step (target <= {target} ms)")
PY
