#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The connection window over a long path. Each HTTP/2 connection grants its peer a receive
# window sized to the path (rate x smallest round trip, 512 KiB at least): short enough on a
# LAN that a small answer does not queue behind megabytes of bulk in the socket buffers, and
# grown on a long path so that one stream can still fill it.
#
#   ns cli                      ns rly                    ns site              ns web
#   app, ntun-client            ntun-server :8443         ntun-proxy           192.168.1.5:80
#   10.10.1.1 (tun) ~ delayline 40 ms each way ~ 10.10.1.2 (tun)
#                               10.10.2.2 --------------- 10.10.2.1 (veth)
#                                                         192.168.1.1 -------- 192.168.1.5
#
# Checks, with every transfer hash-checked: a 48 MiB download over the 80 ms path arrives whole
# and the client raised the window of its server connection past what one round trip of the
# floor allows; the server never raised the window of its proxy connection (a veth, where the
# floor is plenty); a 1 KiB exchange on a second connection completes during the download.
# Throughput is tools/bench's business: nothing here is timed beyond generous deadlines.
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
DELAYLINE="$NTUN_BUILD/tests/e2e/delayline"
[ -x "$DELAYLINE" ] || { echo "FAIL: $DELAYLINE not built"; exit 1; }

setup() {
	ns_add cli
	ns_add rly
	ns_add site
	ns_add web
	link rly 10.10.2.2/24 site 10.10.2.1/24
	link site 192.168.1.1/24 web 192.168.1.5/24
	start delay cli "$DELAYLINE" "$NS_cli" dl0 "$NS_rly" dl0 40
	wait_log delay ready 10 || return 1
	ip -n "$NS_cli" addr add 10.10.1.1 peer 10.10.1.2 dev dl0 &&
		ip -n "$NS_rly" addr add 10.10.1.2 peer 10.10.1.1 dev dl0 &&
		ip -n "$NS_cli" link set dl0 mtu 9000 up &&
		ip -n "$NS_rly" link set dl0 mtu 9000 up || return 1
	cg_make
	certs_make || return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--log-level info --admin off
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --admin off
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) \
		--log-format text --log-level info --admin off
	wait_log web listening 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log client "connected to server" 15 || return 1
	wait_log server "proxy registered" 10 || return 1
	# the path is as long as it claims: the TCP handshake alone takes a round trip
	local rtt
	rtt=$(in_ns cli ss -tni dst 10.10.1.2 | sed -n 's/.* rtt:\([0-9.]*\).*/\1/p' | head -1)
	e2e_log "  client-server TCP rtt: ${rtt:-?} ms"
	awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 75) }' || { e2e_log "path RTT ${rtt:-?} ms, not 80"; return 1; }
}

client() {
	local mode="$1"
	shift
	app cli $PY "$NETAPP" client "$mode" --host $VIP --port 80 --timeout 120 "$@"
}

case_window_grows() {
	local m out raised
	m=$(mark client)
	app_start bulk cli $PY "$NETAPP" client get --host $VIP --port 80 --timeout 120 \
		--size $((48 * 1024 * 1024)) --seed 7
	# a small exchange on its own connection while the download runs
	sleep 1
	out=$(client echo --size 1024 --seed 8) || { e2e_log "  echo during the download: $out"; return 1; }
	e2e_log "  1 KiB echo during the download: $out"
	for _ in $(seq 1 1200); do
		kill -0 "$(pid_of bulk)" 2>/dev/null || break
		sleep 0.1
	done
	wait "$(pid_of bulk)"
	local rc=$?
	e2e_log "  48 MiB download over 80 ms: $(tail -n 1 "$E2E_TMP/bulk.log")"
	[ $rc -eq 0 ] || return 1
	grep -q '"ok": *true\|"ok": *1' "$E2E_TMP/bulk.log" || return 1
	# the client's connection to the server: raised, past 1 MiB (the floor is 512 KiB; at
	# the floor an 80 ms path carries at most 6.5 MB/s, which the gain turns into 2 MB)
	raised=$(tail -n +"$((m + 1))" "$E2E_TMP/client.log" |
		sed -n 's/.*receive window raised to \([0-9]*\) bytes.*/\1/p' | sort -n | tail -1)
	e2e_log "  client's largest window: ${raised:-none} bytes"
	[ -n "$raised" ] && [ "$raised" -gt $((1024 * 1024)) ] || return 1
}

case_short_link_stays_small() {
	# the server received only requests from the client, and from the proxy (on a veth)
	# the download: that connection's window stays at the floor
	if grep "receive window raised" "$E2E_TMP/server.log" | grep -q "proxy/"; then
		e2e_log "  the server raised its window towards the proxy on a veth:"
		grep "receive window raised" "$E2E_TMP/server.log" >&2
		return 1
	fi
	grep -q "receive window raised" "$E2E_TMP/proxy.log" && {
		e2e_log "  the proxy raised its window on a veth"
		return 1
	}
	return 0
}

run_case setup setup || { e2e_summary; exit 1; }
run_case "48 MiB over an 80 ms path: exact, and the client's window grew" case_window_grows
run_case "the proxy's veth connection kept the floor" case_short_link_stays_small
stop delay
e2e_log "  delayline: $(tail -n 1 "$E2E_TMP/delay.log")"
e2e_summary
