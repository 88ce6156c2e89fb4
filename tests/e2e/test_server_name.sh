#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Clients and proxies check the server certificate's name by default: the host of --server (an
# IP address against the IP SANs, a DNS name against the DNS SANs) or --tls-server-name. A
# certificate of the right CA without that name is refused with a clear error; --tls-insecure
# skips only that check; with the name the tunnel carries bytes exactly.
#
#   ns cli: app, ntun-client ── ns rly: ntun-server ── ns site: ntun-proxy ── ns web
#   10.10.1.1        10.10.1.2 / 10.10.2.2        10.10.2.1 / 192.168.1.1      192.168.1.5:80
#
# Two servers in rly, same CA: :8443 with a certificate naming only localhost and 127.0.0.1
# ("plain"), :8444 with one that also names 10.10.1.2, 10.10.2.2 and relay.example.net.
. "$(dirname "$0")/lib.sh"
e2e_init

setup() {
	topo_sites
	cg_make
	certs_make --server-san relay.example.net || return 1
	"$BIN_GENCERTS" --out "$CERTS" --issue server --id server-1 --name plain >/dev/null ||
		return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server_plain rly "$BIN_SERVER" --listen 0.0.0.0:8443 --tls-cert "$CERTS/plain/cert.pem" \
		--tls-key "$CERTS/plain/key.pem" --tls-ca "$CERTS/ca/cert.pem" --log-format text
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8444 $(tls_args server) --log-format text
	wait_log web listening 10 && wait_log server_plain listening 10 && wait_log server listening 10
}

# proxy NAME NS SERVER ARGS...: a proxy for 192.168.1.0/24 as 100.64.1.0/24.
proxy() {
	local name="$1" ns="$2" srv="$3"
	shift 3
	start "$name" "$ns" "$BIN_PROXY" --server "$srv" --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text "$@"
}

client() {
	local name="$1" srv="$2"
	shift 2
	start "$name" cli "$BIN_CLIENT" --server "$srv" --cidr 100.64.1.0/24 --listen-port 15001 \
		--cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf $(tls_args client) \
		--log-format text "$@"
}

# refused NAME WANT: NAME's handshake failed because the certificate lacks WANT, at least
# twice (it keeps retrying), and it never got further.
refused() {
	local i re="IP address mismatch|hostname mismatch"
	wait_log "$1" "verify failed at depth 0: ($re) \(want server_name '$2' in its DNS/IP SAN\)" 10 ||
		return 1
	e2e_log "  $1: $(grep -m1 -o 'TLS handshake failed: .*' "$E2E_TMP/$1.log")"
	# the retry comes after a backoff the machine's load may stretch: wait for it
	for i in $(seq 1 100); do
		[ "$(grep -c 'TLS handshake failed: peer certificate verify failed' "$E2E_TMP/$1.log")" -ge 2 ] &&
			break
		sleep 0.1
	done
	[ "$(grep -c 'TLS handshake failed: peer certificate verify failed' "$E2E_TMP/$1.log")" -ge 2 ] ||
		return 1
	! grep -Eq "registered as|connected to server" "$E2E_TMP/$1.log"
}

case_ip_refused() {
	local rc=0
	proxy p1 site 10.10.2.2:8443
	client c1 10.10.1.2:8443
	refused p1 10.10.2.2 || rc=1
	refused c1 10.10.1.2 || rc=1
	stop p1
	stop c1
	grep -q "proxy registered" "$E2E_TMP/server_plain.log" && rc=1
	return $rc
}

case_name_flag() {
	local rc=0
	proxy p2 site 10.10.2.2:8443 --tls-server-name relay.example.net
	refused p2 relay.example.net || rc=1
	stop p2
	proxy p3 site 10.10.2.2:8444 --tls-server-name relay.example.net
	wait_log p3 "registered as proxy-1" 10 || rc=1
	stop p3
	proxy p4 site 10.10.2.2:8444 --tls-server-name wrong.example.net
	refused p4 wrong.example.net || rc=1
	stop p4
	return $rc
}

case_insecure() {
	local rc=0
	proxy p5 site 10.10.2.2:8443 --tls-insecure
	wait_log p5 "registered as proxy-1" 10 || rc=1
	grep -q "tls.insecure: the server certificate's name is not checked" "$E2E_TMP/p5.log" || rc=1
	stop p5
	return $rc
}

# A DNS name in --server is checked against the DNS SANs: localhost, from the relay itself.
case_dns_from_server() {
	proxy p6 rly localhost:8444
	wait_log p6 "registered as proxy-1" 10 || return 1
	grep -q "the server certificate must name localhost" "$E2E_TMP/p6.log" || return 1
	stop p6
}

case_tunnel_with_name() {
	local out rc=0 m
	# The proxy logs "registered as" when it sends its Register; the server's line says the
	# route is there (its log holds that line from earlier cases: mark it).
	m=$(mark server)
	proxy p7 site 10.10.2.2:8444
	client c7 10.10.1.2:8444
	wait_log p7 "registered as proxy-1" 10 && since server "$m" "proxy registered" 10 &&
		wait_log c7 "connected to server" 10 || return 1
	grep -q "the server certificate must name 10.10.1.2" "$E2E_TMP/c7.log" || rc=1
	# netapp compares the SHA-256 of every byte received with the one it asked for.
	out=$(app cli $PY "$NETAPP" client get --host 100.64.1.5 --port 80 --size $((1024 * 1024)) \
		--seed 7) || rc=1
	e2e_log "  get: $out"
	[ "$(json_get "$out" ok)" = 1 ] || rc=1
	stop c7
	stop p7
	return $rc
}

run_case "setup: two servers, certificates with and without the relay's addresses" setup || exit 1
run_case "an IP in --server missing from the IP SANs: proxy and client refuse" case_ip_refused
run_case "--tls-server-name: checked instead of the host, refused when absent" case_name_flag
run_case "--tls-insecure skips only the name check" case_insecure
run_case "a DNS name in --server is checked against the DNS SANs" case_dns_from_server
run_case "with the name in the certificate: 1 MiB through the tunnel byte-exact" case_tunnel_with_name
e2e_summary
