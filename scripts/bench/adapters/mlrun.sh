# shellcheck shell=bash
# Benchmark adapter for mlrun, following the contract of adapters/dvc.sh (tool_name, tool_init,
# tool_stage, tool_repro_cmd, ...). Used by scripts/bench-compare.sh.
#
#   MLRUN=path/to/mlrun   the binary under test (default: target/release/mlrun of this repo)
#   MLRUN_NO_STORE=1      run with --no-store (hash only: inputs and outputs are not copied
#                         into the object store); results are labelled mlrun-nostore
#   BENCH_TRASH=DIR       move the previous store into DIR instead of deleting it (the caller
#                         empties DIR later, outside any measurement). On ext4 without a journal,
#                         creating files soon after deleting many is slow (the inode allocator
#                         skips recently deleted inodes), so deleting the last run's 20,000 stored
#                         objects right before a timed first run would slow that run down.

MLRUN="${MLRUN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/target/release/mlrun}"
MLRUN_NO_STORE="${MLRUN_NO_STORE:-0}"
export NO_COLOR=1

tool_name() { if [ "$MLRUN_NO_STORE" = 1 ]; then echo mlrun-nostore; else echo mlrun; fi; }
tool_version() { "$MLRUN" --version; }

tool_init() {
  git init -q .
  git commit -q --allow-empty -m init
}

# everything mlrun keeps lives in .mlrun/ beside pipeline.toml
tool_reset() {
  if [ -n "${BENCH_TRASH:-}" ] && [ -d .mlrun ]; then
    mkdir -p "$BENCH_TRASH" && mv .mlrun "$BENCH_TRASH/mlrun.$$.$RANDOM$RANDOM"
  fi
  rm -rf .git .gitignore pipeline.toml .mlrun
}

tool_pipeline_begin() { printf '[pipeline]\nname = "bench"\n\n' > pipeline.toml; }

tool_stage() {
  local name="$1" cmd="$2" deps="$3" outs="$4" p sep
  {
    printf '[steps.%s]\ncmd = "%s"\n' "$name" "$cmd"
    printf 'inputs = ['; sep=; for p in $deps; do printf '%s"%s"' "$sep" "$p"; sep=', '; done; printf ']\n'
    printf 'outputs = ['; sep=; for p in $outs; do printf '%s"%s"' "$sep" "$p"; sep=', '; done; printf ']\n\n'
  } >> pipeline.toml
}

tool_pipeline_end() { git add pipeline.toml >/dev/null && git commit -qm pipeline; }

tool_repro_cmd() { if [ "$MLRUN_NO_STORE" = 1 ]; then echo "$MLRUN run --no-store"; else echo "$MLRUN run"; fi; }
tool_status_cmd() { echo "$MLRUN status"; }
tool_startup_cmd() { echo "$MLRUN --version"; }
