#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A daemon killed (kill -9) in the middle of a transfer: the TCP peer it was relaying for must
# see a reset, never a FIN it would take for the clean end of a response or an upload.
#   client  an app reads a 4 MiB GET slowly; ntun-client is killed after its first 64 KiB:
#           the app's next reads must end in ECONNRESET, not EOF short of 4 MiB;
#   proxy   an app uploads the start of a 1 MB PUT and waits; ntun-proxy is killed: the
#           destination (reading to EOF) must see ECONNRESET, not an EOF short of 1 MB.
# (Found by tests/chaos: before the fix the kernel closed the daemon's sockets with a FIN.)
. "$(dirname "$0")/lib.sh"
e2e_init
TRAFFIC="$NTUN_SRC/tests/chaos/traffic.py"

start_proxy() {
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text
}

start_client() {
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text
}

setup() {
	topo_sites
	cg_make
	certs_make || return 1
	start dest web $PY "$TRAFFIC" serve --port 80 --log "$E2E_TMP/dest.jsonl"
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
	start_proxy
	start_client
	wait_log dest listening 10 && wait_registered 1 20 &&
		wait_log client "connected to server" 20
}

# The app of case_client (slowget.py): GET 4 MiB, read 64 KiB, wait for GO, read the rest;
# prints how the read ended (eof with the count, or the exception's name).
case_client() {
	local out
	app_start slowget cli $PY "$NTUN_SRC/tests/e2e/slowget.py" "$E2E_TMP/go" c1 4194304 20
	wait_log slowget reading 10 || return 1
	stop client KILL
	touch "$E2E_TMP/go"
	wait_log slowget "after" 10 || return 1
	out=$(cat "$E2E_TMP/slowget.log")
	e2e_log "  app: $out"
	check "the app saw a reset ($out)" grep -q "^ConnectionResetError" "$E2E_TMP/slowget.log"
}

# The app of case_proxy: announces a 1 MB upload, sends 100 kB of it, holds the connection.
PART_PUT='import socket, time
s = socket.create_connection(("100.64.1.5", 80), timeout=20)
s.sendall(b"p1 put 1000000 0 6\n" + bytes(100000))
print("sent", flush=True)
time.sleep(15)'

case_proxy() {
	local i m
	m=$(mark client)
	start_client
	since client "$m" "connected to server" 20 || return 1
	app_start partput cli $PY -c "$PART_PUT"
	wait_log partput sent 10 || return 1
	# The destination has the 100 kB (and with them the header it logs the upload under).
	for i in $(seq 1 100); do
		in_ns web ss -tinH state established '( sport = :80 )' |
			grep -Eq 'bytes_received:(1[0-9]{5}|[2-9][0-9]{5}|[0-9]{7,})' && break
		sleep 0.1
	done
	stop proxy KILL
	for i in $(seq 1 50); do
		grep -q '"p1"' "$E2E_TMP/dest.jsonl" 2>/dev/null && break
		sleep 0.1
	done
	e2e_log "  destination: $(grep '"p1"' "$E2E_TMP/dest.jsonl")"
	check "the destination saw a reset" grep -q '"id": "p1".*"end": "ECONNRESET"' \
		"$E2E_TMP/dest.jsonl"
}

run_case "setup: relay, proxy, client, destination" setup || exit 1
run_case "client killed mid-GET: the app sees ECONNRESET, not EOF" case_client
run_case "proxy killed mid-upload: the destination sees ECONNRESET, not EOF" case_proxy
e2e_summary
