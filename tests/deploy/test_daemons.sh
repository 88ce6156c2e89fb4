#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The deployment files against the three daemons running (tests/e2e/lib.sh namespaces cli, rly,
# site, web), each under strace, through start-up, a tunnel (compared with cmp), a /metrics
# scrape, SIGHUP and a SIGTERM drain:
#  - grafana: every metric and label deploy/grafana/ntun.json queries is in the scraped
#    /metrics of a daemon (check_grafana.py);
#  - sandbox: every syscall is allowed by the daemon's unit's SystemCallFilter= and every socket
#    family by its RestrictAddressFamilies= (check_sandbox.py); running as root here, the
#    traces include the privilege drop the units' daemons do too.
. "$NTUN_SRC/tests/e2e/lib.sh"
e2e_init
STRACE=$(command -v strace) # without it (tools/install-deps.sh test) only the sandbox case skips

# traced NAME NS BIN ARGS...: a daemon under strace -f, its log NAME.log. strace detaches on
# SIGTERM and leaves its tracee running: the daemon's own PID joins the cleanup list too.
traced() {
	local name=$1 ns=$2 bin=$3 i c pid=""
	shift 2
	if [ -z "$STRACE" ]; then
		start "$name" "$ns" "$@"
		DAEMON_PID[$name]=$(pid_of "$name")
		return 0
	fi
	start "$name" "$ns" "$STRACE" -f -qq -o "$E2E_TMP/$name.strace" "$@"
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

setup() {
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
	local i
	# One tunnel, byte-exact, so that the counters have moved when they are scraped.
	for i in 1 2 3 4 5; do
		app cli curl -sS --max-time 10 -o "$E2E_TMP/got" http://100.64.1.5/blob && break
		sleep 0.5
	done
	check "the tunneled download is exact" cmp -s "$E2E_TMP/www/blob" "$E2E_TMP/got"
}

grafana() {
	local d
	for d in server:rly proxy:site client:cli; do
		in_ns "${d#*:}" curl -sS --max-time 5 -o "$E2E_TMP/${d%:*}.prom" \
			http://127.0.0.1:9100/metrics || return 1
		grep -q '^ntun_build_info' "$E2E_TMP/${d%:*}.prom" || return 1
	done
	$PY "$NTUN_SRC/tests/deploy/check_grafana.py" "$NTUN_SRC/deploy/grafana/ntun.json" \
		"$E2E_TMP"/{server,proxy,client}.prom
}

sandbox() {
	local d m rc=0
	[ -n "$STRACE" ] || return 77
	for d in server proxy client; do
		m=$(mark "$d")
		kill -HUP "${DAEMON_PID[$d]}"
		since "$d" "$m" "reload" 10 || return 1
	done
	for d in client proxy server; do
		halt "$d" || return 1
	done
	for d in server proxy client; do
		$PY "$NTUN_SRC/tests/deploy/check_sandbox.py" "$NTUN_SRC/deploy/systemd/ntun-$d.service.in" \
			"$E2E_TMP/$d.strace" || rc=1
	done
	return $rc
}

run_case "three daemons under strace, one tunnel" setup || exit 1
run_case "grafana: the dashboard's metrics are served" grafana
run_case "sandbox: daemons stay inside their units' filters" sandbox
e2e_summary
