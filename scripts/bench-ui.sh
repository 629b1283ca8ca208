#!/usr/bin/env bash
# Server time of `mlrun ui` pages on the synthetic store of 10,000 runs and 1,000,000 io edges
# (examples/synth_store.rs): each page fetched 20 times with curl after 3 warm-ups; prints the
# median and the slowest `time_total` (a loopback request: server time plus under 1 ms).
# Usage: scripts/bench-ui.sh [STORE_DIR]   (default: target/synth-store)
# The issue's targets: runs page over 10,000 runs <= 50 ms; lineage of an artifact <= 200 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin mlrun --example synth_store
dir=${1:-target/synth-store}
if [ ! -f "$dir/lineage.db" ]; then
  target/release/examples/synth_store "$dir" --runs 10000 --chain 20 | tee "$dir.summary"
fi
end=$(sed -n 's/^chain end: model@\([0-9a-f]*\).*/\1/p' "$dir.summary")
out=$(mktemp)
target/release/mlrun --store "$dir" ui --port 0 >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 200); do grep -q "serving" "$out" && break; sleep 0.05; done
url=$(sed -n 's/.*serving \(http:[^ ]*\) .*/\1/p' "$out")
url=${url%/}
run=$(curl -s "$url/runs?per=1" | sed -n 's/.*href="\/run\/\([0-9a-f]*\)".*/\1/p' | head -1)
model=$(curl -s "$url/lineage" | grep -o 'href="/lineage?path=[^"]*"' | head -1 | sed 's/href="\/lineage?path=//; s/"$//')
measure() {
  local name=$1 path=$2
  for _ in 1 2 3; do curl -s -o /dev/null "$url$path"; done
  local times
  times=$(for _ in $(seq 1 20); do curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$url$path"; done)
  echo "$times" | awk -v n="$name" '
    $1 != 200 { bad = $1 }
    { t[NR] = $2 * 1000 }
    END {
      asort(t); printf "%-44s median %7.1f ms   max %7.1f ms%s\n", n, t[int((NR + 1) / 2)], t[NR], (bad ? "  (HTTP " bad ")" : "")
    }'
}
echo "store: $dir ($(du -sh "$dir/lineage.db" | cut -f1)); server: $url"
measure "runs (page 1 of 10,000, 50 per page)" "/runs"
measure "runs sorted by a metric" "/runs?sort=accuracy"
measure "runs filtered by metric, sorted" "/runs?metric=accuracy%3E0.9&sort=accuracy"
measure "runs page 20" "/runs?page=20"
measure "runs 500 per page" "/runs?per=500"
measure "run page" "/run/$run"
measure "compare 2 runs" "/compare?runs=$run,latest~1"
measure "lineage of $model (depth 4)" "/lineage?path=$model"
measure "lineage of $model (depth all)" "/lineage?path=$model&depth=all"
measure "model card of $model" "/artifact?path=$model"
measure "lineage of the chain end (depth 4)" "/lineage?path=model&hash=$end"
