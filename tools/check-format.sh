#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that our C sources match .clang-format (generated vmlinux.h excluded). Lists offenders.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bad=0
while IFS= read -r f; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (run: clang-format -i $f)"
		bad=1
	fi
done < <(git ls-files '*.c' '*.h' | grep -v '^vmlinux/')
exit $bad
