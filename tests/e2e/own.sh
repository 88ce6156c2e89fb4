#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sourced by the test scripts that keep lists of PIDs to end: which of them are still theirs.

# e2e_own PID: PID is a live process this script started (a descendant of it; the helpers'
# nsenter and bash exec into the program, a tracer's child is a grandchild). Bash reaps a
# background child as soon as it exits, and PIDs wrap within minutes on a busy machine: a
# number from E2E_PIDS may by now belong to someone else's process, which must never be
# signalled. A zombie is not live.
e2e_own() {
	local p=$1 st i
	for i in 1 2 3 4 5 6 7 8; do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
		st=${st##*) }
		# shellcheck disable=SC2086
		set -- $st # state, parent, ...
		[ "$i" != 1 ] || [ "$1" != Z ] || return 1
		[ "$2" = "$$" ] && return 0
		[ "$2" -gt 1 ] || return 1
		p=$2
	done
	return 1
}
