#!/usr/bin/env bash
# A 3 x 3 sweep over a 4-step pipeline whose first two steps read no swept param (issue 14's
# figure): the wall time of `mlrun run --sweep -j 2` against running the same commands by hand,
# the two shared steps once and then the 9 variants' two steps, two variants at a time
# (`xargs -P 2`), each variant in a directory of its own. Every step sleeps STEP seconds, so
# the ratio is mlrun's overhead (copying the project, hashing, restoring the shared outputs,
# recording) over the steps' own time. Each side runs REPEAT times from scratch (no store).
# That the shared steps run once is asserted by the test
# `sweep::a_sweep_runs_each_combination_once_and_the_shared_steps_once`.
#
#   scripts/bench-sweep.sh                 # STEP=0.5 s, REPEAT=3
#   STEP=1 REPEAT=5 scripts/bench-sweep.sh
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
STEP="${STEP:-0.5}" REPEAT="${REPEAT:-3}"
(cd "$REPO" && cargo build --release --quiet)
MLRUN="$REPO/target/release/mlrun"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlrun-sweep.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

project() {
  rm -rf "$1" && mkdir -p "$1" && cd "$1"
  git init -q . && printf '/.mlrun/\n' > .gitignore
  head -c 100000 /dev/urandom | base64 > raw.csv
  cat > pipeline.toml <<TOML
[pipeline]
name = "sweep-bench"
[params]
lr = 0.1
depth = 3
[steps.a]
cmd = "sleep $STEP; mkdir -p data && cat raw.csv > data/a.txt"
inputs = ["raw.csv"]
outputs = ["data/"]
[steps.b]
cmd = "sleep $STEP; cat data/a.txt data/a.txt > feat.txt"
inputs = ["data/"]
outputs = ["feat.txt"]
[steps.c]
cmd = "sleep $STEP; cat feat.txt > model.txt; echo {params.lr} {params.depth} >> model.txt"
inputs = ["feat.txt"]
outputs = ["model.txt"]
params = ["lr", "depth"]
[steps.d]
cmd = "sleep $STEP; cat model.txt > eval.txt; echo acc={params.lr} >> eval.metrics"
inputs = ["model.txt"]
outputs = ["eval.txt"]
metrics = ["eval.metrics"]
params = ["lr", "depth"]
TOML
  git add -A && git -c user.email=b@b -c user.name=bench commit -qm sweep
}

# by hand: the same commands, each variant's two steps in a directory of its own
cat > "$WORK/variant.sh" <<SH
#!/bin/sh
lr=\$1 depth=\$2 d="v-\$1-\$2"
mkdir -p "\$d" && cp -r data feat.txt "\$d"/ && cd "\$d" || exit 1
sleep $STEP; cat feat.txt > model.txt; echo "\$lr \$depth" >> model.txt
sleep $STEP; cat model.txt > eval.txt; echo "acc=\$lr" >> eval.metrics
SH

now() { python3 -c 'import time; print(time.monotonic())'; }
median() { python3 -c 'import sys, statistics; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }

sweep_times=() hand_times=()
for r in $(seq 1 "$REPEAT"); do
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  project "$WORK/mlrun"
  t0=$(now)
  "$MLRUN" run --sweep -p lr=0.1,0.2,0.5 -p depth=3,5,7 -j 2 --color never > "$WORK/sweep.log"
  t1=$(now)
  sweep_times+=("$(python3 -c "print($t1 - $t0)")")
  shared=$(sqlite3 .mlrun/lineage.db "SELECT count(*) FROM step_execs WHERE step IN ('a','b') AND status = 'succeeded'" 2>/dev/null || echo "?")
  echo "sweep $r: ${sweep_times[-1]} s (shared steps executed: $shared)" >&2

  project "$WORK/hand"
  t0=$(now)
  sh -c "sleep $STEP; mkdir -p data && cat raw.csv > data/a.txt"
  sh -c "sleep $STEP; cat data/a.txt data/a.txt > feat.txt"
  for lr in 0.1 0.2 0.5; do for depth in 3 5 7; do echo "$lr $depth"; done; done |
    xargs -P 2 -L 1 sh "$WORK/variant.sh"
  t1=$(now)
  hand_times+=("$(python3 -c "print($t1 - $t0)")")
  echo "by hand $r: ${hand_times[-1]} s" >&2
done
s=$(median "${sweep_times[@]}") h=$(median "${hand_times[@]}")
echo "sweep (-j 2):      median $s s  (${sweep_times[*]})"
echo "by hand (-P 2):    median $h s  (${hand_times[*]})"
python3 -c "r = $s / $h; print(f'ratio sweep / by hand: {r:.3f} (target <= 1.10: {\"met\" if r <= 1.10 else \"NOT met\"})')"
