#!/usr/bin/env bash
# Sourced by build.sh and test.sh: the shared helpers plus componentize-py, pinned.
#   need_componentize_py -> componentize-py $COMPONENTIZE_PY_VERSION (PyPI; pip-installed when
#                           missing or of another version)
source "$(dirname "${BASH_SOURCE[0]}")/../toolchain/common.sh"
COMPONENTIZE_PY_VERSION=0.25.1

need_componentize_py() {
    if ! command -v componentize-py >/dev/null 2>&1 ||
        [ "$(componentize-py --version | awk '{print $2}')" != "$COMPONENTIZE_PY_VERSION" ]; then
        echo "installing componentize-py $COMPONENTIZE_PY_VERSION (PyPI) ..." >&2
        pip_install "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    command -v componentize-py
}
