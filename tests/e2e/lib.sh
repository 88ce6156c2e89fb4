#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Shared pieces of ntun's end-to-end tests: namespaces joined by veth pairs, a child cgroup for
# the apps, certificates made at test time, daemons started by PID, a case runner printing
# PASS/FAIL/SKIP, and one cleanup trap that removes everything the test made.
# Source it, then call e2e_init. Nothing here touches the root namespace's routes or rules.

set -u
NTUN_BUILD=${NTUN_BUILD:-$(pwd)/build}
NTUN_SRC=${NTUN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# The daemons treat every NTUN_* variable as configuration: keep ours out of their environment.
export -n NTUN_BUILD NTUN_SRC
PY=/usr/bin/python3
NETAPP="$NTUN_SRC/tests/e2e/netapp.py"
BIN_SERVER="$NTUN_BUILD/user/server/ntun-server"
BIN_PROXY="$NTUN_BUILD/user/proxy/ntun-proxy"
BIN_CLIENT="$NTUN_BUILD/user/client/ntun-client"
BIN_GENCERTS="$NTUN_BUILD/user/gencerts/ntun-gencerts"

. "$(dirname "${BASH_SOURCE[0]}")/own.sh"

E2E_ID="$$"
E2E_TMP=""
E2E_NS=()
E2E_PIDS=()
E2E_CG=""
E2E_PASS=0
E2E_FAIL=0
E2E_SKIP=0
declare -A E2E_PID_OF

e2e_log() { printf '%s\n' "$*" >&2; }

e2e_cleanup() {
	local pid ns i stamp
	local -A mine=()
	for pid in "${E2E_PIDS[@]}"; do
		stamp=$(e2e_stamp "$pid") && mine[$pid]=$stamp
	done
	for pid in "${!mine[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for i in $(seq 1 30); do
		local alive=0
		for pid in "${!mine[@]}"; do
			e2e_same "$pid" "${mine[$pid]}" && alive=1
		done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for pid in "${!mine[@]}"; do
		e2e_same "$pid" "${mine[$pid]}" && kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for ns in "${E2E_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$E2E_CG" ] && [ -d "$E2E_CG" ]; then
		# Anything still in our cgroups goes back to the root first; innermost removed first.
		find "$E2E_CG" -depth -type d | while read -r d; do
			if [ -f "$d/cgroup.procs" ]; then
				while read -r p; do
					echo "$p" > "$E2E_CGROOT/cgroup.procs" 2>/dev/null
				done < "$d/cgroup.procs"
			fi
			rmdir "$d" 2>/dev/null
		done
	fi
	# A client that died without cleaning up leaves its own cgroup: ours by instance name.
	for d in "$E2E_CGROOT"/ntun-t"$E2E_ID"-*; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	for d in /sys/fs/bpf/ntun/t"$E2E_ID"*; do
		[ -e "$d" ] && rm -rf "$d"
	done
	if [ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ]; then
		if [ "${E2E_KEEP:-0}" = 1 ] || [ $E2E_FAIL -gt 0 ]; then
			e2e_log "logs kept in $E2E_TMP"
		else
			rm -rf "$E2E_TMP"
		fi
	fi
}

e2e_init() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: end-to-end tests need root"
		exit 77
	fi
	for b in "$BIN_SERVER" "$BIN_PROXY" "$BIN_CLIENT" "$BIN_GENCERTS"; do
		[ -x "$b" ] || { echo "FAIL: $b not built (NTUN_BUILD=$NTUN_BUILD)"; exit 1; }
	done
	E2E_CGROOT=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
	[ -n "$E2E_CGROOT" ] || { echo "FAIL: no cgroup v2 mount"; exit 1; }
	E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ntun-e2e.XXXXXX")
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
}

# ns_add NAME: a namespace with lo up. Names are made unique with the test's PID.
ns_add() {
	local ns="$1$E2E_ID"
	ip netns add "$ns"
	E2E_NS+=("$ns")
	ip -n "$ns" link set lo up
	eval "NS_$1=$ns"
}

# link A ADDR_A/LEN B ADDR_B/LEN: a veth pair between namespaces A and B (short names).
link() {
	local a="$1$E2E_ID" aa="$2" b="$3$E2E_ID" ba="$4" ia="v$1$3" ib="v$3$1"
	ip link add "$ia" netns "$a" type veth peer name "$ib" netns "$b"
	ip -n "$a" addr add "$aa" dev "$ia"
	ip -n "$b" addr add "$ba" dev "$ib"
	ip -n "$a" link set "$ia" up
	ip -n "$b" link set "$ib" up
}

# topo_sites: the namespaces of one tunnel end to end (NS_cli, NS_rly, NS_site, NS_web):
#   cli 10.10.1.1 --- 10.10.1.2 rly 10.10.2.2 --- 10.10.2.1 site 192.168.1.1 --- 192.168.1.5 web
# with interfaces v<here><there> (vwebsite is web's end). No default routes anywhere.
topo_sites() {
	ns_add cli
	ns_add rly
	ns_add site
	ns_add web
	link cli 10.10.1.1/24 rly 10.10.1.2/24
	link rly 10.10.2.2/24 site 10.10.2.1/24
	link site 192.168.1.1/24 web 192.168.1.5/24
}

# topo_two_sites: a client and a relay with two remote sites whose networks overlap:
#   cli 10.10.1.1 --- 10.10.1.2 rly 10.10.2.2 --- 10.10.2.1 s1 192.168.1.1 --- 192.168.1.5 w1
#                                   10.10.3.2 --- 10.10.3.1 s2 192.168.1.1 --- 192.168.1.5 w2
# (NS_cli, NS_rly, NS_s1, NS_s2, NS_w1, NS_w2). The server certificate must name 10.10.3.2.
topo_two_sites() {
	ns_add cli
	ns_add rly
	ns_add s1
	ns_add s2
	ns_add w1
	ns_add w2
	link cli 10.10.1.1/24 rly 10.10.1.2/24
	link rly 10.10.2.2/24 s1 10.10.2.1/24
	link rly 10.10.3.2/24 s2 10.10.3.1/24
	link s1 192.168.1.1/24 w1 192.168.1.5/24
	link s2 192.168.1.1/24 w2 192.168.1.5/24
}

# in_ns NAME CMD...: runs CMD in namespace NAME with the real /sys (bpffs, cgroupfs visible).
in_ns() {
	local ns="$1$E2E_ID"
	shift
	nsenter --net=/run/netns/"$ns" "$@"
}

# cg_make: the apps' cgroup, a child of a test cgroup under the v2 root. Never the root.
cg_make() {
	E2E_CG="$E2E_CGROOT/ntun-test-$E2E_ID"
	mkdir -p "$E2E_CG/apps"
	CG_APPS="$E2E_CG/apps"
}

# app NS CMD...: runs CMD as an application: in the apps cgroup, then in namespace NS.
app() {
	local ns="$1$E2E_ID"
	shift
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter --net=/run/netns/"$@"' \
		_ "$CG_APPS" "$ns" "$@"
}

# start NAME NS CMD...: starts a daemon in the background in NS, logging to $E2E_TMP/NAME.log.
start() {
	local name="$1" ns="$2$E2E_ID"
	shift 2
	nsenter --net=/run/netns/"$ns" "$@" >>"$E2E_TMP/$name.log" 2>&1 &
	E2E_PIDS+=("$!")
	E2E_PID_OF[$name]=$!
}

# app_start NAME NS CMD...: like app, but in the background, output in $E2E_TMP/NAME.log; the
# PID is the command's own (pid_of NAME, so it can be signalled) and the cleanup trap kills it.
app_start() {
	local name="$1" ns="$2$E2E_ID"
	shift 2
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec nsenter --net=/run/netns/"$@"' \
		_ "$CG_APPS" "$ns" "$@" >>"$E2E_TMP/$name.log" 2>&1 &
	E2E_PIDS+=("$!")
	E2E_PID_OF[$name]=$!
}

pid_of() { echo "${E2E_PID_OF[$1]:-}"; }

# stop NAME [SIGNAL]: signals a daemon and waits for it (5 s, then KILL).
stop() {
	local pid="${E2E_PID_OF[$1]}" i stamp
	stamp=$(e2e_stamp "$pid") || return 0
	kill -"${2:-TERM}" "$pid" 2>/dev/null
	for i in $(seq 1 50); do
		e2e_same "$pid" "$stamp" || break
		sleep 0.1
	done
	e2e_same "$pid" "$stamp" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# wait_log NAME REGEX [SECONDS]: waits until the daemon's log matches.
wait_log() {
	local f="$E2E_TMP/$1.log" re="$2" t="${3:-10}" i
	for i in $(seq 1 $((t * 10))); do
		grep -Eq -- "$re" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	e2e_log "timeout waiting for /$re/ in $1.log; tail:"
	tail -n 20 "$f" >&2
	return 1
}

# wait_file PATH [SECONDS]: waits until PATH exists (e.g. netapp's --paused-file: a transfer
# is established and paused), instead of guessing how long that takes on a loaded machine.
wait_file() {
	local i
	for i in $(seq 1 $((${2:-20} * 10))); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	e2e_log "timeout waiting for $1"
	return 1
}

# mark NAME: the number of lines in NAME's log now, for since.
mark() {
	local n
	n=$(grep -c "" "$E2E_TMP/$1.log" 2>/dev/null)
	echo "${n:-0}"
}

# since NAME MARK REGEX [SECONDS]: waits for REGEX in NAME's log after line MARK.
since() {
	local i
	for i in $(seq 1 $((${4:-10} * 10))); do
		tail -n +"$(($2 + 1))" "$E2E_TMP/$1.log" | grep -Eq -- "$3" && return 0
		sleep 0.1
	done
	e2e_log "no /$3/ in $1.log after line $2; tail:"
	tail -n 8 "$E2E_TMP/$1.log" >&2
	return 1
}

# rss_kib PID: resident set size in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# json_get JSON KEY: a top-level value from netapp's summary line.
json_get() { $PY -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

# certs_make [GENCERTS ARGS...]: certificates in $CERTS. Clients and proxies check the server's
# name (the host of --server): the server certificate names the relay addresses the tests dial.
certs_make() {
	"$BIN_GENCERTS" --out "$E2E_TMP/certs" --server-san 10.10.1.2 --server-san 10.10.2.2 "$@" \
		>/dev/null || return 1
	CERTS="$E2E_TMP/certs"
}

# certs_two_sites: certificates for topo_two_sites with a proxy per site (ids proxy-a and
# proxy-b; proxy-b's in $CERTS/proxy-b).
certs_two_sites() {
	certs_make --server-san 10.10.3.2 --proxy-id proxy-a || return 1
	"$BIN_GENCERTS" --out "$CERTS" --issue proxy --id proxy-b --name proxy-b >/dev/null
}

# wait_registered N [SECONDS]: until the server's log says N proxies registered (default 5 s).
wait_registered() {
	local i
	for i in $(seq 1 $((${2:-5} * 10))); do
		[ "$(grep -c "proxy registered" "$E2E_TMP/server.log")" -ge "$1" ] && return 0
		sleep 0.1
	done
	e2e_log "$1 proxies did not register"
	return 1
}

# tls_args ROLE [DIR]: the --tls-* flags for a role's certificate.
tls_args() {
	local d="${2:-$CERTS}"
	echo --tls-cert "$d/$1/cert.pem" --tls-key "$d/$1/key.pem" --tls-ca "$d/ca/cert.pem"
}

# run_case NAME FUNC: runs one case, prints PASS/FAIL/SKIP (FUNC returns 0, 1 or 77); returns 1
# on FAIL, so "run_case ... setup || exit 1" stops a test whose set-up failed.
run_case() {
	local name="$1" rc
	shift
	e2e_log "--- $name"
	"$@"
	rc=$?
	case $rc in
	0) echo "PASS: $name"; E2E_PASS=$((E2E_PASS + 1)) ;;
	77) echo "SKIP: $name"; E2E_SKIP=$((E2E_SKIP + 1)) ;;
	*) echo "FAIL: $name"; E2E_FAIL=$((E2E_FAIL + 1)); return 1 ;;
	esac
}

e2e_summary() {
	echo "== $E2E_PASS passed, $E2E_FAIL failed, $E2E_SKIP skipped"
	[ $E2E_FAIL -eq 0 ]
}

# check COND_DESC CMD...: runs CMD, logs COND_DESC on failure; returns CMD's status.
check() {
	local what="$1"
	shift
	if ! "$@"; then
		e2e_log "check failed: $what"
		return 1
	fi
}
