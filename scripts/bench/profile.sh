#!/usr/bin/env bash
# Where mlrun's time goes, for BENCHMARKS.md: profiles of the release binary on the same
# generated workloads as bench-compare.sh.
#
#   scripts/bench/profile.sh            # needs valgrind; perf (linux-perf) for the d profiles
#
# 1. callgrind (instructions, user space of the mlrun process only; the steps' own processes
#    are not traced) on the 50-step chain: first run and no-op re-run. Under valgrind the CPU's
#    SHA extensions are hidden, so SHA-256 runs in software there and its share is inflated
#    (it is small in these two runs).
# 2. perf cpu-clock sampling with call graphs (kernel time included; this machine's VM has no
#    hardware counters, so `perf stat -e instructions` does not work, but sampling does) on
#    workload d: first run with --no-store and the no-op re-run, summarised by phase with a
#    timeline (scripts/bench/perf_phases.py).
# Knobs: N (50), NFILES (20000), BENCH_ROOT (${TMPDIR:-/tmp}/mlrun-bench), OUT (results dir).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH="$REPO/scripts/bench"
ROOT="${BENCH_ROOT:-${TMPDIR:-/tmp}/mlrun-bench}"
OUT="${OUT:-$ROOT/profile-$(date +%Y%m%d-%H%M%S)}"
export WORK="$ROOT/profile-work" RESULTS="$OUT/workload-logs" N="${N:-50}" NFILES="${NFILES:-20000}"
export ADAPTER="$BENCH/adapters/mlrun.sh" MLRUN="$REPO/target/release/mlrun" NO_COLOR=1
mkdir -p "$OUT" "$WORK"
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
(cd "$REPO" && cargo build --release --locked >&2)

top_functions() {  # top_functions CALLGRIND_FILE: inclusive cost of mlrun's own functions
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null \
    | grep -E 'PROGRAM TOTALS|mlrun::[A-Za-z_:<>]+(::\{\{closure\}\})? \[|sqlite3Prepare |sqlite3_step |git_status_list_new |git_repository_open_ext ' \
    | sed -E 's#/[^ ]*/(src/[^:]*):#\1:#; s# \[[^]]*\]##' | awk '!seen[$0]++' | head -40
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/summary.txt"
echo "== callgrind: ${N}-step chain, first run and no-op" | tee -a "$OUT/summary.txt"
MLRUN_NO_STORE=0 bash "$BENCH/a_chain.sh" __setup >/dev/null 2>&1
(
  cd "$WORK/chain$N-mlrun"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/chain.first.cg" "$MLRUN" run >/dev/null 2>&1
  valgrind --tool=callgrind --callgrind-out-file="$OUT/chain.noop.cg" "$MLRUN" run >/dev/null 2>&1
)
for k in first noop; do
  echo "-- chain $k (Ir = instructions executed, inclusive)" | tee -a "$OUT/summary.txt"
  top_functions "$OUT/chain.$k.cg" | tee -a "$OUT/summary.txt"
done

if perf record -q -e cpu-clock -o "$OUT/probe.data" true >/dev/null 2>&1; then
  echo "== perf cpu-clock: workload d ($NFILES files), first run --no-store and no-op" | tee -a "$OUT/summary.txt"
  MLRUN_NO_STORE=1 bash "$BENCH/d_smallfiles.sh" __setup >/dev/null 2>&1
  # files written less than 2 s before they are hashed get no trusted stat-cache entry (the
  # racy rule), so freshly generated data would make the no-op rehash everything
  sleep 3
  (
    cd "$WORK/small$NFILES-mlrun-nostore"
    find data -type f -exec cat {} + > /dev/null   # page cache hot, as in bench-compare
    perf record -q -e cpu-clock -F 2000 --call-graph dwarf,16384 -o "$OUT/d.first.data" "$MLRUN" run --no-store >/dev/null 2>&1
    perf record -q -e cpu-clock -F 4000 --call-graph dwarf,16384 -o "$OUT/d.noop.data" "$MLRUN" run --no-store >/dev/null 2>&1
  )
  for k in first noop; do
    echo "-- d $k" | tee -a "$OUT/summary.txt"
    perf script -i "$OUT/d.$k.data" 2>/dev/null | python3 "$BENCH/perf_phases.py" 0.025 | tee -a "$OUT/summary.txt"
  done
else
  echo "perf cannot sample here; skipped the d profiles" | tee -a "$OUT/summary.txt"
fi
echo "profiles and summary in $OUT" >&2
