#!/usr/bin/env bash
# mlrun against DVC, plain bash and the hashing floor, on the same generated workloads, in one
# session (issue 7). Builds mlrun in release, installs what it needs, runs every workload for
# every tool back to back, and prints the tables and ratios that BENCHMARKS.md reports.
#
#   scripts/bench-compare.sh                      # everything (~30-40 min on a quiet 2-core box)
#   WORKLOADS="a" TOOLS="mlrun dvc" RUNS=3 scripts/bench-compare.sh     # a quick subset
#
# Workloads (scripts/bench/, copies of the shared DVC anchors, same seeds and data):
#   a  N-step chain of `cp` (default 50): first run vs the same commands in plain bash
#   b  (in a) no-op re-run, status, CLI startup
#   c  one step over a SIZE_MIB (2048) MiB file: first run, no-op, after touch; vs openssl dgst,
#      sha256sum, md5sum, cat > /dev/null
#   d  one step over NFILES (20000) x FILE_BYTES (10240) files: first run, no-op, status, touch 1,
#      modify 1; vs find | xargs sha256sum
#   e  (in c and d) peak RSS of first and no-op runs, via GNU time -v
# Tools: mlrun (default), mlrun-nostore (`run --no-store`: hash only, nothing copied into the
# object store), dvc (DVC 3 in a throwaway virtualenv), dvc-nocache (stage outputs `cache: false`).
#
# Knobs: TOOLS ("mlrun mlrun-nostore dvc"), WORKLOADS ("a c d"), RUNS (5), RSS_RUNS (3),
#   QUIET_MAX_WAIT (60: before each measurement wait up to this many seconds for other processes
#   to go below QUIET_PCT (10) % CPU; the load seen is recorded either way), N, SIZE_MIB, NFILES,
#   FILE_BYTES, DVC (an existing dvc binary; else one is installed), BENCH_ROOT
#   (${TMPDIR:-/tmp}/mlrun-bench: venv, data, results), RESULTS (a new directory per session).
# Needs ~15 GiB free under BENCH_ROOT for the default sizes: a 2 GiB file per tool, mlrun's
# stored copy, and the trash of workload d (stores and copies of 20,000 files are moved aside
# rather than deleted between timed runs, and deleted when the session ends: on ext4 without a
# journal, creating files right after deleting many is slow, which would be measured against
# whichever run came next).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$REPO/scripts/bench"
ROOT="${BENCH_ROOT:-${TMPDIR:-/tmp}/mlrun-bench}"
export WORK="${WORK:-$ROOT/work}"
export RESULTS="${RESULTS:-$ROOT/results-$(date +%Y%m%d-%H%M%S)}"
export RUNS="${RUNS:-5}" RSS_RUNS="${RSS_RUNS:-3}" QUIET_MAX_WAIT="${QUIET_MAX_WAIT:-60}"
export N="${N:-50}" SIZE_MIB="${SIZE_MIB:-2048}" NFILES="${NFILES:-20000}" FILE_BYTES="${FILE_BYTES:-10240}"
export COLD=0   # the page cache is kept hot: figures are CPU/tool cost, not disk speed
TOOLS="${TOOLS:-mlrun mlrun-nostore dvc}"
WORKLOADS="${WORKLOADS:-a c d}"
mkdir -p "$ROOT" "$WORK" "$RESULTS"
TRASH="$WORK/.trash"
trap 'rm -rf "$TRASH"' EXIT

say() { printf '\n### %s\n' "$*" >&2; }

# ---------------------------------------------------------------- prerequisites
say "prerequisites"
missing=()
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
case " $TOOLS " in *" dvc"*)
  if [ -z "${DVC:-}" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(python3-venv); fi ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "please install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
  fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

case " $TOOLS " in *" dvc"*)
  if [ -z "${DVC:-}" ]; then
    venv="$ROOT/dvc-venv"   # throwaway: delete BENCH_ROOT when done
    if ! "$venv/bin/dvc" --version >/dev/null 2>&1; then
      echo "installing DVC 3 into $venv" >&2
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q 'dvc>=3,<4' >&2
    fi
    DVC="$venv/bin/dvc"
  fi
  export DVC ;;
esac

say "building mlrun (release)"
(cd "$REPO" && cargo build --release --locked >&2)
export MLRUN="$REPO/target/release/mlrun"

# ---------------------------------------------------------------- the machine
say "machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores" \
       "(sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no))"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  dev=$(df --output=source "$WORK" | tail -1)
  echo "disk: $WORK on $dev ($(df --output=fstype "$WORK" | tail -1), $(df -h --output=size "$WORK" | tail -1 | tr -d ' '))," \
       "rotational=$(cat "/sys/block/$(basename "$dev" | sed 's/[0-9]*$//')/queue/rotational" 2>/dev/null || echo '?')"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mlrun: $("$MLRUN" --version)"
  [ -n "${DVC:-}" ] && echo "dvc: $("$DVC" --version)"
  echo "hyperfine: $(hyperfine --version)"
  echo "openssl: $(openssl version)"
  echo "sha256sum: $(sha256sum --version | head -1)"
  echo "knobs: RUNS=$RUNS RSS_RUNS=$RSS_RUNS QUIET_MAX_WAIT=$QUIET_MAX_WAIT N=$N SIZE_MIB=$SIZE_MIB NFILES=$NFILES FILE_BYTES=$FILE_BYTES TOOLS='$TOOLS' WORKLOADS='$WORKLOADS'"
} | tee "$RESULTS/machine.txt" >&2

say "SHA-256 capability of this CPU (openssl speed, single core)"
bash "$BENCH/sha_speed.sh" | tee "$RESULTS/sha_speed.txt" >&2

# ---------------------------------------------------------------- workloads
run_tool() {  # run_tool TOOL SCRIPT
  local tool="$1" script="$2"
  case "$tool" in
    mlrun) ADAPTER="$BENCH/adapters/mlrun.sh" MLRUN_NO_STORE=0 bash "$BENCH/$script" ;;
    mlrun-nostore) ADAPTER="$BENCH/adapters/mlrun.sh" MLRUN_NO_STORE=1 bash "$BENCH/$script" ;;
    dvc) ADAPTER="$BENCH/adapters/dvc.sh" DVC_OUT_CACHE=true bash "$BENCH/$script" ;;
    dvc-nocache) ADAPTER="$BENCH/adapters/dvc.sh" DVC_OUT_CACHE=false bash "$BENCH/$script" ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
}
for w in $WORKLOADS; do
  case "$w" in a) script=a_chain.sh ;; c) script=c_bigfile.sh ;; d) script=d_smallfiles.sh ;;
    *) echo "unknown workload $w (a, c or d)" >&2; exit 2 ;; esac
  # many-file stores are moved aside between runs (see above); not the 2 GiB ones of c
  if [ "$w" = c ]; then unset BENCH_TRASH; else export BENCH_TRASH="$TRASH"; fi
  for tool in $TOOLS; do
    say "workload $w: $tool"
    set +e
    run_tool "$tool" "$script" 2>&1 | tee -a "$RESULTS/log.txt" | grep -E '^FIGURE|waited|rror' >&2
    status=${PIPESTATUS[0]}
    set -e
    [ "$status" = 0 ] || { echo "workload $w failed for $tool; see $RESULTS/log.txt" >&2; exit 1; }
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/machine.txt" >&2

# ---------------------------------------------------------------- report
say "report ($RESULTS/compare.md)"
python3 "$BENCH/compare.py" "$RESULTS" | tee "$RESULTS/compare.md"
