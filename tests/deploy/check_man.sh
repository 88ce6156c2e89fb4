#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every installed program has a man page that man renders without a warning and that documents
# every option of the program's own --help (help2man makes the pages from --help at build time;
# this catches a program added without a page, a page gone stale, and roff mistakes in
# man/*.h2m).
#   check_man.sh BUILD BIN:SECTION...   (BIN: a built program, its page BUILD/man/NAME.SECTION.gz)
set -uo pipefail
build=$1
shift
export LC_ALL=C MANWIDTH=80
fail=0
bad() { echo "FAIL: $*"; fail=1; }
[ $# -gt 0 ] || bad "no program listed"
for spec in "$@"; do
	bin=${spec%:*} sec=${spec##*:} name=$(basename "${spec%:*}")
	page="$build/man/$name.$sec.gz"
	if [ ! -s "$page" ]; then
		bad "$name: no man page $page"
		continue
	fi
	warn=$(man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$warn" ] || bad "$name($sec): man warns: $warn"
	text=$(man -l "$page" 2>/dev/null | col -b)
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO"; do
		grep -q "^$s\$" <<<"$text" || bad "$name($sec): no $s section"
	done
	grep -q "^ *$name - [a-z]" <<<"$text" || bad "$name($sec): NAME is not '$name - what it is'"
	ver=$("$bin" --version) || bad "$name --version failed"
	grep -qF "$ver" <<<"$text" || bad "$name($sec): not made from this build ('$ver' missing)"
	opts=$("$bin" --help | grep -oE '^  (-[a-zA-Z], )?--[a-z0-9][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+')
	n=0
	for o in $opts; do
		n=$((n + 1))
		grep -qE -- "(^|[ ,])$o([ =,]|\$)" <<<"$text" || bad "$name($sec): $o of --help missing"
	done
	[ "$n" -ge 2 ] || bad "$name: only $n options found in --help"
	echo "$name($sec): $n options, all in the page"
done
[ $fail -eq 0 ] && echo "PASS: man pages" || echo "FAIL: man pages"
exit $fail
