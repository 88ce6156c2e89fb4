#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The daemons live within their systemd units' sandboxes: each runs under strace (namespaces
# cli, rly, site, web of tests/e2e/lib.sh) through start-up, a tunnel (compared with cmp), a
# /metrics scrape, SIGHUP and a SIGTERM drain; check_sandbox.py then checks every syscall against
# the unit's SystemCallFilter= and every socket family against its RestrictAddressFamilies=.
# Running as root here, the traces include the privilege drop the units' daemons do too.
. "$NTUN_SRC/tests/e2e/lib.sh"
e2e_init
command -v strace >/dev/null || { echo "SKIP: no strace (tools/install-deps.sh test)"; exit 77; }

# traced NAME NS BIN ARGS...: a daemon under strace -f, its log NAME.log. strace detaches on
# SIGTERM and leaves its tracee running: the daemon's own PID joins the cleanup list too.
traced() {
	local name=$1 ns=$2 bin=$3 i c pid=""
	shift 2
	start "$name" "$ns" strace -f -qq -o "$E2E_TMP/$name.strace" "$@"
	for i in $(seq 1 100); do
		for c in $(cat "/proc/$(pid_of "$name")/task/$(pid_of "$name")/children" 2>/dev/null); do
			[ "$(readlink "/proc/$c/exe")" = "$(readlink -f "$bin")" ] && pid=$c
		done
		[ -n "$pid" ] && break
		sleep 0.05
	done
	[ -n "$pid" ] || return 1
	E2E_PIDS+=("$pid")
	DAEMON_PID[$name]=$pid
}
declare -A DAEMON_PID

# halt NAME: SIGTERM to the daemon (not to strace), then strace ends with it (10 s at most).
halt() {
	local i
	kill -TERM "${DAEMON_PID[$1]}"
	for i in $(seq 1 100); do
		kill -0 "$(pid_of "$1")" 2>/dev/null || return 0
		sleep 0.1
	done
	e2e_log "$1 did not stop"
	return 1
}

run() {
	topo_sites
	cg_make
	certs_make || return 1
	mkdir -p "$E2E_TMP/www" && head -c 200000 /dev/urandom >"$E2E_TMP/www/blob"
	start web web $PY -m http.server 80 --bind 192.168.1.5 --directory "$E2E_TMP/www"
	traced server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--metrics 127.0.0.1:9100 --drain-timeout 1s || return 1
	traced proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --metrics 127.0.0.1:9100 --drain-timeout 1s || return 1
	traced client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) \
		--log-format text --metrics 127.0.0.1:9100 --drain-timeout 1s || return 1
	wait_log proxy "registered as" 30 && wait_log client "connected to server" 30 &&
		wait_log server "proxy registered" 30 || return 1
	local i d m
	for i in 1 2 3 4 5; do
		app cli curl -sS --max-time 10 -o "$E2E_TMP/got" http://100.64.1.5/blob && break
		sleep 0.5
	done
	check "the tunneled download is exact" cmp -s "$E2E_TMP/www/blob" "$E2E_TMP/got" || return 1
	for d in server:rly proxy:site client:cli; do
		in_ns "${d#*:}" curl -sS --max-time 5 -o /dev/null http://127.0.0.1:9100/metrics || return 1
	done
	for d in server proxy client; do
		m=$(mark "$d")
		kill -HUP "${DAEMON_PID[$d]}"
		since "$d" "$m" "reload" 10 || return 1
	done
	for d in client proxy server; do
		halt "$d" || return 1
	done
	local rc=0
	for d in server proxy client; do
		$PY "$NTUN_SRC/tests/deploy/check_sandbox.py" "$NTUN_SRC/deploy/systemd/ntun-$d.service.in" \
			"$E2E_TMP/$d.strace" || rc=1
	done
	return $rc
}
run_case "server, proxy and client stay inside their units' sandboxes" run
e2e_summary
