#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ntunctl against running daemons, each with its admin socket in the test's directory:
#   commands  status, peers, routes, tunnels as tables and as --json (fields checked with
#             python3: the tunnel's destination, its proxy and client ids), --watch with a
#             count, exit codes 2 (usage), 3 (socket absent), 1 (unknown tunnel);
#   socket    mode 0600 in a 0700 directory, refused to a non-root user;
#   live      a paused transfer (stepapp.py: bytes, then a wait with the connection open)
#             shows bytes_up/bytes_down on client, server and proxy equal to what the app
#             has sent and received so far, and growing at the next step;
#   close     resets exactly that tunnel: its app sees a reset, another paused one beside it
#             goes on and finishes hash-exact;
#   drain     with proxy-a and proxy-b on one route, a tunnel open through the drained one
#             finishes hash-exact and every new fetch goes to the other (netapp --site);
#   reload    a good configuration (exit 0, "reloaded") and a broken one (exit 1, the error).
#
#   ns cli: apps, ntun-client ── ns rly: ntun-server ──┬── ns s1: proxy-a ── ns w1 (site-a)
#                                                      └── ns s2: proxy-b ── ns w2 (site-b)
. "$(dirname "$0")/lib.sh"
e2e_init

CTL="$NTUN_BUILD/user/ctl/ntunctl"
VIP=100.64.1.5
ADM="$E2E_TMP/adm"

# ctl DAEMON ARGS...: ntunctl against that daemon's socket.
ctl() {
	local d="$1"
	shift
	"$CTL" --admin "$ADM/$d.sock" "$@"
}

# jq_py JSON EXPR: evaluates a python expression over the parsed JSON (as o); prints it.
jq_py() { $PY -c 'import json, sys; o = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

write_server_config() {
	cat >"$E2E_TMP/server.yaml" <<EOC
listen_addr: 0.0.0.0:8443
admin: $ADM/server.sock
tls: {cert_file: $CERTS/server/cert.pem, key_file: $CERTS/server/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text, level: $1}
timeouts: {ping_interval_ms: 1s, ping_timeout_ms: 2s, drain_ms: 2s}
proxies:
  - {id: proxy-a, prefixes: 100.64.1.0/24}
  - {id: proxy-b, prefixes: 100.64.1.0/24}
EOC
}

setup() {
	[ -x "$CTL" ] || { e2e_log "ntunctl not built"; return 1; }
	topo_two_sites
	cg_make
	certs_two_sites || return 1
	write_server_config info
	start web1 w1 $PY "$NETAPP" serve --port 80 --site site-a
	start web2 w2 $PY "$NETAPP" serve --port 80 --site site-b
	start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml"
	start proxya s1 "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-a \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text --admin "$ADM/proxy-a.sock"
	start proxyb s2 "$BIN_PROXY" --server 10.10.3.2:8443 --proxy-id proxy-b \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy-b) \
		--log-format text --admin "$ADM/proxy-b.sock"
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text --admin "$ADM/client.sock"
	wait_log web1 listening 10 && wait_log web2 listening 10 &&
		wait_log proxya "registered" 10 && wait_log proxyb "registered" 10 &&
		wait_log client "connected to server" 10 || return 1
	wait_registered 2
}

case_socket() {
	local rc=0 out code
	check "admin directory is 0700" [ "$(stat -c %a "$ADM")" = 700 ] || rc=1
	for d in server client proxy-a proxy-b; do
		check "$d.sock is a socket with mode 0600" \
			[ -S "$ADM/$d.sock" ] && [ "$(stat -c %a "$ADM/$d.sock")" = 600 ] || rc=1
	done
	out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$CTL" \
		--admin "$ADM/server.sock" status 2>&1)
	code=$?
	e2e_log "  as nobody: exit $code: $out"
	check "refused to a non-root user (exit 3)" [ $code = 3 ] || rc=1
	"$CTL" --admin "$E2E_TMP/absent.sock" status >/dev/null 2>&1
	code=$?
	check "absent socket: exit 3" [ $code = 3 ] || rc=1
	"$CTL" --admin "$ADM/server.sock" frobnicate >/dev/null 2>&1
	code=$?
	check "unknown command: exit 2" [ $code = 2 ] || rc=1
	"$CTL" --admin "$ADM/server.sock" close 'x/../y' >/dev/null 2>&1
	code=$?
	check "bad conn id: exit 2" [ $code = 2 ] || rc=1
	out=$("$CTL" --admin "$ADM/server.sock" close 0123456789abcdef0123456789abcdef 2>&1)
	code=$?
	e2e_log "  close unknown: exit $code: $out"
	check "unknown tunnel: exit 1 and says so" [ $code = 1 ] && grep -q "no open tunnel" <<<"$out" ||
		rc=1
	check "--help and --version" "$CTL" --help >/dev/null && "$CTL" --version | grep -q ntunctl ||
		rc=1
	return $rc
}

case_status() {
	local rc=0 j t d
	for d in server client proxy-a; do
		j=$(ctl $d status --json) || { e2e_log "  $d status failed"; rc=1; continue; }
		e2e_log "  $d status: $j"
		check "$d: status JSON names the daemon and its SPIFFE id" \
			[ "$(jq_py "$j" 'o["daemon"] + " " + o["identity"][:9] + " " + str(o["uptime_s"] >= 0)')" = \
			"${d%-?} spiffe:// True" ] || rc=1
		t=$(ctl $d status) || rc=1
		check "$d: status table" grep -Eq "^daemon +${d%-?}$" <<<"$t" || rc=1
	done
	j=$(ctl server status --json)
	check "server: 1 client, 2 proxies" [ "$(jq_py "$j" '(o["clients"], o["proxies"])')" = "(1, 2)" ] || rc=1
	j=$(ctl client status --json)
	check "client: connected to the server" [ "$(jq_py "$j" 'o["server"]["connected"]')" = True ] || rc=1
	j=$(ctl proxy-a status --json)
	check "proxy: connected and registered" \
		[ "$(jq_py "$j" '[(s["connected"], s["registered"]) for s in o["servers"]]')" = "[(True, True)]" ] || rc=1
	j=$(ctl server peers --json)
	e2e_log "  peers: $j"
	check "peers: client-1, proxy-a and proxy-b" \
		[ "$(jq_py "$j" 'sorted(p["role"] + ":" + p["id"] for p in o["peers"])')" = \
		"['client:client-1', 'proxy:proxy-a', 'proxy:proxy-b']" ] || rc=1
	t=$(ctl server peers)
	check "peers table" grep -Eq "^proxy +proxy-a +10\.10\.2\.1:[0-9]+ " <<<"$t" || rc=1
	j=$(ctl server routes --json)
	e2e_log "  routes: $j"
	check "routes: 100.64.1.0/24 by both proxies, healthy" \
		[ "$(jq_py "$j" 'sorted(r["virtual"] + ">" + r["real"] + ":" + r["proxies"][0]["id"] + ":" + r["proxies"][0]["health"] for r in o["routes"])')" = \
		"['100.64.1.0/24>192.168.1.0/24:proxy-a:healthy', '100.64.1.0/24>192.168.1.0/24:proxy-b:healthy']" ] || rc=1
	t=$(ctl server routes)
	e2e_log "$t"
	check "routes table" grep -Eq "^100\.64\.1\.0/24 +-> 192\.168\.1\.0/24 +proxy-a" <<<"$t" || rc=1
	return $rc
}

# step_wait FILE N: waits for stepapp's status line of step N; prints "SENT RECV".
step_wait() {
	local i
	for i in $(seq 1 300); do
		if grep -q "^STEP $2 " "$1" 2>/dev/null; then
			awk -v s="$2" '$1 == "STEP" && $2 == s { print $4, $6 }' "$1"
			return 0
		fi
		sleep 0.1
	done
	e2e_log "no step $2 in $1"
	return 1
}

# tunnel_of DAEMON PORT: the JSON of the tunnel from app port PORT (src ends in :PORT), or of
# the only tunnel (proxies, whose src is the app's as the client saw it, too).
tunnel_of() {
	local j
	j=$(ctl "$1" tunnels --json) || return 1
	$PY -c 'import json, sys
o = json.loads(sys.argv[1])
t = [t for t in o["tunnels"] if (t.get("src") or "").endswith(":" + sys.argv[2])]
print(json.dumps(t[0]) if len(t) == 1 else "")' "$j" "$2"
}

# live_equal PORT SENT RECV: every daemon on the path shows bytes_up SENT and bytes_down RECV
# for the tunnel (polled: the last bytes may still be on their way for a moment).
live_equal() {
	local port="$1" sent="$2" recv="$3" i d t ok px end=$((SECONDS + 20))
	for i in $(seq 1 50); do
		[ $SECONDS -le $end ] || break
		ok=1
		px=$(jq_py "$(tunnel_of server "$port")" 'o["proxy"]' 2>/dev/null)
		for d in client server "$px"; do
			t=$(tunnel_of "$d" "$port")
			[ -n "$t" ] && [ "$(jq_py "$t" '(o["bytes_up"], o["bytes_down"])')" = "($sent, $recv)" ] ||
				ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	for d in client server "$px"; do
		e2e_log "  $d: $(tunnel_of "$d" "$port")"
	done
	return 1
}

case_live() {
	local rc=0 st="$E2E_TMP/live.status" s1 s2 port j t1 t2 out
	app_start live cli $PY "$NTUN_SRC/tests/e2e/stepapp.py" --host $VIP --port 80 \
		--step 300000 --steps 2 --status "$st" --go "$E2E_TMP/live.go" --wait 180
	s1=$(step_wait "$st" 1) || return 1
	port=$(awk '$1 == "PORT" { print $2 }' "$st")
	e2e_log "  app port $port, after step 1: sent/recv $s1"
	check "step 1: client, server and proxy count exactly what the app moved" \
		live_equal "$port" $s1 || rc=1
	j=$(ctl server tunnels --json)
	e2e_log "  server tunnels: $j"
	t1=$(tunnel_of server "$port")
	check "server tunnel: dst $VIP:80, at site 192.168.1.5:80, client-1, a proxy" \
		[ "$(jq_py "$t1" '(o["dst"], o["dst_site"], o["client"], o["proxy"] in ("proxy-a", "proxy-b"), len(o["conn_id"]))')" = \
		"('$VIP:80', '192.168.1.5:80', 'client-1', True, 32)" ] || rc=1
	t=$(tunnel_of client "$port")
	check "client tunnel: same conn id, dst, its cgroup" \
		[ "$(jq_py "$t" '(o["conn_id"], o["dst"], o["cgroup"].endswith("/apps"))')" = \
		"$(jq_py "$t1" '(o["conn_id"], o["dst"], True)')" ] || rc=1
	out=$(ctl server tunnels)
	e2e_log "$out"
	check "tunnels table lists it" grep -q "$(jq_py "$t1" 'o["conn_id"]') *client-1 .*$VIP:80" <<<"$out" ||
		rc=1
	out=$(ctl client tunnels --watch 0.5 --count 3)
	check "--watch 0.5 --count 3 refreshes three times" \
		[ "$(grep -c '^ntunctl tunnels  every 0.5s' <<<"$out")" = 3 ] || rc=1
	sleep 1.2 # a rate sample spans at least a second
	touch "$E2E_TMP/live.go.1"
	s2=$(step_wait "$st" 2) || return 1
	e2e_log "  after step 2: sent/recv $s2"
	# The first read since the bytes moved: its rate spans them (rates cover the time since
	# the older of two samples reads leave, at least a second apart).
	t2=$(tunnel_of server "$port")
	e2e_log "  server tunnel now: $t2"
	check "bytes grew between two reads" \
		[ "$(jq_py "$t2" 'o["bytes_up"]')" -gt "$(jq_py "$t1" 'o["bytes_up"]')" ] || rc=1
	check "a rate is shown after bytes moved" [ "$(jq_py "$t2" 'o["rate_up"] > 0')" = True ] || rc=1
	check "step 2: the counts grew with the open tunnel, exactly" live_equal "$port" $s2 || rc=1
	# The first tunnel of the test: the peers' bytes are its bytes, live.
	j=$(ctl server peers --json)
	check "peers: client-1 and $(jq_py "$t2" 'o["proxy"]') show the open tunnel's bytes" \
		[ "$(jq_py "$j" 'sorted((p["id"], p["bytes_up"], p["bytes_down"]) for p in o["peers"] if p["id"] in ("client-1", "'"$(jq_py "$t2" 'o["proxy"]')"'"))')" = \
		"[('client-1', ${s2% *}, ${s2#* }), ('$(jq_py "$t2" 'o["proxy"]')', ${s2% *}, ${s2#* })]" ] || rc=1
	touch "$E2E_TMP/live.go.2"
	wait "$(pid_of live)"
	out=$(tail -n 1 "$E2E_TMP/live.log")
	e2e_log "  app: $out"
	check "the app finished hash-exact" [ "$(json_get "$out" ok)" = 1 ] || rc=1
	return $rc
}

case_close() {
	local rc=0 st="$E2E_TMP/close.status" port id out code
	app_start victim cli $PY "$NTUN_SRC/tests/e2e/stepapp.py" --host $VIP --port 80 \
		--step 1000 --steps 2 --status "$st" --go "$E2E_TMP/close.go"
	app_start other cli $PY "$NTUN_SRC/tests/e2e/stepapp.py" --host $VIP --port 80 \
		--step 500000 --steps 2 --status "$E2E_TMP/other.status" --go "$E2E_TMP/other.go"
	step_wait "$st" 1 >/dev/null && step_wait "$E2E_TMP/other.status" 1 >/dev/null || return 1
	port=$(awk '$1 == "PORT" { print $2 }' "$st")
	id=$(jq_py "$(tunnel_of server "$port")" 'o["conn_id"]')
	check "two tunnels open" [ "$(jq_py "$(ctl server tunnels --json)" 'o["count"]')" = 2 ] || rc=1
	out=$(ctl server close "$id")
	code=$?
	e2e_log "  close $id: exit $code: $out"
	check "close: exit 0" [ $code = 0 ] || rc=1
	touch "$E2E_TMP/close.go.1" "$E2E_TMP/close.go.2"
	wait "$(pid_of victim)"
	out=$(tail -n 1 "$E2E_TMP/victim.log")
	e2e_log "  closed app: $out"
	check "its app saw a reset" [ "$(json_get "$out" error)" = reset ] || rc=1
	check "gone from the list" [ -z "$(tunnel_of server "$port")" ] || rc=1
	touch "$E2E_TMP/other.go.1" "$E2E_TMP/other.go.2"
	wait "$(pid_of other)"
	out=$(tail -n 1 "$E2E_TMP/other.log")
	e2e_log "  the other: $out"
	check "the other tunnel finished hash-exact" [ "$(json_get "$out" ok)" = 1 ] || rc=1
	return $rc
}

case_drain() {
	local rc=0 st="$E2E_TMP/drain.status" port px other site osite out i ok=0 j
	app_start held cli $PY "$NTUN_SRC/tests/e2e/stepapp.py" --host $VIP --port 80 \
		--step 200000 --steps 2 --status "$st" --go "$E2E_TMP/drain.go"
	step_wait "$st" 1 >/dev/null || return 1
	port=$(awk '$1 == "PORT" { print $2 }' "$st")
	px=$(jq_py "$(tunnel_of server "$port")" 'o["proxy"]')
	if [ "$px" = proxy-a ]; then other=proxy-b osite=site-b; else other=proxy-a osite=site-a; fi
	out=$(ctl server drain proxy "$px")
	e2e_log "  the open tunnel runs through $px: $out"
	check "drain: exit 0" [ $? = 0 ] || rc=1
	j=$(ctl server routes --json)
	check "routes show $px draining" \
		[ "$(jq_py "$j" '[p["health"] for r in o["routes"] for p in r["proxies"] if p["id"] == "'"$px"'"]')" = \
		"['draining']" ] || rc=1
	for i in 1 2 3 4 5 6; do
		out=$(app cli $PY "$NETAPP" client get --host $VIP --port 80 --size 200000 \
			--seed $((40 + i)) --site $osite)
		[ "$(json_get "$out" ok)" = 1 ] && ok=$((ok + 1)) || e2e_log "  fetch $i: $out"
	done
	check "6 of 6 new fetches went to $other (hash-exact for $osite)" [ $ok = 6 ] || rc=1
	touch "$E2E_TMP/drain.go.1"
	step_wait "$st" 2 >/dev/null || rc=1
	touch "$E2E_TMP/drain.go.2"
	wait "$(pid_of held)"
	out=$(tail -n 1 "$E2E_TMP/held.log")
	e2e_log "  the tunnel through $px: $out"
	check "the open tunnel through the drained proxy finished hash-exact" \
		[ "$(json_get "$out" ok)" = 1 ] || rc=1
	out=$(ctl server resume proxy "$px")
	check "resume: exit 0" [ $? = 0 ] || rc=1
	return $rc
}

case_reload() {
	local rc=0 out code
	write_server_config debug
	out=$(ctl server reload 2>&1)
	code=$?
	e2e_log "  good config: exit $code: $out"
	check "good config: exit 0, reloaded" [ $code = 0 ] && grep -q "reloaded" <<<"$out" || rc=1
	printf 'listen_addr: [unclosed\n' >>"$E2E_TMP/server.yaml"
	out=$(ctl server reload 2>&1)
	code=$?
	e2e_log "  broken config: exit $code: $out"
	check "broken config: exit 1 with the error" [ $code = 1 ] &&
		grep -q "reload failed: .*server.yaml" <<<"$out" || rc=1
	out=$(ctl server reload --json 2>/dev/null)
	check "--json: ok false and the error" [ "$(jq_py "$out" 'o["ok"]')" = False ] || rc=1
	write_server_config info
	check "fixed again: exit 0" ctl server reload >/dev/null || rc=1
	check "server still answers" ctl server status >/dev/null || rc=1
	return $rc
}

# One server per core on a relay host: --instance keeps their default admin sockets apart.
case_instances() {
	local rc=0 sock=/run/ntun/server-t$E2E_ID.sock j
	start server2 rly "$BIN_SERVER" --listen 0.0.0.0:8444 --instance "t$E2E_ID" \
		$(tls_args server) --log-format text
	wait_log server2 "admin API on $sock" 10 || return 1
	j=$("$CTL" --daemon server --instance "t$E2E_ID" status --json) ||
		{ e2e_log "  ntunctl --daemon server --instance t$E2E_ID failed"; rc=1; }
	e2e_log "  second server's status: $j"
	check "--instance t$E2E_ID: $sock answers, as the server on :8444" \
		[ "$(jq_py "$j" 'o["daemon"] + " " + o["listen"]')" = "server 0.0.0.0:8444" ] || rc=1
	check "the first server keeps its own socket" [ -S "$ADM/server.sock" ] || rc=1
	stop server2
	check "the socket goes with its server" [ ! -e "$sock" ] || rc=1
	return $rc
}

run_case "setup: server, client, proxy-a and proxy-b with admin sockets" setup || exit 1
run_case "socket: 0600, non-root refused, exit codes" case_socket
run_case "status, peers, routes: tables and JSON" case_status
run_case "live bytes grow in a paused transfer, equal to the app's" case_live
run_case "close resets exactly that tunnel" case_close
run_case "drain proxy: new tunnels go to the other, the open one finishes" case_drain
run_case "reload: good and broken configuration" case_reload
run_case "two servers on one host: --instance keeps the admin sockets apart" case_instances
e2e_summary
