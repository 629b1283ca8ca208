#!/usr/bin/env bash
# Whole-process timings of the read commands (the real binary, with process start and store open)
# on a synthetic store of 10,000 runs and 1,000,000 io edges built by examples/synth_store.rs.
# Needs hyperfine. Usage: scripts/bench-cli.sh [STORE_DIR]   (default: target/synth-store)
# The issue's targets: lineage < 50 ms, runs (10,000) < 200 ms, diff < 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)"; exit 1; }
cargo build --release --quiet --bin mlrun --example synth_store
dir=${1:-target/synth-store}
if [ ! -f "$dir/lineage.db" ]; then
  target/release/examples/synth_store "$dir" --runs 10000 --chain 20 | tee "$dir.summary"
fi
end=$(sed -n 's/^chain end: model@\([0-9a-f]*\).*/\1/p' "$dir.summary")
last=$(sed -n 's/^newest run: //p' "$dir.summary")
export MLRUN_STORE=$dir NO_COLOR=1
m=target/release/mlrun
"$m" lineage "model@$end" --json | python3 -c 'import json,sys; g=json.load(sys.stdin); print("lineage upstream:", len(g["nodes"]), "nodes,", len(g["edges"]), "edges")'
hyperfine -N --warmup 3 --min-runs 20 --export-markdown target/bench-cli.md \
  -n "lineage model@RUN (tree)" "$m lineage model@$end" \
  -n "lineage model@RUN --json" "$m lineage model@$end --json" \
  -n "lineage model@RUN --depth 3" "$m lineage model@$end --depth 3" \
  -n "show model@RUN (card)" "$m show model@$end" \
  -n "runs -n 0 (10,000 runs)" "$m runs -n 0" \
  -n "runs -n 0 --json" "$m runs -n 0 --json" \
  -n "runs --metric --sort" "$m runs -n 0 --metric accuracy>0.9 --sort accuracy" \
  -n "diff RUN RUN" "$m diff $end $last" \
  -n "diff RUN RUN --json" "$m diff $end $last --json"
cat target/bench-cli.md
