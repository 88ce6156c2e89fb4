#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Live counters in /metrics: the byte counters of all three daemons grow while a tunnel is still
# open (not only when it ends), and once every transfer is done they equal the bytes the apps
# moved, exactly; the labelled rows (per route and proxy on the server, per server on the client
# and proxy) and the connect-time and duration histograms agree, and every daemon's exposition
# passes Prometheus' own parser.
#
#   ns cli (client host)          ns rly (relay)             ns site (remote site)    ns web
#   app in cgroup apps            ntun-server :8443          ntun-proxy (dials out)   192.168.1.5
#   ntun-client                   metrics 127.0.0.1:9100     metrics 127.0.0.1:9100   :80 netapp
#   metrics 127.0.0.1:9100
#   10.10.1.1 ----------------- 10.10.1.2
#                                10.10.2.2 ----------------- 10.10.2.1
#                                                            192.168.1.1 ------------ 192.168.1.5
#
# The app dials 100.64.1.5 (the proxy's virtual 100.64.1.0/24 -> real 192.168.1.0/24).
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
ROUTE='route="100.64.1.0/24",proxy="proxy-1"'
ECHO_SIZE=$((24 * 1024 * 1024)) # sent at ECHO_RATE: about 8 s with the tunnel open
ECHO_RATE=$((3 * 1024 * 1024))
GETS=5
GET_SIZE=$((1024 * 1024))

setup() {
	topo_sites
	cg_make
	certs_make || return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--metrics 127.0.0.1:9100 --ping-interval 2s --ping-timeout 4s
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --ping-interval 2s --ping-timeout 4s --metrics 127.0.0.1:9100
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" $(tls_args client) \
		--log-format text --ping-interval 2s --ping-timeout 4s --metrics 127.0.0.1:9100
	wait_log web listening 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log client "connected to server" 10 || return 1
	wait_log server "proxy registered" 10 || return 1
}

# scrape DAEMON: its /metrics into $E2E_TMP/DAEMON.prom.
scrape() {
	local ns
	case $1 in server) ns=rly ;; proxy) ns=site ;; client) ns=cli ;; esac
	in_ns $ns curl -sS --max-time 5 -H "Host: 127.0.0.1:9100" http://127.0.0.1:9100/metrics \
		>"$E2E_TMP/$1.prom"
}

# metric DAEMON NAME: a sample of the last scrape (exact name with labels), "" if absent.
metric() { awk -v n="$2" '$1 == n { print $2 }' "$E2E_TMP/$1.prom"; }

# eq WHAT GOT WANT
eq() {
	[ "$2" = "$3" ] || { e2e_log "  $1: got '$2', want '$3'"; return 1; }
}

case_grow_while_open() {
	local bg i d up down prev_up prev_down samples=0 open ok=0 first_up=
	declare -A last_up last_down
	for d in server proxy client; do last_up[$d]=0; last_down[$d]=0; done
	app cli $PY "$NETAPP" client echo --host $VIP --port 80 --size $ECHO_SIZE --seed 11 \
		--rate $ECHO_RATE --timeout 120 >"$E2E_TMP/echo.out" 2>&1 &
	bg=$!
	sleep 1.5
	# Up to 12 rounds 0.8 s apart; a round counts if the tunnel was open in every daemon's
	# scrape. The first such round is the baseline (the tunnel may have just opened, counters
	# still 0); in every later one every daemon's counters must have grown since the round
	# before.
	for i in $(seq 1 12); do
		kill -0 $bg 2>/dev/null || break
		for d in server proxy client; do scrape $d || { kill $bg 2>/dev/null; return 1; }; done
		open=1
		for d in server proxy client; do
			[ "$(metric $d ntun_tunnels_active)" = 1 ] || open=0
		done
		if [ $open = 1 ]; then
			samples=$((samples + 1))
			ok=1
			for d in server proxy client; do
				up=$(metric $d ntun_tunnel_bytes_up_total)
				down=$(metric $d ntun_tunnel_bytes_down_total)
				prev_up=${last_up[$d]}
				prev_down=${last_down[$d]}
				e2e_log "  round $i $d: up $up down $down (tunnel open)"
				if [ "${up:-0}" -le "$prev_up" ] || [ "${down:-0}" -le "$prev_down" ]; then
					ok=0
				fi
				last_up[$d]=${up:-0}
				last_down[$d]=${down:-0}
			done
			if [ $samples = 1 ]; then
				first_up=${last_up[client]}
			else
				check "round $i: every daemon's byte counters grew while the tunnel was open" \
					[ $ok = 1 ] || { wait $bg; return 1; }
			fi
		fi
		sleep 0.8
	done
	wait $bg
	local rc=$?
	e2e_log "  echo: $(cat "$E2E_TMP/echo.out")"
	[ $rc -eq 0 ] || return 1
	check "at least 3 rounds with the tunnel open (got $samples)" [ $samples -ge 3 ] || return 1
	# What the first open round saw was short of the whole transfer. (The last one may not be:
	# a tunnel stays open for the half-close's round trip after the client has read the app's
	# last byte.)
	check "counters seen mid-transfer were partial" [ "$first_up" -lt $((ECHO_SIZE + 5)) ]
}

case_totals_exact() {
	local out d up down want_up want_down seeds i server_lbl
	out=$(app cli $PY "$NETAPP" client get --host $VIP --port 80 --count $GETS \
		--size $GET_SIZE --seed 100 --timeout 60)
	local rc=$?
	e2e_log "  gets: $out"
	[ $rc -eq 0 ] || return 1
	# What the apps moved: "ECHO\n" and the echoed bytes up, the echo down; each GET's
	# request line up ("GET 1048576 100\n" ... seeds 100..104) and its payload down.
	want_up=$((5 + ECHO_SIZE))
	want_down=$ECHO_SIZE
	for i in $(seq 0 $((GETS - 1))); do
		seeds="GET $GET_SIZE $((100 + i))"
		want_up=$((want_up + ${#seeds} + 1))
		want_down=$((want_down + GET_SIZE))
	done
	# The last relay's close is accounted in each daemon once its own side is done: the
	# trailers reach the client last.
	for d in server proxy client; do
		for i in $(seq 1 100); do
			scrape $d || return 1
			[ "$(metric $d ntun_tunnels_active)" = 0 ] && break
			sleep 0.1
		done
	done
	for d in server proxy client; do
		scrape $d || return 1
		eq "$d tunnels open" "$(metric $d ntun_tunnels_active)" 0 || return 1
		eq "$d bytes up" "$(metric $d ntun_tunnel_bytes_up_total)" $want_up || return 1
		eq "$d bytes down" "$(metric $d ntun_tunnel_bytes_down_total)" $want_down || return 1
		eq "$d tunnels" "$(metric $d ntun_tunnels_total)" $((GETS + 1)) || return 1
		eq "$d duration count" "$(metric $d ntun_tunnel_duration_seconds_count)" $((GETS + 1)) ||
			return 1
		eq "$d duration +Inf" "$(metric $d 'ntun_tunnel_duration_seconds_bucket{le="+Inf"}')" \
			$((GETS + 1)) || return 1
		eq "$d connect count" "$(metric $d ntun_tunnel_connect_seconds_count)" $((GETS + 1)) ||
			return 1
		check "$d: Prometheus' parser takes the exposition" \
			$PY "$NTUN_SRC/tests/unit/prom_parse.py" <"$E2E_TMP/$d.prom" >/dev/null || return 1
	done
	# The labelled rows carry the same totals.
	eq "server route up" "$(metric server "ntun_route_tunnel_bytes_up_total{$ROUTE}")" $want_up &&
		eq "server route down" "$(metric server "ntun_route_tunnel_bytes_down_total{$ROUTE}")" \
			$want_down &&
		eq "server route tunnels" "$(metric server "ntun_route_tunnels_total{$ROUTE}")" \
			$((GETS + 1)) &&
		eq "server route open" "$(metric server "ntun_route_tunnels_open{$ROUTE}")" 0 &&
		eq "server dial failures" "$(metric server "ntun_route_dial_failures_total{$ROUTE}")" 0 ||
		return 1
	for d in client proxy; do
		[ $d = client ] && server_lbl='server="10.10.1.2:8443"' || server_lbl='server="10.10.2.2:8443"'
		eq "$d server up" "$(metric $d "ntun_server_tunnel_bytes_up_total{$server_lbl}")" \
			$want_up &&
			eq "$d server down" \
				"$(metric $d "ntun_server_tunnel_bytes_down_total{$server_lbl}")" $want_down &&
			eq "$d server tunnels" "$(metric $d "ntun_server_tunnels_total{$server_lbl}")" \
				$((GETS + 1)) || return 1
	done
}

case_dial_failure() {
	local out
	# Port 81 is closed at the site: the proxy's connect is refused, the Dial fails. (The
	# server's connect time may count it: a probe the proxy answered first counts as its
	# answer; the proxy's does not, its connect() failed.)
	out=$(app cli $PY "$NETAPP" client refused --host $VIP --port 81 --timeout 5)
	e2e_log "  refused: $out"
	[ "$(json_get "$out" ok)" = 1 ] || return 1
	sleep 0.5
	scrape server && scrape proxy || return 1
	eq "server dial failures" "$(metric server "ntun_route_dial_failures_total{$ROUTE}")" 1 &&
		eq "server failed" "$(metric server ntun_tunnels_failed_total)" 1 &&
		eq "proxy connect count" "$(metric proxy ntun_tunnel_connect_seconds_count)" \
			$((GETS + 1))
}

run_case "setup" setup || exit 1
run_case "byte counters grow while the tunnel is open" case_grow_while_open
run_case "totals, rows and histograms equal what the apps moved" case_totals_exact
run_case "a refused Dial counts as a dial failure of its route and proxy" case_dial_failure
e2e_summary
