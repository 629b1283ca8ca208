#!/usr/bin/env bash
# How validation scales with the number of steps: generate pipelines of N steps (a chain: step i
# reads step i-1's output, plus a shared input file) and time `mlrun status`, which validates the
# pipeline and then finds every step `never run` (no store yet, so nothing else is read).
#
#   scripts/bench/validate-scale.sh [MLRUN_BINARY] [N...]     (default: target/release/mlrun 10000 40000)
set -euo pipefail
bin=${1:-target/release/mlrun}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 40000)
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in "${sizes[@]}"; do
  dir="$work/p$n"
  mkdir -p "$dir"
  echo shared > "$dir/shared.txt"
  python3 - "$dir/pipeline.toml" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        ins = ['"shared.txt"'] + ([f'"out/s{i-1}.txt"'] if i else [])
        f.write(f'[steps.s{i}]\ncmd = "true"\ninputs = [{", ".join(ins)}]\n'
                f'outputs = ["out/s{i}.txt"]\n')
PY
  # wall time, and CPU time (user + system: steadier on a shared machine)
  (cd "$dir" && MLRUN_STORE="$dir/.store" /usr/bin/time -f '%e %U %S' -o "$work/time" \
    "$bin" status >/dev/null 2>&1) || true
  read -r wall user sys < "$work/time"
  printf '%6d steps: %6.2f s wall, %6.2f s CPU\n' "$n" "$wall" "$(echo "$user + $sys" | bc)"
done
