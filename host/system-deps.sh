#!/usr/bin/env bash
# Installs the Debian packages the host's build needs, when missing: rdkafka builds librdkafka
# with cmake and needs libcurl's headers (TOOLCHAINS.md). Quick and silent when both are present.
# Runs apt-get as root, or through sudo when that is available.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing ${need[*]} (apt) ..."
if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); elif command -v sudo >/dev/null 2>&1; then apt=(sudo apt-get); else
    echo "missing ${need[*]}: install them with apt-get as root (rdkafka's librdkafka build needs them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A stale package index fails on version skew (libcurl4 vs its -dev package): refresh first.
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq "${need[@]}" >/dev/null
