#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm from app.py (and the modules and packages beside it), from any directory:
# `bash build.sh`. componentize-py (PyPI, pinned in toolchain/python.sh, pip-installed when
# missing) bundles them, the SDK (sdk/, the package arkflow-plugin {{sdk_version}}: its `arkflow`
# directory on the Python path, from source, as `pip install -e sdk` would put it) and a CPython
# interpreter into one component of world `plugin` (`timed-plugin` when app.py re-exports
# `TimerHandler`), with the `wit_world` bindings generated from wit/ on every build.
set -euo pipefail
PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$PROJECT/toolchain/python.sh"
WIT_DIR="$PROJECT/wit"
DIST_DIR="$PROJECT/dist"
need_componentize_py >/dev/null

# componentize-py snapshots the directory tree of its Python path into the component: give it a
# clean copy of the sources (no __pycache__) and an empty VIRTUAL_ENV, so that the build machine's
# site-packages stay out (only the standard library comes with componentize-py).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/arkflow" "$work/venv/lib/site-packages" "$DIST_DIR"
# app.py, the modules beside it and pure-Python packages in subdirectories (not the SDK's copy,
# which goes in below, nor the build's own directories).
(cd "$PROJECT" && find . -name '*.py' -not -path './sdk/*' -not -path './toolchain/*' -not -path './dist/*' \
    -not -path '*/__pycache__/*' -exec cp --parents {} "$work/src/" \;)
cp "$PROJECT"/sdk/arkflow/*.py "$work/src/arkflow/"
world=plugin
if grep -q "TimerHandler" "$PROJECT/app.py"; then world=timed-plugin; fi
out="$DIST_DIR/{{name_snake}}.wasm"
VIRTUAL_ENV="$work/venv" componentize-py -q -d "$WIT_DIR" -w "$world" componentize -p "$work/src" app -o "$out"
printf 'built %s (%d bytes)\n' "$out" "$(wc -c <"$out")"
