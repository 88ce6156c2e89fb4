#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses (build-fuzz, clang, ASan+UBSan) and runs each for SECONDS
# (default 30) on a scratch copy of its corpus: the committed corpus never grows by itself.
# Prints executions per harness; a crash, leak, UB or hang is saved and makes the exit non-zero.
#   tools/fuzz.sh [SECONDS [HARNESS...]]     e.g. tools/fuzz.sh 5 (smoke), tools/fuzz.sh 300 fuzz_h2
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
[ $# -gt 0 ] && shift
all=(fuzz_config fuzz_grpc_frames fuzz_chunk fuzz_ctl fuzz_h2 fuzz_cidr fuzz_metrics fuzz_json)
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")
build=$top/build-fuzz
saved=$build/fuzz-artifacts

case $secs in
'' | *[!0-9]*)
	echo "usage: tools/fuzz.sh [SECONDS [HARNESS...]]" >&2
	exit 2
	;;
esac
for h in "${harnesses[@]}"; do
	if [ ! -d "$top/tests/fuzz/corpus/$h" ]; then
		echo "tools/fuzz.sh: unknown harness $h (known: ${all[*]})" >&2
		exit 2
	fi
done
if ! command -v clang >/dev/null; then
	echo "tools/fuzz.sh: clang is needed (libFuzzer)" >&2
	exit 2
fi

echo "== build ($build)"
if [ ! -f "$build/CMakeCache.txt" ]; then
	CC=clang cmake -S "$top" -B "$build" -DNTUN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null ||
		exit 1
fi
cmake --build "$build" -j"$(nproc)" --target "${harnesses[@]}" >/dev/null || {
	echo "tools/fuzz.sh: build failed (cmake --build $build --target ${harnesses[*]})" >&2
	exit 1
}

work=$(mktemp -d /tmp/ntun-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# UB is a crash, not a warning; leaks are checked after every input.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

fail=0
printf '%-18s %12s %8s  %s\n' harness execs corpus result
for h in "${harnesses[@]}"; do
	mkdir -p "$work/$h/corpus" "$work/$h/out"
	cp "$top/tests/fuzz/corpus/$h/"* "$work/$h/corpus/"
	case $h in
	fuzz_h2 | fuzz_grpc_frames) maxlen=32768 ;; # room for several full frames
	*) maxlen=4096 ;;
	esac
	# Runs in its own directory: libFuzzer may write files (crash-*, fuzz-*.log) there.
	(cd "$work/$h/out" && "$build/tests/fuzz/$h" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=$maxlen -print_final_stats=1 \
		-artifact_prefix="$work/$h/out/" "$work/$h/corpus") >"$work/$h/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$h/log" | tail -1)
	units=$(find "$work/$h/corpus" -type f | wc -l)
	artifacts=$(find "$work/$h/out" -maxdepth 1 -type f \
		\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
	if [ $rc -eq 0 ] && [ -z "$artifacts" ]; then
		printf '%-18s %12s %8s  %s\n' "$h" "${execs:-?}" "$units" ok
		continue
	fi
	fail=1
	mkdir -p "$saved/$h"
	for a in $artifacts; do
		cp "$a" "$saved/$h/"
	done
	printf '%-18s %12s %8s  %s\n' "$h" "${execs:-?}" "$units" "FAILED (exit $rc)"
	echo "---- $h log (tail)"
	grep -v '^#[0-9]' "$work/$h/log" | tail -40
	for a in $artifacts; do
		echo "---- reproducer: $saved/$h/$(basename "$a")"
		echo "     replay: $build/tests/fuzz/$h $saved/$h/$(basename "$a")"
	done
done
if [ $fail -ne 0 ]; then
	echo "== FAILED: fix the bug, then add the reproducer to tests/fuzz/corpus/<harness>/"
	exit 1
fi
echo "== no crash"
