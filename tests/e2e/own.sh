#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sourced by the test scripts that keep lists of PIDs to end: which of them are still theirs.
#
# Bash reaps a background child as soon as it exits, and PIDs wrap within minutes on a busy
# machine: a number kept in a list may by now belong to someone else's process, which must
# never be signalled. A process is taken for ours when it descends from the test script's shell
# (the helpers' nsenter and bash exec into the program; a tracer's child is a grandchild), and
# is then known by its PID and start time, which stay its identity after its parent is gone.

# e2e_stamp PID: prints PID's start time (clock ticks since boot) if PID is a live descendant of
# this script; fails otherwise.
e2e_stamp() {
	local p=$1 st i start=
	for i in 1 2 3 4 5 6 7 8; do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
		st=${st##*) }
		# shellcheck disable=SC2086
		set -- $st # from the state on: state ppid ... starttime is the 20th
		if [ "$i" = 1 ]; then
			[ "$1" != Z ] || return 1
			start=${20}
		fi
		[ "$2" = "$$" ] && echo "$start" && return 0
		[ "$2" -gt 1 ] || return 1
		p=$2
	done
	return 1
}

# e2e_own PID: PID is a live descendant of this script.
e2e_own() { e2e_stamp "$1" >/dev/null; }

# e2e_same PID STAMP: PID is still the live process e2e_stamp saw (wherever its parent is).
e2e_same() {
	local st want=$2
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	# shellcheck disable=SC2086
	set -- $st
	[ "$1" != Z ] && [ "${20}" = "$want" ]
}
