#!/usr/bin/env bash
# `mlrun run train --dry-run` on a 50-step chain (issue 14's figure: <= 10 ms), against
# `mlrun status` on the same project in the same session as the baseline. Whole processes,
# repeated by hyperfine after warm-up runs; the chain has been run once, so every step is
# up to date and the stat cache is warm, as in daily use.
#
#   scripts/bench-dry-run.sh              # N=50 steps, RUNS=50 timed runs each
#   N=200 RUNS=20 scripts/bench-dry-run.sh
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
N="${N:-50}" RUNS="${RUNS:-50}"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
(cd "$REPO" && cargo build --release --quiet)
MLRUN="$REPO/target/release/mlrun"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlrun-dry-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q . && printf '/.mlrun/\n' > .gitignore
head -c 4096 /dev/urandom > s0.bin
{
  echo '[pipeline]'; echo 'name = "chain"'
  for i in $(seq 1 "$N"); do
    name="s$i"; [ "$i" = "$N" ] && name="train"
    echo "[steps.$name]"
    echo "cmd = \"cp s$((i-1)).bin s$i.bin\""
    echo "inputs = [\"s$((i-1)).bin\"]"
    echo "outputs = [\"s$i.bin\"]"
  done
} > pipeline.toml
git add -A && git -c user.email=b@b -c user.name=bench commit -qm chain
"$MLRUN" run --color never > /dev/null
# the stat cache trusts entries older than 2 s only: let them age, then warm it once
sleep 3
"$MLRUN" status > /dev/null
"$MLRUN" run train --dry-run | tail -1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$WORK/dry-run.json" \
  -n "run train --dry-run" "$MLRUN run train --dry-run" \
  -n "status" "$MLRUN status"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/dry-run.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, s = r["run train --dry-run"], r["status"]
ms = lambda x: x * 1000
print(f"dry-run: mean {ms(d['mean']):.2f} ms, median {ms(d['median']):.2f} ms (min {ms(d['min']):.2f}, max {ms(d['max']):.2f})")
print(f"status:  mean {ms(s['mean']):.2f} ms, median {ms(s['median']):.2f} ms (min {ms(s['min']):.2f}, max {ms(s['max']):.2f})")
print(f"target <= 10 ms: {'met' if d['median'] * 1000 <= 10 else 'NOT met'} (median)")
PY
