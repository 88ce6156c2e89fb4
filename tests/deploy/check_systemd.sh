#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The systemd units, checked offline: installed (DESTDIR, prefix /usr, as the package has them)
# into a scratch root that also holds the host's systemd targets and /bin/sh, /bin/kill, then
#  1. systemd-analyze verify --root: syntax, every Exec path present and executable, dependencies
#     (the running systemd is never asked; this works in a container without one);
#  2. what the README promises of each unit: hardening lines, restart policy, reload by SIGHUP,
#     --check-config before start, /run/ntun, and the capability sets (server and proxy none,
#     the client exactly its list);
#  3. each unit's ExecStartPre --check-config passes on the example configuration it names;
#  4. systemd-analyze security --offline: the exposure score of each unit, printed, with a
#     ceiling so that hardening does not quietly go;
#  5. the checker itself: broken copies of a unit must be rejected.
#   check_systemd.sh BUILD
set -uo pipefail
build=$1
export LC_ALL=C
fail=0
bad() { echo "FAIL: $*"; fail=1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ntun-units.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"' EXIT
root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null || { echo "FAIL: install"; exit 1; }
units=$root/lib/systemd/system
sysunits=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
[ -d "$sysunits" ] || sysunits=/lib/systemd/system
cp -an "$sysunits"/. "$units"/
mkdir -p "$root/bin"
for b in /bin/sh /bin/kill; do cp "$(readlink -f $b)" "$root$b"; done

# verify UNIT...: systemd-analyze verify in the scratch root; anything it prints is a finding.
verify() {
	local out
	out=$(cd "$root" && systemd-analyze verify --root="$root" --man=no "$@" 2>&1)
	local rc=$?
	[ $rc -eq 0 ] && [ -z "$out" ] && return 0
	echo "$out" | sed 's/^/  /'
	return 1
}

UNITS="ntun-server.service ntun-proxy.service ntun-client.service ntun-client@.service"
for u in $UNITS; do
	[ -f "$units/$u" ] || { bad "$u not installed in /lib/systemd/system"; continue; }
	v=$u
	[ "$u" = ntun-client@.service ] && v=ntun-client@site2.service
	verify "$v" || bad "$u: systemd-analyze verify"
done

# key UNIT KEY: the values of KEY in UNIT, one a line.
key() { sed -n "s/^$2=//p" "$units/$1"; }
must() { # must UNIT KEY=VALUE: a line exactly so
	grep -qxF "$2" "$units/$1" || bad "$1: no '$2'"
}
caps() { key "$1" "$2" | tr ' ' '\n' | grep . | sort | tr '\n' ' '; }
for u in $UNITS; do
	[ -f "$units/$u" ] || continue
	d=${u%%[.@]*}
	d=${d#ntun-}
	for l in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
		RuntimeDirectory=ntun Restart=on-failure 'ExecReload=/bin/kill -HUP $MAINPID' \
		Type=exec; do
		must "$u" "$l"
	done
	start=$(key "$u" ExecStart)
	case "$start" in /usr/bin/ntun-$d\ --config\ /etc/ntun/*) ;; *) bad "$u: ExecStart '$start'" ;; esac
	key "$u" ExecStartPre | grep -qxF -- "$start --check-config" ||
		bad "$u: no ExecStartPre=$start --check-config"
	[ "$(key "$u" User)" = "$([ $d = client ] || echo ntun)" ] || bad "$u: User=$(key "$u" User)"
	# 3: the pre-start check passes on the example configuration (in /etc/ntun's place).
	conf=$(sed 's/.*--config \([^ ]*\).*/\1/' <<<"$start")
	conf=${conf//%i/site2}
	[ "$u" = ntun-client@.service ] && cp "$root/etc/ntun/client.yaml" "$root$conf"
	args=$(sed "s|^/usr/bin/ntun-$d ||; s|%i|site2|g; s|--config [^ ]*||" <<<"$start")
	(cd "$root/etc/ntun" && "$root/usr/bin/ntun-$d" --config "$root$conf" $args --check-config \
		>/dev/null) || bad "$u: --check-config on the example $conf fails"
done
for u in ntun-server.service ntun-proxy.service; do
	[ -z "$(caps $u CapabilityBoundingSet)$(caps $u AmbientCapabilities)" ] ||
		bad "$u: has capabilities: $(caps $u CapabilityBoundingSet)"
	grep -qx 'CapabilityBoundingSet=' "$units/$u" || bad "$u: no empty CapabilityBoundingSet="
done
want="CAP_BPF CAP_DAC_OVERRIDE CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_ADMIN CAP_SYS_PTRACE "
for u in ntun-client.service ntun-client@.service; do
	[ "$(caps $u CapabilityBoundingSet)" = "$want" ] ||
		bad "$u: CapabilityBoundingSet is '$(caps $u CapabilityBoundingSet)', want '$want'"
	must $u Delegate=yes
done

# 4: exposure scores (0 best, 10 worst).
for u in ntun-server:3.0 ntun-proxy:3.0 ntun-client:6.5; do
	n=${u%%:*} max=${u##*:}
	line=$(cd "$root" && systemd-analyze security --offline=yes --root="$root" "$n.service" 2>&1 |
		grep "Overall exposure level")
	echo "$n.service: ${line#*: } (ceiling $max)"
	score=$(grep -oE '[0-9]+\.[0-9]+' <<<"$line" | head -1)
	[ -n "$score" ] && awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' ||
		bad "$n.service: exposure '$score' over $max"
done

# 5: the checks catch a broken unit.
cp "$units/ntun-server.service" "$tmp/good"
mutate() { # mutate SED-EXPR WHAT: systemd-analyze verify must report the change
	sed "$1" "$tmp/good" >"$units/ntun-server.service"
	verify ntun-server.service >/dev/null && bad "checker accepted a unit with $2"
}
mutate 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "a misspelt key"
mutate 's|/usr/bin/ntun-server|/usr/bin/ntun-srever|' "a missing binary"
mutate 's/^Type=exec/Type=bogus/' "an invalid value"
mutate 's/^\[Service\]/[Servce]/' "an unknown section"
cp "$tmp/good" "$units/ntun-server.service"

[ $fail -eq 0 ] && echo "PASS: systemd units" || echo "FAIL: systemd units"
exit $fail
