#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Two relay servers: the proxy attaches to both through one DNS name with two addresses, the
# client keeps one of them. kill -9 of the client's server: new connections work again within
# 2 s (measured: time from the kill to the first good new connection, and the failures in
# between). SIGTERM of a server: a tunnel open on it finishes byte-exact while new connections
# go to the other. A proxy whose registration is refused logs an error and backs off.
#
#   ns cli: app, ntun-client      ns rlya: server A              ns site: ntun-proxy    ns web
#   10.10.1.1 ------------------- 10.10.1.2 | 10.10.2.2 ------- 10.10.2.1
#   10.10.3.1 ------------------- 10.10.3.2 | 10.10.4.2 ------- 10.10.4.1
#                                 ns rlyb: server B              192.168.1.1 ------- 192.168.1.5
#
# The client dials --server 10.10.1.2:8443,10.10.3.2:8443; the proxy --server relay.test:8443,
# a name that its own /etc/hosts (a private mount namespace) maps to 10.10.2.2 and 10.10.4.2.
# Virtual 100.64.1.0/24 -> proxy-1's 192.168.1.0/24, granted to proxy-1 on both servers.
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
PROBE="$NTUN_SRC/tests/e2e/probe.py"
RECOVERY_MAX=2.0 # seconds from kill -9 to the first good new connection
REFUSED_MAX=3    # registration attempts of a refused proxy in 10 s (was one every 250-500 ms)

declare -A SRV_ADDR=([a]=10.10.1.2 [b]=10.10.3.2)

start_server() { # a|b (a restarted server gets a fresh log; the old one is kept aside)
	[ -f "$E2E_TMP/srv$1.log" ] && mv "$E2E_TMP/srv$1.log" "$E2E_TMP/srv$1.$(date +%s%N).log"
	start "srv$1" "rly$1" "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) \
		--log-format text --grant proxy-1=100.64.1.0/24 --drain-timeout 20s \
		--ping-interval 2s --ping-timeout 2s
}

# proxy NAME ID MANAGED VIRTUAL: a proxy ($CERTS/ID) resolving relay.test with the test's
# hosts file.
proxy() {
	start "$1" site unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
		"$E2E_TMP/hosts" "$BIN_PROXY" --server relay.test:8443 --proxy-id "$2" \
		--managed-cidr "$3" --virtual-cidr "$4" --tls-cert "$CERTS/$2/cert.pem" \
		--tls-key "$CERTS/$2/key.pem" --tls-ca "$CERTS/ca/cert.pem" --log-format text \
		--ping-interval 2s --ping-timeout 2s
}

setup() {
	ns_add cli
	ns_add rlya
	ns_add rlyb
	ns_add site
	ns_add web
	link cli 10.10.1.1/24 rlya 10.10.1.2/24
	link cli 10.10.3.1/24 rlyb 10.10.3.2/24
	link rlya 10.10.2.2/24 site 10.10.2.1/24
	link rlyb 10.10.4.2/24 site 10.10.4.1/24
	link site 192.168.1.1/24 web 192.168.1.5/24
	cg_make
	certs_make --server-san 10.10.3.2 --server-san 10.10.4.2 --server-san relay.test || return 1
	cp -r "$CERTS/proxy" "$CERTS/proxy-1"
	"$BIN_GENCERTS" --out "$CERTS" --issue proxy --id proxy-x >/dev/null || return 1
	printf '127.0.0.1 localhost\n10.10.2.2 relay.test\n10.10.4.2 relay.test\n' >"$E2E_TMP/hosts"
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start_server a
	start_server b
	proxy proxy proxy-1 192.168.1.0/24 100.64.1.0/24
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443,10.10.3.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text --ping-interval 2s --ping-timeout 2s
	wait_log web listening 10 || return 1
	# One name, two addresses: the proxy registers with both servers.
	wait_log srva "proxy registered" 10 && wait_log srvb "proxy registered" 10 || return 1
	check "proxy attached to both addresses of relay.test" \
		grep -q "attaching to server relay.test:8443 at 10.10.4.2:8443" "$E2E_TMP/proxy.log" ||
		return 1
	wait_log client "connected to server" 10
}

# client_server: a or b, the server the client's last connection went to.
client_server() {
	local addr
	addr=$(grep "connected to server" "$E2E_TMP/client.log" | tail -n 1 |
		grep -Eo "connected to server 10\.10\.[13]\.2" | grep -Eo "10\.10\.[13]\.2$")
	[ "$addr" = 10.10.1.2 ] && echo a
	[ "$addr" = 10.10.3.2 ] && echo b
}

get() { # SEED [netapp args...]
	local out seed="$1"
	shift
	out=$(app cli $PY "$NETAPP" client get --host $VIP --port 80 --size 300000 --seed "$seed" \
		--timeout 10 "$@")
	local rc=$?
	e2e_log "  get: $out"
	return $rc
}

case_baseline() {
	e2e_log "  client is on server $(client_server)"
	get 1
}

# kill -9 of the client's server; a probe opens a new connection every 20 ms meanwhile.
case_kill() {
	local victim vpid t_pre t_kill res rc=0
	victim=$(client_server)
	[ -n "$victim" ] || return 1
	app_start probe cli $PY "$PROBE" --host $VIP --port 80 --every 0.02 --duration 6
	sleep 2
	# Two clock readings around the kill: an attempt that ended before the first one ran
	# before it; a recovery is an attempt that began after the second (one that began in
	# between may still have gone through the dying server).
	vpid=$(pid_of "srv$victim")
	t_pre=$(date +%s.%N)
	kill -KILL "$vpid"
	t_kill=$(date +%s.%N)
	e2e_log "  killed server $victim between $t_pre and $t_kill"
	wait "$(pid_of probe)" 2>/dev/null
	res=$($PY - "$E2E_TMP/probe.log" "$t_pre" "$t_kill" <<'EOP'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
pre, k = float(sys.argv[2]), float(sys.argv[3])
before = [r for r in rows if r["t1"] <= pre]
after = [r for r in rows if r["t1"] > pre]
first = next((i for i, r in enumerate(after) if r["ok"] and r["t0"] >= k), None)
if first is None:
    print(f"no good connection after the kill ({len(after)} tried) 99 0")
    sys.exit()
failed = sum(1 for r in after[:first] if not r["ok"])
bad_later = sum(1 for r in after[first:] if not r["ok"])
print(f"before the kill {sum(r['ok'] for r in before)}/{len(before)} good; "
      f"recovered {after[first]['t1'] - pre:.3f} s after the kill, {failed} failed in between, "
      f"{bad_later} failed of {len(after) - first} later "
      f"{after[first]['t1'] - pre:.3f} {bad_later + len(before) - sum(r['ok'] for r in before)}")
EOP
)
	e2e_log "  $res"
	set -- $res
	local n=$#
	local recovery=${!n:-99}
	recovery=$(echo "$res" | awk '{ print $(NF-1) }')
	local later_bad
	later_bad=$(echo "$res" | awk '{ print $NF }')
	check "recovery ${recovery}s <= ${RECOVERY_MAX}s" \
		$PY -c "import sys; sys.exit(not float('$recovery') <= $RECOVERY_MAX)" || rc=1
	check "no failure before the kill nor after the recovery" [ "$later_bad" = 0 ] || rc=1
	[ "$(client_server)" != "$victim" ] || { e2e_log "client did not move"; rc=1; }
	get 2 || rc=1
	# The killed server comes back; the proxy finds it again by itself.
	start_server "$victim"
	wait_log "srv$victim" "proxy registered" 20 || rc=1
	return $rc
}

# SIGTERM of the client's server while a tunnel through it is paused mid-transfer.
case_drain() {
	local victim other out m rc=0
	victim=$(client_server)
	[ -n "$victim" ] || return 1
	[ "$victim" = a ] && other=b || other=a
	# 4 MB, of which the app reads 200 kB, then stops reading for 8 s: the tunnel is open
	# across the drain (the server drains for up to 20 s).
	app_start long cli $PY "$NETAPP" client get --host $VIP --port 80 --size 4000000 \
		--seed 77 --pause-after 200000 --pause 8 --timeout 60 --paused-file "$E2E_TMP/long.paused"
	wait_file "$E2E_TMP/long.paused" || rc=1
	m=$(mark client)
	kill -TERM "$(pid_of "srv$victim")"
	since client "$m" "connected to server ${SRV_ADDR[$other]}" 5 || rc=1
	# New connections work at once, on the other server, while the victim drains.
	get 3 || rc=1
	check "server $victim still draining during the new connection" \
		kill -0 "$(pid_of "srv$victim")" || rc=1
	wait "$(pid_of long)" 2>/dev/null
	out=$(tail -n 1 "$E2E_TMP/long.log")
	e2e_log "  open tunnel across the drain: $out"
	check "the open tunnel finished byte-exact" [ "$(json_get "$out" ok)" = 1 ] || rc=1
	stop "srv$victim"
	check "server $victim drained" grep -q "server shutting down" "$E2E_TMP/srv$victim.log" ||
		rc=1
	start_server "$victim"
	wait_log "srv$victim" "proxy registered" 20 || rc=1
	return $rc
}

# The proxy follows its server list: relay.test loses the address of the server the client is
# not on (SIGHUP looks names up again, as the 30 s timer would), and the proxy leaves that
# server, whose routes go; the address comes back and the proxy registers there again.
case_list_change() {
	local keep gone m p rc=0
	declare -A site_addr=([a]=10.10.2.2 [b]=10.10.4.2)
	keep=$(client_server)
	[ "$keep" = a ] && gone=b || gone=a
	m=$(mark "srv$gone")
	p=$(mark proxy)
	printf '127.0.0.1 localhost\n%s relay.test\n' "${site_addr[$keep]}" >"$E2E_TMP/hosts"
	kill -HUP "$(pid_of proxy)"
	since proxy "$p" "leaving server relay.test:8443 at ${site_addr[$gone]}:8443" 5 || rc=1
	since "srv$gone" "$m" "proxy draining: proxy left this server" 5 || rc=1
	get 5 || rc=1
	m=$(mark "srv$gone")
	printf '127.0.0.1 localhost\n10.10.2.2 relay.test\n10.10.4.2 relay.test\n' \
		>"$E2E_TMP/hosts"
	kill -HUP "$(pid_of proxy)"
	since "srv$gone" "$m" "proxy registered" 10 || rc=1
	return $rc
}

# attempts_in_10s NAME: registration refusals of proxy-x in NAME's log within 10 s of the first.
attempts_in_10s() {
	$PY - "$E2E_TMP/$1.log" <<'EOP'
import datetime, sys
ts = [datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
      for l in open(sys.argv[1]) if "proxy-x@" in l and ": registration refused:" in l]
print(sum(1 for t in ts if ts and t - ts[0] <= 10.0))
EOP
}

# A proxy whose registration is refused (virtual prefix not granted) logs an error with the
# reason, and tries again only a few times in 10 s; SIGHUP makes it try again at once.
case_refused() {
	local n_a n_b before rc=0
	proxy bad proxy-x 192.168.1.0/24 100.64.9.0/24
	wait_log bad "error.*refused this proxy: registration refused: virtual prefix 100.64.9.0/24 is not granted to proxy 'proxy-x'" 15 ||
		return 1
	sleep 11
	n_a=$(attempts_in_10s srva)
	n_b=$(attempts_in_10s srvb)
	e2e_log "  registration attempts within 10 s of the first: server a $n_a, server b $n_b" \
		"(at most $REFUSED_MAX each)"
	check "a few attempts on server a" [ "$n_a" -ge 1 ] && [ "$n_a" -le $REFUSED_MAX ] || rc=1
	check "a few attempts on server b" [ "$n_b" -ge 1 ] && [ "$n_b" -le $REFUSED_MAX ] || rc=1
	before=$(($(grep -c "proxy-x@.*: registration refused:" "$E2E_TMP/srva.log") +
		$(grep -c "proxy-x@.*: registration refused:" "$E2E_TMP/srvb.log")))
	kill -HUP "$(pid_of bad)"
	sleep 2
	n_a=$(grep -c "proxy-x@.*: registration refused:" "$E2E_TMP/srva.log")
	n_b=$(grep -c "proxy-x@.*: registration refused:" "$E2E_TMP/srvb.log")
	e2e_log "  after SIGHUP: $((n_a + n_b - before)) new attempt(s) within 2 s"
	check "SIGHUP retries at once" [ $((n_a + n_b)) -gt $before ] || rc=1
	stop bad
	# The granted proxy kept serving throughout.
	get 4 || rc=1
	return $rc
}

run_case "setup: two servers, a proxy on both through one name, a client" setup || exit 1
run_case "baseline: a tunnel through the client's server" case_baseline
run_case "kill -9 of the client's server: new connections work within ${RECOVERY_MAX}s" case_kill
run_case "SIGTERM drain: an open tunnel finishes, new ones use the other server" case_drain
run_case "the proxy leaves a server gone from its list and attaches to one added" case_list_change
run_case "a refused proxy logs the reason as an error and backs off" case_refused
e2e_summary
