#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it: installs what is missing (tools/install-deps.sh build test
# bench: the suite includes the benchmark's smoke run), builds, checks formatting,
# then runs every test (unit, end-to-end in network namespaces, interop) twice: in the normal
# build and in the AddressSanitizer + UndefinedBehaviorSanitizer build. Needs root.
#   tools/test.sh            everything
#   tools/test.sh -L unit    only tests whose ctest label matches (passed to ctest)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "$(id -u)" != 0 ]; then
	echo "tools/test.sh: run as root (the end-to-end tests use namespaces, cgroups and BPF)" >&2
	exit 1
fi
fail=0

echo "== packages"
tools/install-deps.sh build test bench || exit 1
echo "== build"
tools/build.sh build || exit 1
tools/build.sh build-asan -DNTUN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || exit 1

echo "== format (clang-format, .clang-format at the top)"
if ! tools/check-format.sh; then
	fail=1
fi

for b in build build-asan; do
	echo "== tests in $b"
	(cd "$b" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 1200 "$@") || fail=1
done

if [ $fail -ne 0 ]; then
	echo "== FAILED"
	exit 1
fi
echo "== all tests passed"
