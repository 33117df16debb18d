#!/usr/bin/env bash
# The test command: builds the plugins from source (installing the wasm32-wasip2 target and the
# guest-language toolchains when missing), installs the host's system packages (cmake, libcurl headers for librdkafka) and the
# test servers (moto and garage for S3, tansu for Kafka) when missing, then runs every test of the
# workspace in the release profile (the one profile used for tests, benchmarks and the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# Style first: it fails in seconds (rustfmt.toml; the plugins are a workspace of their own).
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
bash host/system-deps.sh
# Lints of the host, its tests and benchmarks, as errors (the release profile: the one profile built);
# this also type-checks the benchmarks, which CI does not link (`cargo bench` builds them).
cargo clippy --release --all-targets -- -D warnings
bash plugins/build.sh
# The counter in C, Zig, Go, Python and JavaScript (toolchains installed when missing).
bash plugins/build-guests.sh
# Real S3-compatible servers (moto, garage) and a Kafka-protocol broker (tansu); skipped when present.
bash tests/servers/install.sh
# Plugin SDK unit tests run on the host target, in the plugins' own target dir.
(cd plugins && cargo test --quiet --target-dir "${ARKFLOW_PLUGIN_TARGET_DIR:-$HOME/.cache/arkflow-plugins-target}")
# The guest SDKs' own tests (Python, JavaScript: also run the built components under node; Go; C
# natively under the sanitizers; Zig's run in its build.sh).
bash plugins/python/test.sh
bash plugins/js/test.sh
bash plugins/go/build.sh --test counter
bash plugins/c/tests/run.sh
if [ $# -gt 0 ]; then
    cargo test --release --workspace "$@"
    exit
fi
# Every test. Group mode's end-to-end test (host/tests/group_e2e.rs) spends its ~3 minutes
# waiting on consumer-group rebalances, not CPU: it runs beside the others (its own broker and S3
# server on other loopback ports), its log printed when it ends; either failing fails the run.
cargo test --release --workspace --no-run
group_log="$(mktemp)"
cargo test --release --test group_e2e >"$group_log" 2>&1 &
group_pid=$!
status=0
cargo test --release --workspace -- \
    --skip three_processes_share_partitions_and_state_moves_exactly_once \
    --skip an_unkeyed_input_is_repartitioned_by_the_key_and_counts_stay_exact_across_processes \
    --skip a_chain_of_two_repartition_topics_counts_exactly_across_a_kill || status=$?
wait "$group_pid" || status=$?
echo "==== host/tests/group_e2e.rs (ran beside the others)"
cat "$group_log"
rm -f "$group_log"
exit "$status"
