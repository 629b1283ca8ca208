#!/usr/bin/env bash
# Figures for the Slurm executor, on a running cluster (scripts/slurm-local-start.sh, with
# SLURM_CONF exported):
#  1. mlrun's overhead per Slurm step over `sbatch --wait` of the same command (target ≤ 1 s):
#     the median of N runs of a one-step pipeline (`mlrun run --force`, whole command: start,
#     hashing, submission, polling, record) minus the median of N `sbatch --wait --wrap`.
#  2. 50 independent one-second steps with `-j 50`, against submitting the same 50 jobs by hand
#     and waiting for all of them (target ≤ 2×).
#
#   scripts/bench-slurm.sh [path/to/mlrun] [N]
set -euo pipefail
mlrun=$(realpath "${1:-target/release/mlrun}")
n=${2:-5}
: "${SLURM_CONF:?start a cluster with scripts/slurm-local-start.sh and export SLURM_CONF}"
work=$(mktemp -d "${TMPDIR:-/tmp}/mlrun-bench-slurm.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q .

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# 1. one step
printf '[steps.one]\nexecutor = "slurm"\ncmd = "true"\n' >pipeline.toml
"$mlrun" run >/dev/null 2>&1 # warm: store created, first record written
for _ in $(seq "$n"); do
  t0=$(now); sbatch --wait --quiet --output=/dev/null --wrap true; t1=$(now)
  echo "$t1 - $t0" | bc
done | median >sbatch.txt
# sbatch --wait polls the controller at its own pace (seconds); the scheduler's own cost is
# better seen by submitting and asking every 100 ms
for _ in $(seq "$n"); do
  t0=$(now); id=$(sbatch --parsable --output=/dev/null --wrap true)
  while squeue -h -j "$id" -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null | grep -q .; do sleep 0.1; done
  t1=$(now)
  echo "$t1 - $t0" | bc
done | median >fast.txt
for _ in $(seq "$n"); do
  t0=$(now); "$mlrun" run --force >/dev/null 2>&1; t1=$(now)
  echo "$t1 - $t0" | bc
done | median >mlrun.txt
s=$(cat sbatch.txt); f=$(cat fast.txt); m=$(cat mlrun.txt)
printf 'one step     sbatch --wait: %.2fs   mlrun run: %.2fs   overhead: %.2fs (target <= 1s)\n' \
  "$s" "$m" "$(echo "$m - $s" | bc)"
printf '             sbatch + squeue every 100 ms: %.2fs   overhead over that: %.2fs\n' \
  "$f" "$(echo "$m - $f" | bc)"

# 2. fifty independent one-second steps
{
  echo '[pipeline]'
  echo 'executor = "slurm"'
  for i in $(seq 50); do printf '[steps.s%02d]\ncmd = "sleep 1"\n' "$i"; done
} >pipeline.toml
t0=$(now)
ids=()
for _ in $(seq 50); do ids+=("$(sbatch --parsable --output=/dev/null --wrap 'sleep 1')"); done
list=$(IFS=,; echo "${ids[*]}")
while squeue -h -j "$list" -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null | grep -q .; do sleep 0.2; done
t1=$(now)
by_hand=$(echo "$t1 - $t0" | bc)
t0=$(now); "$mlrun" run --force -j 50 >/dev/null 2>&1; t1=$(now)
with_mlrun=$(echo "$t1 - $t0" | bc)
printf '50 x 1s      by hand: %.2fs   mlrun -j 50: %.2fs   ratio: %.2fx (target <= 2x)\n' \
  "$by_hand" "$with_mlrun" "$(echo "$with_mlrun / $by_hand" | bc -l)"
