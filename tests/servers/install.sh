#!/usr/bin/env bash
# Installs the servers the tests start on 127.0.0.1, when missing:
#   moto_server  (PyPI moto[server], ~30 s)  - S3, in memory, honours If-None-Match: *
#   garage       (crates.io garage, ~8-15 min cold build) - S3, persistent, ignores conditional headers
#   tansu        (crates.io tansu 0.6.0, ~10 min cold build) - Kafka protocol, sqlite storage, no EndTxn
#   postgresql   (Debian's package, ~1 min) - the postgres output's tests start their own cluster
#   mosquitto    (Debian's package, seconds) - MQTT broker for the mqtt input and output
#   nats-server  (Debian's package, seconds) - NATS with JetStream for the nats input and output
#   redis-server (Debian's package, seconds) - for the redis output
#   karapace     (a vendored wheel + PyPI, ~1 min) - schema registry for the codec tests
# Idempotent and quick when all are present. Prints where each one is.
set -euo pipefail

GARAGE_VERSION=2.5.0   # 2.5 builds with Rust 1.95 (see TOOLCHAINS.md)
MOTO_SPEC='moto[server]>=5.2,<6'

# --- moto -------------------------------------------------------------------------------------
moto_ok() { python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; }
if ! moto_ok; then
    echo "installing $MOTO_SPEC ..."
    # A system Python with PEP 668 (Debian 12) refuses plain pip installs: fall back to --user.
    python3 -m pip install --quiet "$MOTO_SPEC" ||
        python3 -m pip install --quiet --user --break-system-packages "$MOTO_SPEC"
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    moto_ok || { echo "moto installed but not importable by python3" >&2; exit 1; }
fi
if moto_bin=$(command -v moto_server); then
    echo "moto_server: $moto_bin"
else
    # The tests fall back to `python3 -m moto.server`; the console script is here:
    echo "moto_server: not on PATH; tests run 'python3 -m moto.server' ($(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/moto_server; also see ~/.local/bin)"
fi

# --- garage -----------------------------------------------------------------------------------
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if garage_bin=$(command -v garage) || { [ -x "$cargo_bin/garage" ] && garage_bin="$cargo_bin/garage"; }; then
    echo "garage: $garage_bin"
else
    echo "installing garage $GARAGE_VERSION (cargo install, several minutes) ..."
    cargo install --locked --quiet garage --version "$GARAGE_VERSION"
    echo "garage: $cargo_bin/garage"
fi

# --- tansu ------------------------------------------------------------------------------------
TANSU_VERSION=0.6.0
if tansu_bin=$(command -v tansu) || { [ -x "$cargo_bin/tansu" ] && tansu_bin="$cargo_bin/tansu"; }; then
    echo "tansu: $tansu_bin"
else
    echo "installing tansu $TANSU_VERSION (cargo install, several minutes) ..."
    # The default features have no storage engine; sqlite needs libsql (see TOOLCHAINS.md).
    cargo install --locked --quiet tansu --version "$TANSU_VERSION" --features dynostore,libsql
    echo "tansu: $cargo_bin/tansu"
fi

# Installs Debian packages (as root, or through sudo).
apt_install() {
    echo "installing $* (apt) ..."
    local sudo_=()
    [ "$(id -u)" = 0 ] || sudo_=(sudo)
    "${sudo_[@]}" apt-get update -qq
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- postgresql -------------------------------------------------------------------------------
# The tests run initdb and postgres from /usr/lib/postgresql/<version>/bin as the `postgres` user.
if pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1) && [ -x "$pg_bin/initdb" ]; then
    echo "postgresql: $pg_bin"
else
    apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    echo "postgresql: $pg_bin"
fi

# --- mosquitto --------------------------------------------------------------------------------
if mosquitto_bin=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null); then
    echo "mosquitto: $mosquitto_bin"
else
    apt_install mosquitto
    echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto)"
fi

# --- nats-server (JetStream) and redis-server -------------------------------------------------
if nats_bin=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null); then
    echo "nats-server: $nats_bin"
else
    apt_install nats-server
    echo "nats-server: $(command -v nats-server || echo /usr/sbin/nats-server)"
fi
if redis_bin=$(command -v redis-server || ls /usr/bin/redis-server 2>/dev/null); then
    echo "redis-server: $redis_bin"
else
    apt_install redis-server
    echo "redis-server: $(command -v redis-server || echo /usr/bin/redis-server)"
fi

# --- Karapace (schema registry) ---------------------------------------------------------------
# A vendored wheel (tests/servers/karapace/README.md) and its pinned PyPI dependencies, in a venv.
KARAPACE_VENV="${ARKFLOW_KARAPACE_VENV:-$HOME/.cache/arkflow-karapace-3.16.0}"
if [ -x "$KARAPACE_VENV/bin/karapace" ]; then
    echo "karapace: $KARAPACE_VENV/bin/karapace"
else
    echo "installing karapace 3.16.0 into $KARAPACE_VENV ..."
    python3 -m venv "$KARAPACE_VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$KARAPACE_VENV"; }
    here="$(cd "$(dirname "$0")" && pwd)/karapace"
    "$KARAPACE_VENV/bin/pip" install --quiet -r "$here/requirements.txt" "$here/karapace-3.16.0-py3-none-any.whl"
    echo "karapace: $KARAPACE_VENV/bin/karapace"
fi
