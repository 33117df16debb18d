#!/usr/bin/env bash
# Runs the quickstart on a fresh machine with Rust: installs the wasm target, builds the plugins
# from source and the host (installing cmake and libcurl headers for librdkafka when missing),
# then runs examples/quickstart.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash plugins/build.sh
bash host/system-deps.sh
cargo run --release --bin arkflow -- --config examples/quickstart.yaml "$@"
