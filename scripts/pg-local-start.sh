#!/usr/bin/env bash
# Start a throwaway PostgreSQL 15 on loopback for mlrun's remote-record tests and for a local
# try: a fresh data directory (default /tmp/mlrun-pg, or $1), password authentication over TCP
# (scram-sha-256), a role and a database both named `mlrun`, TLS offered (`ssl = on`, plain
# connections still accepted) with a throwaway CA and server certificate for 127.0.0.1 and
# localhost made by `openssl` into the data directory; the CA is copied to DIR/ca.crt.
#
#   scripts/pg-local-start.sh [DIR]    prints MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:PORT/mlrun
#                                      and MLRUN_TEST_PG_CA=DIR/ca.crt (for sslrootcert=)
#   scripts/pg-local-stop.sh [DIR]
#
# The password is $MLRUN_PG_PASSWORD (default `mlrun-local`); pass it to clients through
# PGPASSWORD or a PGPASSFILE, never in the URL. PostgreSQL refuses to run as root, so as root
# the server runs as the `postgres` user (Debian's postgresql package creates it).
set -euo pipefail

dir=${1:-/tmp/mlrun-pg}
port=${MLRUN_PG_PORT:-54329}
password=${MLRUN_PG_PASSWORD:-mlrun-local}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-local-start: PostgreSQL server not found; install Debian's postgresql" >&2
  exit 1
fi

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi

if [ ! -f "$data/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pwfile"; fi
  as_server_user "$bin/initdb" -D "$data" -U mlrun --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
  rm -f "$pwfile"
fi

# A throwaway CA and a server certificate it signed (PostgreSQL reads server.crt/server.key from
# the data directory; the key must be the server user's alone).
if [ ! -f "$data/server.crt" ]; then
  command -v openssl >/dev/null || { echo "pg-local-start: openssl not found" >&2; exit 1; }
  tls=$(mktemp -d)
  cat >"$tls/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = mlrun throwaway test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -config "$tls/openssl.cnf" \
    -extensions ca -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -config "$tls/openssl.cnf" -subj /CN=127.0.0.1 \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$tls/openssl.cnf" -extensions server \
    -out "$tls/server.crt" 2>/dev/null
  chmod 0600 "$tls/server.key"
  cp -p "$tls/server.key" "$tls/server.crt" "$tls/ca.crt" "$data/"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$data/server.key" "$data/server.crt" "$data/ca.crt"; fi
  rm -rf "$tls"
fi
cp "$data/ca.crt" "$dir/ca.crt"
chmod 0644 "$dir/ca.crt"

if ! as_server_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_server_user "$bin/pg_ctl" -D "$data" -w -t 60 -l "$dir/server.log" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off -c ssl=on" start >/dev/null
fi

# The `mlrun` database (the superuser role is `mlrun`, so `psql -h DIR` connects as it).
if ! as_server_user "$bin/psql" -h "$dir" -p "$port" -U mlrun -d postgres -Atqc \
  "SELECT 1 FROM pg_database WHERE datname = 'mlrun'" | grep -q 1; then
  as_server_user "$bin/createdb" -h "$dir" -p "$port" -U mlrun mlrun
fi
echo "MLRUN_REMOTE_DB=postgres://mlrun@127.0.0.1:$port/mlrun"
echo "MLRUN_TEST_PG_CA=$dir/ca.crt"
