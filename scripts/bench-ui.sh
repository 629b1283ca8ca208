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
out=$(mktemp)
target/release/mlrun --store "$dir" ui --port 0 >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 200); do grep -q "serving" "$out" && break; sleep 0.05; done
url=$(sed -n 's/.*serving \(http:[^ ]*\) .*/\1/p' "$out")
url=${url%/}
run=$(curl -s "$url/runs?per=1" | grep -o 'href="/run/[0-9a-f]*"' | sed 's/.*\/run\///; s/"//' | sed -n 1p)
model=model   # the synthetic chains' model directory
measure() {
  local name=$1 path=$2
  for _ in 1 2 3; do curl -s -o /dev/null "$url$path"; done
  local times
  times=$(for _ in $(seq 1 20); do curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$url$path"; done)
  local codes sorted
  codes=$(echo "$times" | awk '$1 != 200 { print $1 }' | sort -u | tr '\n' ' ')
  sorted=$(echo "$times" | awk '{ printf "%.1f\n", $2 * 1000 }' | sort -n)
  printf "%-44s median %7s ms   max %7s ms%s\n" "$name" "$(echo "$sorted" | sed -n 10p)" \
    "$(echo "$sorted" | tail -1)" "${codes:+  (HTTP $codes)}"
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
# first contentful paint in headless Chromium (needs chromium and chromium-driver)
if command -v chromedriver >/dev/null; then
  python3 scripts/bench-ui-fcp.py "$url/runs" 10
  python3 scripts/bench-ui-fcp.py "$url/lineage?path=$model" 5
fi
