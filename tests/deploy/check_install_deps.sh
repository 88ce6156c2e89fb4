#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Setup installs only what the command needs, checked statically (a machine that has every
# package cannot show that one was not installed):
#  1. tools/install-deps.sh --list: the groups build, test and bench are not empty, build shares
#     no package with test or bench, and an unknown group is refused;
#  2. the commands install what they should: tools/demo.sh builds through tools/build.sh, which
#     installs build alone; tools/test.sh installs build, test and bench (its suite runs the
#     benchmark's smoke test); tools/bench installs build and bench;
#  3. every program the demo runs comes from a package of the build group, or one Debian
#     installs everywhere (Essential or Priority required).
#   check_install_deps.sh SRC
set -uo pipefail
src=$1
deps=$src/tools/install-deps.sh
export LC_ALL=C
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for g in build test bench; do
	"$deps" --list "$g" | sort -u >"/tmp/ntun-deps-$$-$g" || bad "--list $g failed"
	[ -s "/tmp/ntun-deps-$$-$g" ] || bad "group $g is empty"
	echo "$g: $(tr '\n' ' ' <"/tmp/ntun-deps-$$-$g")"
done
trap 'rm -f /tmp/ntun-deps-$$-*' EXIT
for g in test bench; do
	both=$(comm -12 "/tmp/ntun-deps-$$-build" "/tmp/ntun-deps-$$-$g" | tr '\n' ' ')
	[ -z "$both" ] || bad "build (what the demo installs) has $g packages: $both"
done
"$deps" --list nosuchgroup >/dev/null 2>&1 && bad "an unknown group was accepted"
[ "$("$deps" --list)" = "$("$deps" --list build)" ] || bad "the default group is not build"

# calls FILE: the argument lists of FILE's install-deps.sh commands (lines that run it), one a line.
calls() {
	grep -E '^\s*("\$top/|\./)?tools/install-deps\.sh' "$1" |
		sed -E 's/^\s*("\$top\/|\.\/)?tools\/install-deps\.sh"? *//; s/ *(\|\||&&|;|$).*//'
}
[ "$(calls "$src/tools/build.sh")" = build ] || bad "tools/build.sh installs '$(calls "$src/tools/build.sh")'"
[ -z "$(calls "$src/tools/demo.sh")" ] || bad "tools/demo.sh installs on its own: '$(calls "$src/tools/demo.sh")'"
grep -q 'tools/build.sh' "$src/tools/demo.sh" || bad "tools/demo.sh does not build through tools/build.sh"
[ "$(calls "$src/tools/test.sh")" = "build test bench" ] || bad "tools/test.sh installs '$(calls "$src/tools/test.sh")'"
[ "$(calls "$src/tools/bench")" = "build bench" ] || bad "tools/bench installs '$(calls "$src/tools/bench")'"

# 3: the demo's programs (tools/demo.sh and the lib.sh functions it calls). A package counts
# if the build group installs it or pulls it in (clang -> clang-14, build-essential -> gcc-12).
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $(cat "/tmp/ntun-deps-$$-build") 2>/dev/null |
	sed -n 's/^[ |]*\(Pre\)\{0,1\}Depends: <\{0,1\}\([^>:]*\).*/\2/p; /^[a-z0-9]/p' |
	sort -u >"/tmp/ntun-deps-$$-closure"
owner() { # owner PATH: the package that has the file (with or without the /usr merge)
	local p=$1 alt
	alt=$(sed -E 's|^/usr/(s?bin\|lib)|/\1|' <<<"$p")
	{ dpkg -S "$p" || dpkg -S "$alt"; } 2>/dev/null | head -1 | cut -d: -f1
}
for path in /usr/sbin/ip /usr/bin/nsenter /usr/bin/curl /usr/bin/python3 /usr/bin/cmake \
	/usr/bin/cc /usr/bin/clang /usr/sbin/bpftool /usr/bin/help2man /usr/bin/awk /usr/bin/mktemp \
	/usr/bin/grep /usr/bin/sed; do
	real=$(readlink -f "$path")
	[ -x "$real" ] || { bad "$path not on this machine"; continue; }
	pkg=$(owner "$real")
	[ -n "$pkg" ] || pkg=$(owner "$path")
	[ -n "$pkg" ] || { bad "$path: no package has it"; continue; }
	info=$(dpkg-query -W -f='${Essential} ${Priority}' "$pkg" 2>/dev/null)
	case "$info" in yes* | *required) continue ;; esac
	grep -qx "$pkg" "/tmp/ntun-deps-$$-closure" ||
		bad "the demo runs $path ($pkg), which the build group does not install"
done

[ $fail -eq 0 ] && echo "PASS: install-deps groups" || echo "FAIL: install-deps groups"
exit $fail
