#!/usr/bin/env bash
# The SDK's own unit tests (plugins/js/tests/sdk.test.mjs, natively), then the counter contract
# suite (plugins/js/tests/counter.test.mjs, node's test runner) run on:
#   1. the JavaScript source, natively;
#   2. each built counter component present in plugins/dist -- counter_js.wasm and
#      counter_python.wasm -- transpiled to JS + core wasm by jco (installed with componentize-js)
#      and run in node, with the WIT imports backed by the same fakes.
# So the Python and JavaScript components are checked against one suite. Build them first
# (plugins/js/build.sh, plugins/python/build.sh); a component missing from dist fails the run.
# Also the SDK as a package: `npm pack` of plugins/js/sdk (@arkflow/plugin-sdk 0.2.0) from source
# must hold exactly package.json, README.md and the SDK's *.js; and the project template
# (plugins/templates/js) must pin what plugins/js pins (same dependencies, same lock file).
#   plugins/js/test.sh                       # all three
#   plugins/js/test.sh counter_js            # native + only these components
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
[ -x node_modules/.bin/jco ] && cmp -s package-lock.json node_modules/.arkflow-package-lock.json || {
    echo "js/test.sh: node_modules is missing or stale: run plugins/js/build.sh first" >&2
    exit 1
}
# The Python component uses extended constant expressions, behind a flag in node 20's V8.
node_flags=()
node --v8-options | grep -q -- '--experimental-wasm-extended-const' && node_flags+=(--experimental-wasm-extended-const)

echo "== SDK: plugins/js/sdk (native)"
node --import ./tests/register.mjs --test tests/sdk.test.mjs

echo "== SDK package: npm pack plugins/js/sdk"
packed="$(mktemp -d)"
trap 'rm -rf "$packed"' EXIT
(cd sdk && npm pack --pack-destination "$packed" --loglevel=error >/dev/null)
tarball="$packed/arkflow-plugin-sdk-0.2.0.tgz"
[ -f "$tarball" ] || { echo "js/test.sh: npm pack made $(ls "$packed"), not arkflow-plugin-sdk-0.2.0.tgz" >&2; exit 1; }
want="$( (cd sdk && ls *.js; echo package.json; echo README.md) | sed 's|^|package/|' | sort)"
got="$(tar tzf "$tarball" | sort)"
[ "$got" = "$want" ] || { echo "js/test.sh: the SDK tarball holds:"; echo "$got"; echo "expected:"; echo "$want"; exit 1; } >&2
echo "js sdk package: $(basename "$tarball"), $(echo "$got" | wc -l) files"
node -e '
const [a, b] = process.argv.slice(1).map((f) => require(f));
const pins = (p) => JSON.stringify([p.dependencies, p.devDependencies, p.overrides]);
if (pins(a) !== pins(b)) { console.error(`js/test.sh: ${process.argv[2]} pins differ from ${process.argv[1]}`); process.exit(1); }
' "$here/package.json" "$here/../templates/js/package.json"
cmp package-lock.json ../templates/js/package-lock.json
echo "js template: same pins as plugins/js"

echo "== counter contract: plugins/js/counter/app.js (native)"
node --import ./tests/register.mjs --test tests/counter.test.mjs

[ $# -gt 0 ] || set -- counter_js counter_python
out="node_modules/.arkflow-transpiled"
for c in "$@"; do
    wasm="../dist/$c.wasm"
    [ -f "$wasm" ] || { echo "js/test.sh: $wasm not built" >&2; exit 1; }
    echo "== counter contract: plugins/dist/$c.wasm (through jco transpile)"
    rm -rf "${out:?}/$c"
    # The import map is written verbatim into $out/$c/$c.js, so it is relative to that directory.
    ./node_modules/.bin/jco transpile "$wasm" -o "$out/$c" --no-typescript -q \
        --map 'arkflow:plugin/*=../../../tests/fake-wit.mjs'
    ARKFLOW_COUNTER_MODULE="$out/$c/$c.js" node "${node_flags[@]}" --test tests/counter.test.mjs
done
