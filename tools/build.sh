#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the missing Debian packages that building needs (tools/install-deps.sh build), then
# configures and builds ntun.
#   tools/build.sh [DIR [CMAKE ARGS...]]   default DIR: build
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
"$top/tools/install-deps.sh" build
cmake -S "$top" -B "$top/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$top/$dir" -j"$(nproc)"
