#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A client with a valid certificate attacks ntun-server's HTTP/2 layer; the server must stay
# small and keep serving everyone else at speed, and must not pass the abuse on to the proxy.
#
#   ns cli                          ns rly                    ns site               ns web
#   h2peer.py: the attacker         ntun-server :8443         ntun-proxy            192.168.1.5
#   (client id mallory) and an      (gzip accepted)           (dials out, gzip)     :80 netapp
#   honest client (client-1)
#   10.10.1.1 -------------------- 10.10.1.2
#                                   10.10.2.2 --------------- 10.10.2.1
#                                                             192.168.1.1 --------- 192.168.1.5
#
# Each case runs one attack for ATTACK_S seconds while the honest client fetches 4 MiB through
# the same server (hash-checked), and samples the server's VmRSS every 0.2 s:
#  - RSS stays under RSS_BOUND_KIB (the server starts near 8 MiB; the held-bytes cap is 16 MiB
#    per connection; 174 MiB was measured for 40 gzip streams without it);
#  - the median of 7 fetches under attack is within 3x the unloaded median, with a floor of
#    200 ms under the unloaded time: the machine is shared and a 4 MiB fetch takes tens of ms,
#    where scheduling noise alone is of that order. The unloaded median is measured around
#    each attack, 7 fetches right before it and 7 right after, and the larger of the two
#    counts: a baseline taken minutes earlier, in a quieter moment of the shared machine,
#    failed a run at load average 15-28. A server the attack starves is slow only while it
#    lasts, and still fails the bound.
# Rapid reset also checks that the site stays reachable for other clients during and after
# the attack (probes on their own connections every 100 ms), that the server's proxy
# connection is usable (not left closing) after it, and that the proxy saw far fewer Dials
# than the attacker sent pairs (the server stops a storm itself).
. "$(dirname "$0")/lib.sh"
e2e_init

H2PEER="$NTUN_SRC/tests/e2e/h2peer.py"
RSS_BOUND_KIB=$((64 * 1024))
ATTACK_S=6
FETCH_SIZE=$((1024 * 1024))
FLOOR_MS=200
BASE_MS=0

setup() {
	topo_sites
	certs_make || return 1
	# the attacker has a client certificate of its own: a flood costs its id a cool-down
	"$BIN_GENCERTS" --out "$CERTS" --issue client --id mallory --name mallory >/dev/null ||
		return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--compression gzip --drain-timeout 2s
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --compression gzip --drain-timeout 2s
	wait_log web listening 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log server "proxy registered" 10 || return 1
}

peer() {
	in_ns cli $PY "$H2PEER" "$@" --server 10.10.1.2 --certs "$CERTS"
}

# median of the "ms" list in a fetch summary
median_ms() {
	$PY -c 'import json,sys,statistics; print(int(statistics.median(json.loads(sys.argv[1])["ms"])))' "$1"
}

fetch5() {
	peer fetch --size $FETCH_SIZE --count 7 --dst 100.64.1.5:80
}

case_baseline() {
	local out
	out=$(fetch5) || { e2e_log "  baseline fetch failed: $out"; return 1; }
	BASE_MS=$(median_ms "$out")
	e2e_log "  unloaded: $out (median $BASE_MS ms)"
}

# unloaded_ms pre|post: the median of 7 fetches with no attack running, into PRE_MS/POST_MS.
unloaded_ms() {
	local out
	out=$(fetch5) || { e2e_log "  unloaded fetch ($1) failed: $out"; return 1; }
	if [ "$1" = pre ]; then PRE_MS=$(median_ms "$out"); else POST_MS=$(median_ms "$out"); fi
	e2e_log "  unloaded ($1): $out"
}

# attack CMD ARGS...: runs the attack in the background, fetches under it, samples RSS.
# Sets ATTACK_OUT, UNDER_MS, MAX_RSS; returns 1 if a fetch failed.
attack() {
	local spid apid out rss max=0 sfile="$E2E_TMP/rss.$1"
	local srv
	CASE=$1
	srv=$(pid_of server)
	unloaded_ms pre || return 1
	# The sampler runs until the attacker is done (it is ended below), 60 s at most: an attacker
	# may hold on past ATTACK_S (gzip's --min-bytes).
	(
		m=0
		end=$((SECONDS + 60))
		while [ $SECONDS -lt $end ]; do
			r=$(rss_kib "$srv")
			[ "$r" -gt "$m" ] && m=$r && echo "$m" >"$sfile"
			sleep 0.2
		done
	) &
	spid=$!
	# At nice 19 the attacker stands for one on another host: it floods as fast as the
	# server takes it, but does not take the honest client's CPU on this shared machine.
	in_ns cli nice -n 19 $PY "$H2PEER" "$@" --server 10.10.1.2 --certs "$CERTS" --who mallory \
		>"$E2E_TMP/attack.$1.out" 2>&1 &
	apid=$!
	sleep 1
	out=$(fetch5)
	local rc=$?
	wait $apid
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
	unloaded_ms post || return 1
	BASE_MS=$((PRE_MS > POST_MS ? PRE_MS : POST_MS))
	ATTACK_OUT=$(tail -n 3 "$E2E_TMP/attack.$1.out" | tr '\n' ' ')
	MAX_RSS=$(cat "$sfile" 2>/dev/null || echo 0)
	e2e_log "  attack: $ATTACK_OUT"
	e2e_log "  fetch under attack: $out"
	e2e_log "  server VmRSS max: $MAX_RSS KiB (bound $RSS_BOUND_KIB)"
	[ $rc -eq 0 ] || return 1
	UNDER_MS=$(median_ms "$out")
}

bounded() {
	# 3x, as in test_attack_handshake and test_attack_tls: on two shared CPUs an attacker that
	# reconnects in a loop costs the honest fetches 2-2.5x without starving them (measured
	# there); a starved server is far slower.
	local limit=$((3 * (BASE_MS > FLOOR_MS ? BASE_MS : FLOOR_MS)))
	e2e_log "  median under attack $UNDER_MS ms, limit $limit ms (3 x max($BASE_MS, $FLOOR_MS);" \
		"unloaded $PRE_MS ms before, $POST_MS ms after)"
	echo "$CASE: server VmRSS max $MAX_RSS KiB, fetch median $UNDER_MS ms (unloaded $BASE_MS)" \
		>>"$E2E_TMP/measurements"
	if [ "${E2E_SANITIZED:-0}" = 1 ]; then
		# ASan's quarantine and shadow memory dwarf ours, and its CPU cost is not the
		# server's: the plain build checks the bounds.
		e2e_log "  sanitizer build: RSS and time bounds not checked"
		return 0
	fi
	check "server RSS $MAX_RSS KiB <= $RSS_BOUND_KIB" [ "$MAX_RSS" -le $RSS_BOUND_KIB ] &&
		check "fetch median $UNDER_MS <= $limit ms" [ "$UNDER_MS" -le $limit ]
}

case_gzip_streams() {
	# 24 MiB at least: over the 16 MiB cap on held bytes whatever CPU the attacker gets.
	attack gzip --streams 60 --hold $ATTACK_S --min-bytes $((24 << 20)) --dst 100.64.1.5:80 ||
		return 1
	bounded || return 1
	# the held-bytes cap, not the daemon, ended the streams that went over it
	check "some calls ended RESOURCE_EXHAUSTED" grep -q '"8"' "$E2E_TMP/attack.gzip.out"
}

case_rapid_reset() {
	local during after dials lines
	lines=$(wc -l <"$E2E_TMP/proxy.log")
	in_ns cli $PY "$H2PEER" probe --seconds $((ATTACK_S + 1)) --server 10.10.1.2 \
		--certs "$CERTS" --dst 100.64.1.5:80 >"$E2E_TMP/probe.during" 2>&1 &
	local ppid=$!
	attack reset --pairs 3000 --hold 2 --duration $ATTACK_S --dst 100.64.1.5:80 || {
		wait $ppid
		return 1
	}
	wait $ppid
	during=$(cat "$E2E_TMP/probe.during")
	after=$(peer probe --seconds 5 --dst 100.64.1.5:80)
	dials=$(tail -n +$((lines + 1)) "$E2E_TMP/proxy.log" | grep -c "dial .* closed")
	e2e_log "  other client during: $during"
	e2e_log "  other client after: $after"
	e2e_log "  Dials the proxy saw end during the attack: $dials"
	bounded || return 1
	# nghttp2's default limit (a burst of 1000 resets) is what sent a proxy's GOAWAY before
	check "the storm did not reach the proxy ($dials Dials < 1000)" [ "$dials" -lt 1000 ] &&
	check "no failed fetch during the attack" [ "$(json_get "$during" failed)" = 0 ] &&
		check "fetches during the attack" [ "$(json_get "$during" ok)" -gt 0 ] &&
		check "no failed fetch after the attack" [ "$(json_get "$after" failed)" = 0 ] &&
		check "fetches after the attack" [ "$(json_get "$after" ok)" -gt 0 ] &&
		check "the server stopped the attacker itself" \
			grep -q "ENHANCE_YOUR_CALM" "$E2E_TMP/server.log"
}

# every_round_closed NAME: the server ended each of the flooder's connections (an attack
# round that sent all its frames and was still open after --hold was not stopped).
every_round_closed() {
	local open
	open=$(grep '"frames_sent"' "$E2E_TMP/attack.$1.out" | grep -c '"closed": false')
	e2e_log "  flooding connections the server left open: $open"
	check "the server ended every flooding connection" [ "$open" = 0 ]
}

case_continuation() {
	attack continuation --frames 100000 --hold 1 --duration $ATTACK_S --dst 100.64.1.5:80 ||
		return 1
	bounded && every_round_closed continuation
}

case_settings() {
	attack settings --frames 100000 --hold 1 --duration $ATTACK_S || return 1
	bounded && every_round_closed settings
}

case_ping() {
	attack ping --frames 200000 --hold 1 --duration $ATTACK_S || return 1
	bounded && every_round_closed ping
}

# A proxy whose connection gets GOAWAY (here from a hand-made server that then keeps its
# side open) dials a new one at once and closes the old one by its drain deadline.
case_proxy_goaway() {
	local out i
	start fake rly $PY "$NTUN_SRC/tests/e2e/fake_server.py" --bind 10.10.2.2 --port 9443 \
		--certs "$CERTS" --wait 8
	wait_log fake listening 10 || return 1
	start proxy2 site "$BIN_PROXY" --server 10.10.2.2:9443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 $(tls_args proxy) --log-format text \
		--drain-timeout 2s
	for i in $(seq 1 150); do
		out=$(grep '^{' "$E2E_TMP/fake.log")
		[ -n "$out" ] && break
		sleep 0.1
	done
	stop proxy2
	e2e_log "  proxy after GOAWAY: ${out:-nothing}"
	[ -n "$out" ] || return 1
	check "the proxy registered" [ "$(json_get "$out" registered)" = True ] &&
		check "a new connection within 1 s" \
			$PY -c 'import sys; v = sys.argv[1]; sys.exit(0 if v != "None" and int(v) <= 1000 else 1)' \
			"$(json_get "$out" new_connection_ms)" &&
		check "the old connection closed by its drain deadline (2 s) + 2 s" \
			$PY -c 'import sys; v = sys.argv[1]; sys.exit(0 if v != "None" and int(v) <= 4000 else 1)' \
			"$(json_get "$out" old_closed_ms)"
}

# ATTACKS="gzip reset continuation settings ping goaway" (default: all) selects the cases.
want() { [ -z "${ATTACKS:-}" ] || [[ " $ATTACKS " == *" $1 "* ]]; }

run_case "setup: server, proxy, web up; proxy registered" setup || exit 1
run_case "unloaded fetch" case_baseline || exit 1
want gzip && run_case "stream flood under gzip: held bytes capped" case_gzip_streams
want reset && run_case "rapid reset: stopped at the server, site stays up" case_rapid_reset
want continuation && run_case "CONTINUATION flood" case_continuation
want settings && run_case "SETTINGS flood (never reading)" case_settings
want ping && run_case "PING flood (never reading)" case_ping
want goaway && run_case "a proxy connection that gets GOAWAY is replaced at once" \
	case_proxy_goaway
[ -f "$E2E_TMP/measurements" ] && cat "$E2E_TMP/measurements"
e2e_summary
