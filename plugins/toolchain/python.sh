#!/usr/bin/env bash
# The Python guest toolchain, sourced by plugins/python/build.sh and test.sh and by the build.sh of
# a project made by `arkflow plugin new --lang python` (which carries a copy in its toolchain/):
# the shared helpers (common.sh, from this file's directory) plus componentize-py, pinned.
#   need_componentize_py -> componentize-py $COMPONENTIZE_PY_VERSION (PyPI; pip-installed when
#                           missing or of another version)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPONENTIZE_PY_VERSION=0.25.1

need_componentize_py() {
    if ! command -v componentize-py >/dev/null 2>&1 ||
        [ "$(componentize-py --version | awk '{print $2}')" != "$COMPONENTIZE_PY_VERSION" ]; then
        echo "installing componentize-py $COMPONENTIZE_PY_VERSION (PyPI) ..." >&2
        pip_install "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    command -v componentize-py
}
