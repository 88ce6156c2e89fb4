#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Route ownership: no proxy can take another site's traffic. Two remote sites have the same
# real network 192.168.1.0/24 and a web server each whose answers differ (netapp --site), so
# every fetch tells by hash which site served it.
#
#   ns cli: app, ntun-client ── ns rly: ntun-server ──┬── ns s1: proxy-1 (+ proxy-3) ── ns w1
#   10.10.1.1          10.10.1.2 / 10.10.2.2 / 10.10.3.2 │  10.10.2.1 / 192.168.1.1    192.168.1.5
#                                                        └── ns s2: proxy-2, proxy-4 ── ns w2
#                                                           10.10.3.1 / 192.168.1.1    192.168.1.5
# (each web host also has 192.168.1.6)
#
# proxy-1 registers 100.64.1.0/24 -> 192.168.1.0/24 (site 1). The client intercepts
# 100.64.0.0/16. First without a proxies section (as in the reported attack, and as a66c867
# ran): (a) proxy-2 registering 100.64.1.5/32 is refused and 100.64.1.5 still reaches site 1;
# (d) a second connector of proxy-1 at site 2 holding 100.64.1.5/32, once drained or killed,
# leaves lookup at once and 100.64.1.5 falls back to the /24. Then a reload adds grants:
# (a) again for a granted /32 inside another id's prefix, (b) a registration outside its grant
# is refused whole, (c) a shared grant lets proxy-3 serve site 1's /24 beside proxy-1,
# (d) again across ids with a shared grant, (e) a reload that revokes grants.
. "$(dirname "$0")/lib.sh"
e2e_init

setup() {
	topo_two_sites
	ip -n "$NS_w1" addr add 192.168.1.6/24 dev vw1s1
	ip -n "$NS_w2" addr add 192.168.1.6/24 dev vw2s2
	cg_make
	certs_make --server-san 10.10.3.2 || return 1
	for id in proxy-2 proxy-3 proxy-4; do
		"$BIN_GENCERTS" --out "$CERTS" --issue proxy --id $id >/dev/null || return 1
	done
	write_server ""
	start web1 w1 $PY "$NETAPP" serve --port 80 --site site-1
	start web2 w2 $PY "$NETAPP" serve --port 80 --site site-2
	start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml"
	proxy proxy1 s1 proxy proxy-1 192.168.1.0/24 100.64.1.0/24
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text --ping-interval 2s --ping-timeout 2s
	wait_log web1 listening 10 && wait_log web2 listening 10 &&
		wait_log server "proxy registered" 10 && wait_log client "connected to server" 10 ||
		return 1
	get 100.64.1.5 site-1 1
}

write_server() { # PROXIES_YAML (empty: no proxies section)
	cat >"$E2E_TMP/server.yaml" <<EOC
listen_addr: 0.0.0.0:8443
tls: {cert_file: $CERTS/server/cert.pem, key_file: $CERTS/server/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
timeouts: {ping_interval_ms: 2s, ping_timeout_ms: 2s, drain_ms: 2s}
$1
EOC
}

# proxy NAME NS CERTDIR ID MANAGED VIRTUAL: starts an ntun-proxy in site NS (lists: commas).
# The drain deadline only bounds how long a drained proxy's open tunnel may take: the 64 MiB
# fetch of case (d), paused 8 s, took over 15 s at load average 20 and was cut by a 15 s one.
proxy() {
	local addr=10.10.2.2
	[ "$2" = s2 ] && addr=10.10.3.2
	start "$1" "$2" "$BIN_PROXY" --server $addr:8443 --proxy-id "$4" --managed-cidr "$5" \
		--virtual-cidr "$6" $(tls_args "$3") --log-format text --log-level debug \
		--ping-interval 2s --ping-timeout 2s --drain-timeout 60s
}

# get HOST SITE SEED: one fetch through the tunnel; succeeds only if SITE sent every byte.
get() {
	local out rc
	out=$(app cli $PY "$NETAPP" client get --host "$1" --port 80 --size 200000 --seed "$3" \
		--site "$2" --timeout 5)
	rc=$?
	e2e_log "  get $1 (want $2): $out"
	return $rc
}

# no_route HOST: the connection is refused promptly, and the client heard "no route".
no_route() {
	local out
	out=$(app cli $PY "$NETAPP" client refused --host "$1" --port 80 --timeout 3)
	e2e_log "  no route to $1: $out"
	[ "$(json_get "$out" ok)" = 1 ] &&
		grep -q "$1:80 closed: No route to host" "$E2E_TMP/client.log"
}

# web_busy NS: waits (10 s at most) until the web server in NS is sending on a connection
# (a fetch far larger than every buffer on the way keeps it established while paused).
web_busy() {
	local i
	for i in $(seq 1 100); do
		[ -n "$(ip netns exec "$1$E2E_ID" ss -Htn state established '( sport = :80 )')" ] &&
			return 0
		sleep 0.1
	done
	e2e_log "no connection to port 80 in $1: $(ip netns exec "$1$E2E_ID" ss -tan 2>&1)"
	return 1
}

# dials NAME: tunnels a proxy completed (its debug line per closed dial).
dials() { grep -c "dial 192.168.1.5:80 closed" "$E2E_TMP/$1.log"; }

# Registers proxy NAME (in s2) and waits for the server's verdict on it.
register() { # NAME CERTDIR ID MANAGED VIRTUAL
	local m
	m=$(mark server)
	proxy "$1" s2 "$2" "$3" "$4" "$5"
	since server "$m" "proxy/$3@10\.10\.3\.1.*(proxy registered|registration refused)" 10
}

# The hijack: proxy-2 claims 100.64.1.5/32, inside proxy-1's 100.64.1.0/24.
hijack() { # REASON_REGEX
	local rc=0
	register proxy2 proxy-2 proxy-2 192.168.1.5/32 100.64.1.5/32 || return 1
	check "100.64.1.5 still reaches site 1" get 100.64.1.5 site-1 11 || rc=1
	check "and so does the rest of the /24" get 100.64.1.6 site-1 12 || rc=1
	check "the server refused the claim, at warn" grep -Eq "warn .*registration refused: $1" \
		"$E2E_TMP/server.log" || rc=1
	check "proxy-2 was told why" wait_log proxy2 "error.*refused this proxy: registration refused: $1" \
		5 || rc=1
	stop proxy2 KILL
	return $rc
}

case_hijack_open() {
	hijack "virtual prefix 100.64.1.5/32 overlaps 100.64.1.0/24 of proxy 'proxy-1'"
}

# NAME (in s2) holds 100.64.1.5/32 -> site 2 beside proxy-1's /24. Drained with a tunnel still
# open, then killed: each time the next connection reaches site 1 at once.
fallback() { # NAME CERTDIR ID SEED
	local rc=0 m pid out
	register "$1" "$2" "$3" 192.168.1.5/32 100.64.1.5/32 || return 1
	get 100.64.1.5 site-2 "$4" || { e2e_log "the /32 was not served by site 2"; return 1; }

	app_start slow cli $PY "$NETAPP" client get --host 100.64.1.5 --port 80 --size 67108864 \
		--seed $(($4 + 1)) --site site-2 --pause-after 65536 --pause 8 --timeout 40
	check "the slow fetch reached site 2" web_busy w2 || rc=1
	m=$(mark server)
	pid=$(pid_of "$1")
	kill -TERM "$pid"
	since server "$m" "proxy/$3@10\.10\.3\.1.*proxy draining" 5 || rc=1
	check "drained: 100.64.1.5 falls back to site 1 at once" get 100.64.1.5 site-1 $(($4 + 2)) ||
		rc=1
	check "... while $1 still drains its open tunnel" kill -0 "$pid" || rc=1
	wait "$(pid_of slow)"
	out=$(tail -n 1 "$E2E_TMP/slow.log")
	e2e_log "  tunnel open during the drain: $out"
	check "the open tunnel finished byte-exact from site 2" [ "$(json_get "$out" ok)" = 1 ] ||
		rc=1
	stop "$1"

	register "$1" "$2" "$3" 192.168.1.5/32 100.64.1.5/32 || return 1
	get 100.64.1.5 site-2 $(($4 + 3)) || rc=1
	m=$(mark server)
	stop "$1" KILL
	since server "$m" "proxy/$3@10\.10\.3\.1.*connection closed" 5 || rc=1
	check "killed: 100.64.1.5 falls back to site 1" get 100.64.1.5 site-1 $(($4 + 4)) || rc=1
	return $rc
}

case_fallback_open() {
	fallback p1s2 proxy proxy-1 20
}

GRANTS='proxies:
  - id: proxy-1
    prefixes: [100.64.1.0/24]
  - id: proxy-2
    prefixes: [100.64.2.0/24, 100.64.1.5/32]
  - id: proxy-3
    prefixes: [100.64.1.0/24]
  - id: proxy-4
    prefixes: ["100.64.1.0/24"]'

case_grants_by_reload() {
	local m
	write_server "$GRANTS"
	m=$(mark server)
	kill -HUP "$(pid_of server)"
	since server "$m" "configuration reloaded" 5 || return 1
	check "grants logged" since server "$m" "5 proxy grant\(s\) loaded" 1 || return 1
	check "proxy-1 keeps its granted /24" get 100.64.1.5 site-1 30
}

case_hijack_granted() {
	# proxy-2 is granted the /32, but not the /24 proxy-1 holds: a carve-out is no share.
	hijack "virtual prefix 100.64.1.5/32 overlaps 100.64.1.0/24 of proxy 'proxy-1' \(no shared"
}

case_outside_grant() {
	local rc=0
	# 100.64.9.0/24 is not granted: the registration is refused whole, 100.64.2.0/24 with it.
	register proxy2 proxy-2 proxy-2 192.168.1.0/24,192.168.1.0/24 100.64.2.0/24,100.64.9.0/24 ||
		return 1
	check "server names the prefix" grep -q \
		"registration refused: virtual prefix 100.64.9.0/24 is not granted to proxy 'proxy-2'" \
		"$E2E_TMP/server.log" || rc=1
	check "proxy-2 was told" wait_log proxy2 "registration refused: virtual prefix 100.64.9.0/24" \
		5 || rc=1
	check "nothing of it was taken" no_route 100.64.2.5 || rc=1
	stop proxy2 KILL
	# Within its grant it is accepted, and serves site 2.
	register proxy2 proxy-2 proxy-2 192.168.1.0/24 100.64.2.0/24 || return 1
	check "proxy-2 accepted for its grant" grep -Eq "proxy/proxy-2@.*proxy registered" \
		"$E2E_TMP/server.log" || rc=1
	check "100.64.2.5 reaches site 2" get 100.64.2.5 site-2 40 || rc=1
	check "100.64.1.5 still site 1" get 100.64.1.5 site-1 41 || rc=1
	return $rc
}

case_shared_grant() {
	local m out d1 d3 i rc=0
	m=$(mark server)
	proxy proxy3 s1 proxy-3 proxy-3 192.168.1.0/24 100.64.1.0/24
	since server "$m" "proxy/proxy-3@.*proxy registered" 10 || return 1
	d1=$(dials proxy1)
	d3=$(dials proxy3)
	out=$(app cli $PY "$NETAPP" client get --host 100.64.1.5 --port 80 --size 100000 --seed 50 \
		--site site-1 --count 10 --timeout 10)
	e2e_log "  10 fetches of 100.64.1.5: $out"
	[ "$(json_get "$out" ok)" = 10 ] || rc=1
	for i in $(seq 1 50); do # the proxies log each dial as it closes, just after the app
		[ $(($(dials proxy1) + $(dials proxy3) - d1 - d3)) -ge 10 ] && break
		sleep 0.1
	done
	d1=$(($(dials proxy1) - d1))
	d3=$(($(dials proxy3) - d3))
	e2e_log "  served by proxy-1: $d1, by proxy-3: $d3"
	check "both ids served the shared prefix" [ "$d1" -ge 1 -a "$d3" -ge 1 ] || rc=1
	check "every fetch counted once" [ $((d1 + d3)) -eq 10 ] || rc=1
	return $rc
}

case_fallback_granted() {
	fallback proxy4 proxy-4 proxy-4 60
}

case_revoke_by_reload() {
	local m rc=0 d3
	# proxy-2 loses 100.64.2.0/24, proxy-3 its share of 100.64.1.0/24.
	write_server 'proxies:
  - id: proxy-1
    prefixes: [100.64.1.0/24]
  - id: proxy-2
    prefixes: [100.64.1.5/32]
  - id: proxy-4
    prefixes: [100.64.1.0/24]'
	m=$(mark server)
	kill -HUP "$(pid_of server)"
	since server "$m" "configuration reloaded" 5 || return 1
	check "revocations logged" since server "$m" \
		"grant withdrawn by reload: virtual prefix 100.64.2.0/24 is not granted to proxy 'proxy-2'" \
		1 || rc=1
	check "proxy-3 revoked too" since server "$m" \
		"proxy/proxy-3@.*grant withdrawn by reload: virtual prefix 100.64.1.0/24" 1 || rc=1
	check "100.64.2.5 has no route at once" no_route 100.64.2.5 || rc=1
	check "proxy-2 was told" wait_log proxy2 "error.*refused this proxy: grant withdrawn by reload" 5 ||
		rc=1
	d3=$(dials proxy3)
	for s in 70 71 72 73; do
		check "100.64.1.5 from site 1" get 100.64.1.5 site-1 $s || rc=1
	done
	sleep 0.5
	check "all through proxy-1, none through proxy-3" [ "$(dials proxy3)" -eq "$d3" ] || rc=1

	# A broken proxies section is refused whole: the running grants keep serving.
	write_server 'proxies:
  - id: proxy-1
    prefixes: [100.64.1.1/24]'
	m=$(mark server)
	kill -HUP "$(pid_of server)"
	check "broken reload refused" since server "$m" \
		"reload failed.*proxies\[0\]\.prefixes.*host bits set" 5 || rc=1
	check "100.64.1.5 still from site 1" get 100.64.1.5 site-1 74 || rc=1
	return $rc
}

run_case "setup: two sites, proxy-1 serves 100.64.1.0/24 from site 1" setup || exit 1
run_case "(a) no grants: proxy-2's 100.64.1.5/32 inside proxy-1's /24 is refused" \
	case_hijack_open
run_case "(d) no grants: a drained or killed /32 falls back to the /24 at once" \
	case_fallback_open
run_case "reload adds a proxies section; proxy-1's route stays" case_grants_by_reload
run_case "(a) granted /32 inside another id's /24 without a shared grant is refused" \
	case_hijack_granted
run_case "(b) a registration outside the grant is refused whole" case_outside_grant
run_case "(c) a shared grant lets proxy-1 and proxy-3 serve the same /24" case_shared_grant
run_case "(d) shared grant: drained or killed /32 of proxy-4 falls back to the /24" \
	case_fallback_granted
run_case "(e) reload revoking grants withdraws the routes at once" case_revoke_by_reload
e2e_summary
