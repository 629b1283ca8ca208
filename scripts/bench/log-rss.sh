#!/usr/bin/env bash
# Peak memory of `mlrun run` while a step prints a lot, measured with `/usr/bin/time -v` on the
# release binary, and a check that the whole log was recorded (the SHA-256 of what
# `mlrun show RUN:STEP --log stdout` prints equals that of what the step printed).
#
#   scripts/bench/log-rss.sh              # 1 GiB per case; builds target/release/mlrun if needed
#   SIZE_MB=200 scripts/bench/log-rss.sh  # smaller
#   MLRUN=path/to/mlrun scripts/bench/log-rss.sh
#
# Cases (each one step that `cat`s a prepared file, so the bytes are known in advance):
#   text    log-like lines of ~55 bytes (a training loop's output): compresses well
#   zeros   NUL bytes and not one newline (`dd` to stdout): a single endless "line"
#   random  random bytes (binary output): does not compress at all
# Goal: peak RSS <= 64 MiB whatever the step prints, and every byte recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

MLRUN="${MLRUN:-$repo/target/release/mlrun}"
SIZE_MB="${SIZE_MB:-1024}"
if [ ! -x "$MLRUN" ]; then
  cargo build --release
fi
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time (GNU time) is required" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q . && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m init
bytes=$((SIZE_MB * 1024 * 1024))

python3 - "$bytes" <<'EOF'
import sys
n = int(sys.argv[1])
with open("text.log", "wb") as f:
    written, i = 0, 0
    while written < n:
        block = "".join(
            f"{i + k:010d} epoch={(i + k) // 1000} step={(i + k) % 1000:03d} loss={1 / (1 + (i + k) % 977):.6f} lr=0.001 ok\n"
            for k in range(10000)
        ).encode()
        block = block[: n - written]
        f.write(block)
        written += len(block)
        i += 10000
EOF
head -c "$bytes" /dev/zero > zeros.log
head -c "$bytes" /dev/urandom > random.log

printf '%-7s %10s %14s %10s %14s %s\n' case printed "peak RSS" wall "kept (zstd)" "whole log recorded"
for case in text zeros random; do
  rm -rf store
  printf '[steps.%s]\ncmd = "cat %s.log"\n' "$case" "$case" > pipeline.toml
  /usr/bin/time -v -o time.txt "$MLRUN" --store store run >/dev/null 2>err.txt || {
    echo "error: the run failed" >&2; cat err.txt >&2; exit 1; }
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' time.txt)
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' time.txt)
  want=$(sha256sum < "$case.log" | cut -d' ' -f1)
  got=$("$MLRUN" --store store show "latest:$case" --log stdout | sha256sum | cut -d' ' -f1)
  kept=$(du -sb store/objects/logs | cut -f1)
  ok=$([ "$want" = "$got" ] && echo "yes (sha256 ${want:0:12})" || echo "NO: $got != $want")
  printf '%-7s %7d MiB %10.1f MiB %10s %10.1f MiB %s\n' "$case" "$SIZE_MB" \
    "$(echo "$rss_kb / 1024" | bc -l)" "$wall" "$(echo "$kept / 1048576" | bc -l)" "$ok"
done
