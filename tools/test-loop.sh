#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the whole suite (tools/test.sh) N times in a row on a fresh clone of a commit, the way a
# new user would: the clone is made once, then every run is the README's test command as it is.
# Each run's log is kept; the summary gives, per run, the result, the minutes it took, the load
# and the tests that failed. Needs root (tools/test.sh does).
#
#   tools/test-loop.sh [-n RUNS] [-c COMMIT] [-d DIR] [--keep-going]
#
#   -n RUNS        how many runs (default 20)
#   -c COMMIT      what to clone (default HEAD of this repository; when resuming, the clone's)
#   -d DIR         where the clone and the logs go (default /var/tmp/ntun-loop.<commit>)
#   --keep-going   go on after a failed run (default: stop at the first one)
#
# The summary is DIR/summary.txt, one line per run; the exit is 0 when every run passed.
#
# A loop can be stopped (SIGTERM to its process group: the running test's trap cleans up, the
# unfinished run is not counted) and resumed later with the same -d DIR: it goes on from the
# run after the last one finished, on the same clone, until RUNS runs are in the summary, and
# the last line says how many passed in a row. At 20 runs of 40-45 minutes each, a loop is
# longer than one working session.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=20
commit=HEAD
dir=
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	-n)
		runs=${2:-}
		shift 2
		;;
	-c)
		commit=${2:-}
		shift 2
		;;
	-d)
		dir=${2:-}
		shift 2
		;;
	--keep-going)
		keep=1
		shift
		;;
	*)
		echo "usage: tools/test-loop.sh [-n RUNS] [-c COMMIT] [-d DIR] [--keep-going]" >&2
		exit 2
		;;
	esac
done
# Ctrl-C or SIGTERM: the run under way is not counted (nor written down as failed).
trap 'echo "# stopped during a run, $(date -u "+%Y-%m-%d %H:%M UTC")" >>"$sum"; exit 130' INT TERM
sum=/dev/null
case $runs in '' | *[!0-9]*)
	echo "tools/test-loop.sh: -n needs a number" >&2
	exit 2
	;;
esac
# Resuming (-d DIR with a clone in it, no -c): the clone's commit.
if [ "$commit" = HEAD ] && [ -n "$dir" ] && [ -d "$dir/ntun" ]; then
	commit=$(git -C "$dir/ntun" rev-parse HEAD) || exit 2
fi
sha=$(git -C "$top" rev-parse --verify "$commit^{commit}") || exit 2
short=${sha:0:7}
[ -n "$dir" ] || dir=/var/tmp/ntun-loop.$short
mkdir -p "$dir" || exit 1
dir=$(realpath "$dir")
if [ ! -d "$dir/ntun" ]; then
	# Cloned and checked out aside, then moved in: a clone in DIR is always at its commit.
	rm -rf "$dir/ntun.new"
	git clone -q --no-local "$top" "$dir/ntun.new" && git -C "$dir/ntun.new" checkout -q "$sha" &&
		mv "$dir/ntun.new" "$dir/ntun" || exit 1
elif [ "$(git -C "$dir/ntun" rev-parse HEAD)" != "$sha" ]; then
	echo "tools/test-loop.sh: $dir/ntun is a clone of $(git -C "$dir/ntun" rev-parse --short HEAD)," \
		"not $short: give another -d DIR" >&2
	exit 2
fi
# The suite's scratch files go under the loop's directory, not a /tmp other work shares.
mkdir -p "$dir/tmp"
sum=$dir/summary.txt
# Runs finished earlier in this DIR (a resumed loop): how many, how many passed, and how many
# passed since the last failure.
done_runs=0 passed=0 streak=0
if [ -f "$sum" ]; then
	read -r done_runs passed streak < <(awk '
		/^run [0-9]+: passed/ { n++; p++; s++ }
		/^run [0-9]+: FAILED/ { n++; s = 0 }
		END { print n + 0, p + 0, s + 0 }' "$sum")
fi
if [ ! -s "$sum" ]; then
	echo "# tools/test.sh on a fresh clone of $short ($(git -C "$top" log -1 --format=%s "$sha"))" >>"$sum"
	echo "# $(nproc) cores, started $(date -u '+%Y-%m-%d %H:%M UTC')" >>"$sum"
else
	echo "# resumed after run $done_runs ($passed passed, the last $streak in a row)," \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" >>"$sum"
fi
i=$done_runs
for i in $(seq $((done_runs + 1)) "$runs"); do
	log=$dir/run-$i.log
	load=$(cut -d' ' -f1 /proc/loadavg)
	start=$(date -u +%s)
	(cd "$dir/ntun" && TMPDIR=$dir/tmp tools/test.sh) >"$log" 2>&1
	rc=$?
	mins=$(awk -v s="$start" -v e="$(date -u +%s)" 'BEGIN { printf "%.1f", (e - s) / 60 }')
	failed=$(grep -E '^[[:space:]]*[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)' "$log" |
		sed 's/^[[:space:]]*[0-9]* - //' | paste -sd';' -)
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		streak=$((streak + 1))
		line="run $i: passed in $mins min (load at start $load)"
	else
		streak=0
		line="run $i: FAILED in $mins min (load at start $load): ${failed:-see $log}"
	fi
	echo "$line" | tee -a "$sum"
	if [ $rc -ne 0 ] && [ $keep -eq 0 ]; then
		break
	fi
done
echo "# $passed of $i runs passed, the last $streak in a row, ended $(date -u '+%Y-%m-%d %H:%M UTC')" |
	tee -a "$sum"
[ "$passed" -eq "$i" ]
