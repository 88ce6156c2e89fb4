#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer harnesses (build-fuzz, clang, ASan+UBSan) and runs each in turn, for at
# most SECONDS and at most RUNS executions, whichever comes first.
#
#   tools/fuzz.sh [-t SECONDS] [-n RUNS] [--campaign] [--no-build] [HARNESS...]
#   tools/fuzz.sh [SECONDS [HARNESS...]]            (the older form: -t SECONDS)
#
#   -t SECONDS   time cap per harness (default 30)
#   -n RUNS      execution cap per harness (default: none)
#   --no-build   run the binaries in build-fuzz as they are
#   --campaign   keep what the run found: merge the committed corpus and the grown one into a
#                fresh directory (-merge=1, the hand-named seeds and regressions always kept),
#                put it in tests/fuzz/corpus/<harness>/, write tests/fuzz/runs/<date>-<harness>.txt
#                and add a row to tests/fuzz/RUNS.md. Without it the committed corpus is only
#                read (a scratch copy grows) and nothing is written: a smoke run.
#
# Examples: tools/fuzz.sh 5 (smoke, CI-like), nice -n 19 tools/fuzz.sh --campaign -t 1800
# -n 10000000 fuzz_h2 (the campaign target: 10 million executions or 30 minutes).
# A crash, leak, UB or timeout stops that harness; its input is saved under
# build-fuzz/fuzz-artifacts/<harness>/ (and named in the record) and the exit is non-zero.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# Every harness has a seed corpus directory of its name (tests/fuzz/CMakeLists.txt lists them).
mapfile -t all < <(cd "$top/tests/fuzz/corpus" && ls -d fuzz_*)
build=$top/build-fuzz
saved=$build/fuzz-artifacts
secs=30
runs=0
campaign=0
build_first=1
harnesses=()

usage() {
	echo "usage: tools/fuzz.sh [-t SECONDS] [-n RUNS] [--campaign] [--no-build] [HARNESS...]" >&2
	exit 2
}
number() {
	case $1 in '' | *[!0-9]*) usage ;; esac
}
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
while [ $# -gt 0 ]; do
	case $1 in
	-t)
		number "${2:-}"
		secs=$2
		shift 2
		;;
	-n)
		number "${2:-}"
		runs=$2
		shift 2
		;;
	--campaign)
		campaign=1
		shift
		;;
	--no-build)
		build_first=0
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		harnesses+=("$1")
		shift
		;;
	esac
done
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")
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

if [ $build_first -eq 1 ]; then
	echo "== build ($build)"
	if [ ! -f "$build/CMakeCache.txt" ]; then
		CC=clang cmake -S "$top" -B "$build" -DNTUN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
			>/dev/null || exit 1
	fi
	cmake --build "$build" -j"$(nproc)" --target "${harnesses[@]}" >/dev/null || {
		echo "tools/fuzz.sh: build failed (cmake --build $build --target ${harnesses[*]})" >&2
		exit 1
	}
fi
for h in "${harnesses[@]}"; do
	[ -x "$build/tests/fuzz/$h" ] || {
		echo "tools/fuzz.sh: $build/tests/fuzz/$h is not built" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/ntun-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# UB is a crash, not a warning; leaks are checked after every input.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

# Files and KiB of a corpus directory.
corpus_size() {
	local files kib
	files=$(find "$1" -type f | wc -l)
	kib=$(find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.1f", s / 1024 }')
	echo "$files files, $kib KiB"
}

# "cov ft" of a corpus: what the harness reaches when it only runs these inputs.
corpus_cov() {
	local h=$1 dir=$2 line
	line=$(cd "$work/$h/out" && "$build/tests/fuzz/$h" -runs=0 -max_len="$maxlen" \
		-rss_limit_mb=2048 "$dir" 2>&1 | grep -E '(INITED|DONE) .*cov:' | tail -1)
	echo "$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line") $(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")"
}

# A libFuzzer unit name: the SHA-1 of its content. Anything else was named by hand (a seed or a
# regression) and stays in the corpus whatever the merge thinks of it.
hashed() {
	[[ $(basename "$1") =~ ^[0-9a-f]{40}$ ]]
}

# Merges the committed corpus and the grown one into a fresh directory and puts the result in
# tests/fuzz/corpus/<harness>/. Prints the merge's summary line.
merge() {
	local h=$1 dst=$top/tests/fuzz/corpus/$1 f
	mkdir -p "$work/$h/min" "$work/$h/old"
	for f in "$dst"/*; do
		if hashed "$f"; then
			cp "$f" "$work/$h/old/"
		else
			cp "$f" "$work/$h/min/"
		fi
	done
	(cd "$work/$h/out" && "$build/tests/fuzz/$h" -merge=1 -max_len="$maxlen" -timeout=10 \
		-rss_limit_mb=2048 "$work/$h/min" "$work/$h/old" "$work/$h/corpus") \
		>"$work/$h/merge.log" 2>&1 || return 1
	find "$dst" -maxdepth 1 -type f -delete
	cp "$work/$h/min/"* "$dst/"
	grep 'MERGE-OUTER: [0-9]* new files' "$work/$h/merge.log" | tail -1
}

fail=0
day=$(date -u +%Y-%m-%d)
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')
printf '%-18s %12s %9s %7s %7s %8s  %s\n' harness execs exec/s cov ft corpus result
for h in "${harnesses[@]}"; do
	mkdir -p "$work/$h/corpus" "$work/$h/out"
	case $h in
	fuzz_h2 | fuzz_grpc_frames) maxlen=32768 ;; # room for several full frames
	*) maxlen=4096 ;;
	esac
	before_size=$(corpus_size "$top/tests/fuzz/corpus/$h")
	[ $campaign -eq 1 ] && read -r before_cov before_ft < <(corpus_cov "$h" "$top/tests/fuzz/corpus/$h")
	# The grown units go to the scratch directory (first); the committed corpus is only read.
	# Runs in its own directory: libFuzzer may write files (crash-*, fuzz-*.log) there.
	started=$(date -u +%s)
	(cd "$work/$h/out" && "$build/tests/fuzz/$h" -max_total_time="$secs" -runs="$([ "$runs" -gt 0 ] && echo "$runs" || echo -1)" \
		-timeout=10 -rss_limit_mb=2048 -max_len=$maxlen -print_final_stats=1 \
		-artifact_prefix="$work/$h/out/" "$work/$h/corpus" "$top/tests/fuzz/corpus/$h") \
		>"$work/$h/log" 2>&1
	rc=$?
	took=$(($(date -u +%s) - started))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$h/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$h/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$work/$h/log" | grep 'cov:' | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	units=$(find "$work/$h/corpus" -type f | wc -l)
	artifacts=$(find "$work/$h/out" -maxdepth 1 -type f \
		\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
	result=ok
	if [ $rc -ne 0 ] || [ -n "$artifacts" ]; then
		fail=1
		result="FAILED (exit $rc)"
		mkdir -p "$saved/$h"
		for a in $artifacts; do
			cp "$a" "$saved/$h/"
		done
	fi
	printf '%-18s %12s %9s %7s %7s %8s  %s\n' "$h" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
		"${ft:-?}" "+$units" "$result"
	if [ -n "$artifacts" ] || [ $rc -ne 0 ]; then
		echo "---- $h log (tail)"
		grep -v '^#[0-9]' "$work/$h/log" | tail -40
		for a in $artifacts; do
			echo "---- reproducer: $saved/$h/$(basename "$a")"
			echo "     replay: $build/tests/fuzz/$h $saved/$h/$(basename "$a")"
		done
	fi
	[ $campaign -eq 1 ] || continue

	merged=$(merge "$h") || merged="merge failed: see the record"
	after_size=$(corpus_size "$top/tests/fuzz/corpus/$h")
	read -r after_cov after_ft < <(corpus_cov "$h" "$top/tests/fuzz/corpus/$h")
	mkdir -p "$top/tests/fuzz/runs"
	rec=$top/tests/fuzz/runs/$day-$h.txt
	n=2
	while [ -e "$rec" ]; do
		rec=$top/tests/fuzz/runs/$day-$h-$n.txt
		n=$((n + 1))
	done
	findings=none
	[ -n "$artifacts" ] && findings=$(for a in $artifacts; do basename "$a"; done | paste -sd' ')
	[ $rc -ne 0 ] && [ -z "$artifacts" ] && findings="exit $rc without a saved input"
	{
		echo "harness:        $h"
		echo "date:           $(date -u '+%Y-%m-%d %H:%M UTC') (finished)"
		echo "commit:         $commit$(git -C "$top" diff --quiet HEAD -- user 2>/dev/null || echo ' (user/ modified)') (HEAD when the run started)"
		echo "binary:         build-fuzz/tests/fuzz/$h, built $(date -u -r "$build/tests/fuzz/$h" '+%Y-%m-%d %H:%M UTC')$([ $build_first -eq 0 ] && echo ' (--no-build: may predate the commit)')"
		echo "machine:        $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), nice $(nice)"
		echo "caps:           ${secs} s, ${runs:-0} runs (0: none), max_len $maxlen"
		echo "ran:            ${took} s ($((took / 60)) min), ${execs:-?} executions, ${rate:-?} exec/s"
		echo "target 10M/30m: $([ "${execs:-0}" -ge 10000000 ] || [ "$took" -ge 1800 ] && echo reached || echo 'NOT reached')"
		echo "end of run:     cov ${cov:-?} ft ${ft:-?} ($last)"
		echo "corpus before:  $before_size, cov ${before_cov:-?} ft ${before_ft:-?}"
		echo "corpus after:   $after_size, cov ${after_cov:-?} ft ${after_ft:-?} (merged: $merged)"
		echo "grown units:    $units"
		echo "result:         $result"
		echo "findings:       $findings"
		for a in $artifacts; do
			echo "  $(basename "$a"): saved as build-fuzz/fuzz-artifacts/$h/$(basename "$a")"
			echo "    replay: build-fuzz/tests/fuzz/$h build-fuzz/fuzz-artifacts/$h/$(basename "$a")"
		done
		echo
		echo "---- log (without the progress lines)"
		grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)|^"|^######' "$work/$h/log" | tail -60
	} >"$rec"
	runsmd=$top/tests/fuzz/RUNS.md
	if [ ! -f "$runsmd" ]; then
		cat >"$runsmd" <<-'EOF'
			# Fuzzing campaigns

			One row per harness run by `tools/fuzz.sh --campaign` (ASan+UBSan, libFuzzer);
			the record it names has the log and the exact caps. `cov`/`ft` are libFuzzer's
			edge coverage and features at the end of the run; the corpus columns give the
			committed corpus (files, KiB, and the coverage it alone reaches) before and after
			the merge, so a later run can compare. Target: 10 million executions or 30 minutes.

			| date | harness | commit | minutes | executions | exec/s | cov | ft | corpus before | corpus after | findings | record |
			|---|---|---|---|---|---|---|---|---|---|---|---|
		EOF
	fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s (cov %s) | %s (cov %s) | %s | %s |\n' \
		"$day" "$h" "$commit" "$(awk -v t="$took" 'BEGIN { printf "%.1f", t / 60 }')" \
		"${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$before_size" "${before_cov:-?}" \
		"$after_size" "${after_cov:-?}" "$findings" "runs/$(basename "$rec")" >>"$runsmd"
	echo "     record: ${rec#"$top"/}"
done
if [ $fail -ne 0 ]; then
	echo "== FAILED: fix the bug, then add the reproducer to tests/fuzz/corpus/<harness>/"
	exit 1
fi
echo "== no crash"
