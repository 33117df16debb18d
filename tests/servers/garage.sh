#!/usr/bin/env bash
# A single-node garage (S3-compatible, persistent) for tests, everything bound to 127.0.0.1.
#
#   bash tests/servers/garage.sh start DIR   # config, data and logs in DIR
#   bash tests/servers/garage.sh stop DIR    # kills exactly the PID in DIR/garage.pid
#
# `start` prints, and writes to DIR/env, the lines
#   endpoint=http://127.0.0.1:PORT region=garage bucket=... access_key_id=... secret_access_key=...
# (one per line). A second `start` on the same DIR restarts the same node with its data.
# garage ignores conditional headers (If-None-Match): use moto for create-only tests.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

GARAGE=${GARAGE:-$(command -v garage || true)}
if [ -z "$GARAGE" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
    GARAGE="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
fi

stop() {
    local pidfile="$dir/garage.pid"
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    [ -n "$GARAGE" ] || { echo "garage not found: run bash tests/servers/install.sh" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    stop
    local cfg="$dir/garage.toml"
    if [ ! -f "$cfg" ]; then
        local rpc s3 admin secret token
        rpc=$(free_port); s3=$(free_port); admin=$(free_port)
        secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
        token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
        (umask 077; cat > "$cfg" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$token"
EOF
        )
    fi
    local g=("$GARAGE" -c "$cfg")
    nohup "${g[@]}" server >>"$dir/garage.log" 2>&1 </dev/null &
    echo $! >"$dir/garage.pid"
    local pid
    pid=$(cat "$dir/garage.pid")

    # Wait for the node to answer on RPC.
    local node=""
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "garage exited; log:" >&2; tail -20 "$dir/garage.log" >&2; exit 1
        fi
        if node=$("${g[@]}" node id -q 2>/dev/null) && "${g[@]}" status >/dev/null 2>&1; then
            break
        fi
        node=""
        sleep 0.2
    done
    [ -n "$node" ] || { echo "garage did not answer; log:" >&2; tail -20 "$dir/garage.log" >&2; stop; exit 1; }
    local id=${node%%@*}

    if [ ! -f "$dir/env" ]; then
        "${g[@]}" layout assign -z dc1 -c 1G "$id" >/dev/null
        "${g[@]}" layout apply --version 1 >/dev/null
        local bucket=arkflow-test
        # The bucket operations need the applied layout; retry briefly while it propagates.
        for _ in $(seq 1 50); do
            "${g[@]}" bucket create "$bucket" >/dev/null 2>&1 && break
            sleep 0.2
        done
        "${g[@]}" bucket info "$bucket" >/dev/null
        local key_out key_id key_secret
        key_out=$("${g[@]}" key create arkflow-test-key)
        key_id=$(printf '%s\n' "$key_out" | awk -F': *' '/^Key ID/ {print $2; exit}')
        key_secret=$(printf '%s\n' "$key_out" | awk -F': *' '/^Secret key/ {print $2; exit}')
        [ -n "$key_id" ] && [ -n "$key_secret" ] || { echo "cannot parse 'garage key create' output" >&2; stop; exit 1; }
        "${g[@]}" bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
        local s3port
        s3port=$(sed -n '/^\[s3_api\]/,/^\[/ s/^api_bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
        (umask 077; cat >"$dir/env.tmp" <<EOF
endpoint=http://127.0.0.1:$s3port
region=garage
bucket=$bucket
access_key_id=$key_id
secret_access_key=$key_secret
EOF
        )
        mv "$dir/env.tmp" "$dir/env"
    fi
    cat "$dir/env"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
