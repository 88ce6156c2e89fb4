#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Attacks that need no certificate: handshake floods and slowloris on the server's TLS port,
# DNS rebinding and slowloris on /metrics. The server must stay small and keep serving.
#
#   ns cli (client host)          ns rly (relay)              ns site (remote site)    ns web
#   app in cgroup apps            ntun-server :8443           ntun-proxy (dials out)   192.168.1.5
#   ntun-client                   metrics 127.0.0.1:9100      managed 192.168.1.0/24   :80 netapp
#   10.10.1.1 ----------------- 10.10.1.2
#                                10.10.2.2 ------------------ 10.10.2.1
#                                                             192.168.1.1 ------------ 192.168.1.5
#   ns atk (attacker, hsflood.py)
#   10.10.3.10 .. 10.10.3.21 -- 10.10.3.1
#
# The honest client is connected before each attack (its tunnel is one long-lived connection);
# its fetches (4 MiB, SHA-256 checked) must take at most twice their unloaded time: the median
# of 3 during the attack against the larger of the medians of 5 right before it and 5 right
# after it, with a 200 ms floor (on this shared 2-core machine a 4 MiB fetch takes ~50-150 ms
# and jitters by as much; a baseline taken once at the start failed a run at load average
# 15-28, the machine busier later).
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
HS_TIMEOUT=6         # --handshake-timeout, seconds
PER_SOURCE=64        # max_handshakes_per_source default
TOTAL_RELOADED=256   # max_handshakes set by the reload in case a2
FLOOD=960            # connections per flood
FETCH=$((4 * 1024 * 1024))
# Server RSS growth during a flood, over its RSS before the first one: 12 MiB for the honest
# fetches and the heap's slack, plus 64 KiB per handshake the caps admit. Today a handshake
# in progress costs ~57 KiB (an 81 KiB read buffer, partly touched, plus OpenSSL's state);
# unbounded, the 960 connections of one flood cost ~50 MiB.
rss_bound_kib() { echo $((12 * 1024 + $1 * 64)); }
ATK_SRCS=""

setup() {
	ns_add cli
	ns_add rly
	ns_add site
	ns_add web
	ns_add atk
	link cli 10.10.1.1/24 rly 10.10.1.2/24
	link rly 10.10.2.2/24 site 10.10.2.1/24
	link site 192.168.1.1/24 web 192.168.1.5/24
	link atk 10.10.3.10/24 rly 10.10.3.1/24
	local i
	for i in $(seq 11 21); do
		ip -n "$NS_atk" addr add 10.10.3.$i/24 dev vatkrly
	done
	ATK_SRCS=$(seq -s, -f '10.10.3.%g' 10 21)
	cg_make
	certs_make || return 1
	# The server's configuration file: case a2 adds a key and reloads it.
	: >"$E2E_TMP/server.yaml"
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml" --listen 0.0.0.0:8443 \
		$(tls_args server) --log-format text --metrics 127.0.0.1:9100 \
		--handshake-timeout ${HS_TIMEOUT}s --ping-interval 2s --ping-timeout 4s
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --ping-interval 2s --ping-timeout 4s
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text --ping-interval 2s --ping-timeout 4s
	wait_log web listening 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log client "connected to server" 10 || return 1
	wait_log server "proxy registered" 10 || return 1
	# Unloaded fetch time, and the server's RSS before any attack.
	UNLOADED=$(fetch_median 5 100) || return 1
	RSS0=$(rss_kib "$(pid_of server)")
	e2e_log "  unloaded fetch median ${UNLOADED}s, server RSS ${RSS0} KiB"
	echo "unloaded 4 MiB fetch: median ${UNLOADED}s; server RSS before attacks ${RSS0} KiB" \
		>>"$E2E_TMP/measurements"
}

# fetch_median N SEED: N sequential hash-checked 4 MiB fetches through the tunnel; prints the
# median of their times in seconds, fails if any fetch failed.
fetch_median() {
	local n="$1" seed="$2" i out times=()
	for i in $(seq 1 "$n"); do
		out=$(app cli $PY "$NETAPP" client get --host $VIP --port 80 --size $FETCH \
			--seed $((seed + i)) --timeout 20) || { e2e_log "  fetch failed: $out"; return 1; }
		[ "$(json_get "$out" ok)" = 1 ] || return 1
		times+=("$(json_get "$out" seconds)")
	done
	printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# metric NAME: one value from the server's /metrics (exact name, labels included).
metric() {
	in_ns rly curl -sS --max-time 3 -H "Host: 127.0.0.1:9100" http://127.0.0.1:9100/metrics |
		awk -v n="$1" '$1 == n { print $2 }'
}

# flood NAME ARGS...: runs hsflood.py in ns atk against the TLS port in the background;
# its JSON summary goes to $E2E_TMP/NAME.json. Waits until every connection is open.
flood() {
	local name="$1" i
	shift
	PRE=$(fetch_median 5 $((RANDOM + 5000))) || return 1
	rm -f "$E2E_TMP/$name.ready"
	in_ns atk $PY "$NTUN_SRC/tests/e2e/hsflood.py" tls --host 10.10.3.1 --port 8443 \
		--ready "$E2E_TMP/$name.ready" "$@" >"$E2E_TMP/$name.json" 2>"$E2E_TMP/$name.err" &
	FLOOD_PID=$!
	E2E_PIDS+=("$FLOOD_PID")
	for i in $(seq 1 200); do
		[ -s "$E2E_TMP/$name.ready" ] && return 0
		sleep 0.1
	done
	e2e_log "  flood $name: connections not open after 20 s"
	return 1
}

# under_flood NAME ADMITTED: while a flood holds its connections, samples the server's RSS and
# times honest fetches; then waits for the flood and checks what it saw. ADMITTED is how many
# of its connections the caps let into a handshake.
under_flood() {
	local name="$1" admitted="$2" rc=0 max=0 r i loaded bound out post unloaded
	sleep 1.5
	for i in $(seq 1 5); do
		r=$(rss_kib "$(pid_of server)")
		[ "$r" -gt $max ] && max=$r
		sleep 0.2
	done
	loaded=$(fetch_median 3 $((RANDOM + 1000))) || { e2e_log "  fetch under flood failed"; rc=1; }
	r=$(rss_kib "$(pid_of server)")
	[ "$r" -gt $max ] && max=$r
	wait "$FLOOD_PID"
	post=$(fetch_median 5 $((RANDOM + 9000))) || rc=1
	unloaded=$($PY -c 'import sys; print(max(float(v) for v in sys.argv[1:] if v))' \
		"$PRE" "${post:-}")
	out=$(cat "$E2E_TMP/$name.json")
	e2e_log "  flood: $out"
	bound=$(rss_bound_kib "$admitted")
	e2e_log "  server RSS peak $max KiB, +$((max - RSS0)) KiB (bound +$bound KiB);" \
		"fetch median ${loaded:-none}s (unloaded ${PRE}s before, ${post:-none}s after)"
	echo "$name: server RSS +$((max - RSS0)) KiB (bound +$bound), fetch ${loaded:-none}s" \
		"vs ${unloaded}s unloaded; $out" >>"$E2E_TMP/measurements"
	[ -n "$out" ] || return 1
	# Excess connections were closed at once: at most ADMITTED still open 1.5 s after the
	# last one opened. Every connection reached the server: it was established, or reset by
	# the server right after accept (seen by the attacker as a failed connect).
	check "all $FLOOD connections reached the server" [ $(($(json_get "$out" opened) + \
		$(json_get "$out" reset_at_connect))) -eq $FLOOD ] || rc=1
	check "at most $admitted left open" [ "$(json_get "$out" open_early)" -le "$admitted" ] || rc=1
	# The handshake deadline ended every admitted one.
	check "none open at the end" [ "$(json_get "$out" open_at_end)" -eq 0 ] || rc=1
	# The flood's handshakes run on the same CPUs as the honest fetch (two here, shared with
	# other work): 12 sources' 256 admitted handshakes made a fetch 2.2x slower on a loaded
	# machine without anything being starved. Starvation (a server busy in handshakes while
	# the client waits) shows as far more, or as a failed fetch.
	if [ -n "$loaded" ]; then
		check "fetch under flood within 3x unloaded" $PY -c 'import sys
l, u = float(sys.argv[1]), max(float(sys.argv[2]), 0.2)
sys.exit(0 if l <= 3 * u else 1)' "$loaded" "$unloaded" || rc=1
	fi
	if [ "${E2E_SANITIZED:-0}" = 1 ]; then
		e2e_log "  sanitizer build: RSS bound not checked"
	else
		check "RSS growth within bound" [ $((max - RSS0)) -le "$bound" ] || rc=1
	fi
	return $rc
}

case_flood_one_source() {
	local rc=0 v
	flood a1 --sources 10.10.3.10 --count $FLOOD --duration $((HS_TIMEOUT + 4)) || return 1
	under_flood a1 $PER_SOURCE || rc=1
	v=$(metric 'ntun_handshakes_refused_total{reason="source"}')
	e2e_log "  refused (source) = ${v:-missing}"
	check "refusals counted" [ "${v:-0}" -ge $((FLOOD - PER_SOURCE)) ] || rc=1
	return $rc
}

case_flood_many_sources() {
	local rc=0 v
	# Twelve addresses admit 12 x 64 = 768 under the per-source cap: the total binds first.
	echo "max_handshakes: $TOTAL_RELOADED" >"$E2E_TMP/server.yaml"
	kill -HUP "$(pid_of server)"
	wait_log server "configuration reloaded" 5 || rc=1
	flood a2 --sources "$ATK_SRCS" --count $FLOOD --duration $((HS_TIMEOUT + 4)) || return 1
	under_flood a2 $TOTAL_RELOADED || rc=1
	v=$(metric 'ntun_handshakes_refused_total{reason="total"}')
	e2e_log "  refused (total) = ${v:-missing}"
	check "refusals counted" [ "${v:-0}" -ge $((FLOOD - 12 * PER_SOURCE)) ] || rc=1
	return $rc
}

case_slowloris_tls() {
	local rc=0 out n=100
	# One byte a second of a ClientHello, never finished, from one address.
	flood b --sources 10.10.3.10 --count $n --interval 1 --duration $((HS_TIMEOUT + 5)) ||
		return 1
	wait "$FLOOD_PID"
	out=$(cat "$E2E_TMP/b.json")
	e2e_log "  slowloris: $out"
	echo "b: $out" >>"$E2E_TMP/measurements"
	check "over the per-source cap closed at once" \
		[ "$(json_get "$out" open_early)" -le $PER_SOURCE ] || rc=1
	check "none open at the end" [ "$(json_get "$out" open_at_end)" -eq 0 ] || rc=1
	# The deadline runs from accept and bytes do not extend it: each admitted one was closed
	# between HS_TIMEOUT - 1 and HS_TIMEOUT + 3 seconds after it opened.
	check "admitted ones closed by the deadline" $PY -c 'import json, sys
o, t = json.loads(sys.argv[1]), int(sys.argv[2])
ok = o["closed_after_1s"] > 0 and o["close_age_min_late"] >= t - 1 and o["close_age_max"] <= t + 3
sys.exit(0 if ok else 1)' "$out" $HS_TIMEOUT || rc=1
	out=$(app cli $PY "$NETAPP" client get --host $VIP --port 80 --size $FETCH --seed 77)
	check "a fetch after the attack" [ "$(json_get "$out" ok)" = 1 ] || rc=1
	return $rc
}

# scrape HOST: status code of a scrape with that Host header; the body in $E2E_TMP/scrape.out.
scrape() {
	local host=$1
	shift
	in_ns rly curl -sS --max-time 3 -o "$E2E_TMP/scrape.out" -w '%{http_code}' "$@" \
		-H "Host: $host" http://127.0.0.1:9100/metrics
}

# The exposition is whole: its first metric (build info) and one registered last (routes).
scrape_complete() {
	grep -q '^ntun_build_info{version=".*"} 1$' "$E2E_TMP/scrape.out" &&
		grep -Eq '^ntun_routes [0-9]+$' "$E2E_TMP/scrape.out"
}

case_metrics_host() {
	local rc=0 code v
	code=$(scrape evil.example)
	e2e_log "  Host: evil.example -> $code, $(wc -c <"$E2E_TMP/scrape.out") bytes"
	check "evil.example refused" [ "$code" = 403 ] || rc=1
	check "nothing leaked" [ ! -s "$E2E_TMP/scrape.out" ] || rc=1
	code=$(scrape evil.example:9100)
	check "evil.example:9100 refused" [ "$code" = 403 ] || rc=1
	for h in 127.0.0.1:9100 localhost:9100 localhost; do
		code=$(scrape "$h")
		e2e_log "  Host: $h -> $code"
		check "Host $h answered" [ "$code" = 200 ] || rc=1
		check "whole exposition for $h" scrape_complete || rc=1
	done
	v=$(metric 'ntun_metrics_refused_total{reason="host"}')
	check "host refusals counted" [ "${v:-0}" -ge 2 ] || rc=1
	return $rc
}

case_metrics_slowloris() {
	local rc=0 bg i code ok=0 out
	# Four times as many slow connections as the responder has slots, one byte each every
	# 0.3 s, each re-opened 0.3 s after it is closed, while a scraper asks ten times.
	in_ns rly $PY "$NTUN_SRC/tests/e2e/hsflood.py" http --host 127.0.0.1 --port 9100 \
		--count 64 --interval 0.3 --duration 9 >"$E2E_TMP/c.json" 2>&1 &
	bg=$!
	E2E_PIDS+=("$bg")
	sleep 2
	# A scraper whose request is not in yet when the cap is met may be the one closed, as any
	# newest idle connection is; it tries once more, as Prometheus does on its next interval.
	# A responder the slow clients block fails both tries.
	for i in $(seq 1 10); do
		code=$(scrape 127.0.0.1:9100 --retry 1 --retry-delay 0 --retry-all-errors)
		if [ "$code" = 200 ] && scrape_complete; then
			ok=$((ok + 1))
		else
			e2e_log "  scrape $i: ${code:-none}"
		fi
		sleep 0.4
	done
	wait $bg
	out=$(cat "$E2E_TMP/c.json")
	e2e_log "  slow clients: $out; $ok/10 scrapes answered"
	echo "c: $ok/10 scrapes answered during /metrics slowloris; $out" >>"$E2E_TMP/measurements"
	check "every scrape answered" [ $ok -eq 10 ] || rc=1
	check "the slow clients were cut off" [ "$(json_get "$out" reopened)" -ge 64 ] || rc=1
	return $rc
}

run_case "setup: daemons up, honest client connected" setup || exit 1
run_case "a) handshake flood from one address: per-source cap, RSS bound, fetch in 3x" \
	case_flood_one_source
run_case "a) handshake flood from 12 addresses: total cap (reloaded), RSS bound, fetch in 3x" \
	case_flood_many_sources
run_case "b) slowloris on the TLS port: cap at accept, deadline closes the rest" \
	case_slowloris_tls
run_case "c) /metrics answers only a loopback Host" case_metrics_host
run_case "c) slowloris on /metrics does not stop a scrape" case_metrics_slowloris
[ -f "$E2E_TMP/measurements" ] && cat "$E2E_TMP/measurements"
e2e_summary
