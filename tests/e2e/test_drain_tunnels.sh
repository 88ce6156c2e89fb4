#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ntun-server stopped (SIGTERM) while a tunnel is in flight and its app does not read: the drain
# deadline closes the peers, the tunnel's app sees a reset, and the server exits 0 having freed
# every tunnel (the sanitizer build's LeakSanitizer reports nothing at exit). Found by
# tests/chaos: the server stopped its loop as its last peer closed, before the tunnels of the
# closed peers had ended, and left them behind.
. "$(dirname "$0")/lib.sh"
e2e_init
TRAFFIC="$NTUN_SRC/tests/chaos/traffic.py"

setup() {
	topo_sites
	cg_make
	certs_make || return 1
	start dest web $PY "$TRAFFIC" serve --port 80 --log "$E2E_TMP/dest.jsonl"
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--drain-timeout 1s
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text
	wait_log dest listening 10 && wait_registered 1 20 &&
		wait_log client "connected to server" 20
}

# Three apps (slowget.py) each GET 8 MiB, read 64 KiB, then wait for GO; then read on.
case_drain() {
	local i pid rc
	for i in 1 2 3; do
		app_start "slow$i" cli $PY "$NTUN_SRC/tests/e2e/slowget.py" "$E2E_TMP/go" "d$i" 8388608 30
	done
	for i in 1 2 3; do
		wait_log "slow$i" reading 20 || return 1
	done
	pid=$(pid_of server)
	kill -TERM "$pid"
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid"
	rc=$?
	touch "$E2E_TMP/go"
	for i in 1 2 3; do
		wait_log "slow$i" "after" 20 || return 1
		e2e_log "  app $i: $(tail -n 1 "$E2E_TMP/slow$i.log")"
	done
	e2e_log "  server exit status $rc; $(grep -c "LeakSanitizer" "$E2E_TMP/server.log") sanitizer report(s)"
	check "the server exited 0" [ "$rc" = 0 ] || return 1
	check "no leak report" [ "$(grep -c LeakSanitizer "$E2E_TMP/server.log")" = 0 ] || return 1
	for i in 1 2 3; do
		check "app $i saw a reset" grep -q "^ConnectionResetError" "$E2E_TMP/slow$i.log" ||
			return 1
	done
}

run_case "setup: relay, proxy, client, destination" setup || exit 1
run_case "SIGTERM with tunnels in flight: apps reset, server exits 0, nothing leaked" case_drain
e2e_summary
