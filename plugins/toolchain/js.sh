#!/usr/bin/env bash
# The JavaScript guest toolchain, sourced by plugins/js/build.sh and by the build.sh of a project
# made by `arkflow plugin new --lang js` (which carries a copy in its toolchain/): the shared
# helpers (common.sh, from this file's directory) plus
#   need_node_npm          -> node and npm (apt-get install nodejs npm, as root or through sudo,
#                             when missing); node >= 18
#   need_npm_packages DIR  -> `npm ci` in DIR (its package.json + package-lock.json pin
#                             componentize-js exactly) when DIR/node_modules is missing or the lock
#                             changed since the last install (stamp: node_modules/.arkflow-package-lock.json);
#                             npm's cache makes a repeat quick. Prints DIR/node_modules/.bin.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_node_npm() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        # A fresh Debian machine: install them from apt (root, or through sudo).
        echo "installing nodejs and npm (apt) ..." >&2
        local sudo_=()
        [ "$(id -u)" = 0 ] || sudo_=(sudo)
        "${sudo_[@]}" apt-get update -qq
        "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "js.sh: needs node and npm" >&2; return 1; }
    fi
}

need_npm_packages() {
    local dir="$1"
    local stamp="$dir/node_modules/.arkflow-package-lock.json"
    need_node_npm
    if ! cmp -s "$dir/package-lock.json" "$stamp"; then
        echo "installing componentize-js (npm ci in $dir) ..." >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
        cp "$dir/package-lock.json" "$stamp"
    fi
    echo "$dir/node_modules/.bin"
}
