#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The proxy never dials what is local to it, even inside a managed prefix: loopback, link-local
# (169.254.169.254, a cloud's metadata service), multicast and the proxy host's own addresses
# (also one added while it runs) are refused: the app's connection is reset, the service never
# sees a connection, the proxy logs the refusal once. With allow_local (here turned on by a
# SIGHUP reload) the same destinations are reached byte-exact.
#
#   ns cli (client host)      ns rly               ns site (proxy host)        ns web
#   app, ntun-client          ntun-server          ntun-proxy                  192.168.1.5:80
#   10.10.1.1 ------------- 10.10.1.2              127.0.0.1:80 service        169.254.169.254:80
#                           10.10.2.2 ----------- 10.10.2.1 (+ :80 service)   (metadata service)
#                                                 192.168.1.1 ------------- 192.168.1.5
#                                                 169.254.0.1 ------------- 169.254.169.254
#
# The proxy manages (virtual -> real): 100.64.1.0/24 -> 192.168.1.0/24 (the control: a remote
# host), 100.64.7.0/24 -> 127.0.0.0/24, 100.64.8.0/24 -> 10.10.2.0/24 (covers its own address),
# 100.65.0.0/16 -> 169.254.0.0/16 and 100.66.0.0/16 -> 224.0.0.0/16. The client intercepts
# 100.64.0.0/10.
. "$(dirname "$0")/lib.sh"
e2e_init

SIZE=$((1024 * 1024))

write_proxy_config() { # ALLOW_LOCAL (false: the key is left out, its default)
	cat >"$E2E_TMP/proxy.yaml" <<EOC
server_addr: 10.10.2.2:8443
proxy_id: proxy-1
managed_cidr: [192.168.1.0/24, 127.0.0.0/24, 10.10.2.0/24, 169.254.0.0/16, 224.0.0.0/16]
virtual_cidr: [100.64.1.0/24, 100.64.7.0/24, 100.64.8.0/24, 100.65.0.0/16, 100.66.0.0/16]
$([ "$1" = true ] && echo "allow_local: true")
tls: {cert_file: $CERTS/proxy/cert.pem, key_file: $CERTS/proxy/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
EOC
}

setup() {
	topo_sites
	ip -n "$NS_site" addr add 169.254.0.1/16 dev vsiteweb
	ip -n "$NS_web" addr add 169.254.169.254/16 dev vwebsite
	cg_make
	certs_make || return 1
	write_proxy_config false
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start meta web $PY "$NETAPP" serve --bind 169.254.169.254 --port 80 --log-accepts
	start lo_svc site $PY "$NETAPP" serve --bind 127.0.0.1 --port 80 --log-accepts
	start own_svc site $PY "$NETAPP" serve --bind 10.10.2.1 --port 80 --log-accepts
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
	start proxy site "$BIN_PROXY" --config "$E2E_TMP/proxy.yaml"
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/10 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text
	wait_log web listening 10 && wait_log meta listening 10 && wait_log lo_svc listening 10 &&
		wait_log own_svc listening 10 && wait_log proxy "registered as proxy-1" 10 &&
		wait_log client "connected to server" 10 && wait_log server "proxy registered" 10
}

get() { # HOST SEED: netapp checks the SHA-256 of every byte
	local out rc
	out=$(app cli $PY "$NETAPP" client get --host "$1" --port 80 --size $SIZE --seed "$2" \
		--timeout 20)
	rc=$?
	e2e_log "  get $1: $out"
	[ $rc -eq 0 ] && [ "$(json_get "$out" ok)" = 1 ]
}

# denied VIRT REAL SERVICE_LOG: the app's connection to VIRT is reset, the proxy logged exactly
# one refusal of REAL:80 as a local address, the client learnt EACCES, and the service behind
# REAL (its log name, or -) saw no connection.
denied() {
	local virt="$1" real="$2" svc="$3" out n
	out=$(app cli $PY "$NETAPP" client refused --host "$virt" --port 80 --timeout 5)
	e2e_log "  $virt -> $real: $out"
	[ "$(json_get "$out" result | grep -o "'outcome': '[a-z]*'")" = "'outcome': 'reset'" ] ||
		{ e2e_log "  the app's connection was not reset"; return 1; }
	n=$(grep -c "refused dial to $real:80: local address" "$E2E_TMP/proxy.log")
	[ "$n" = 1 ] || { e2e_log "  proxy logged $n refusals of $real:80"; return 1; }
	wait_log client "$virt:80 closed: Permission denied" 5 || return 1
	if [ "$svc" != - ] && grep -q accepted "$E2E_TMP/$svc.log"; then
		e2e_log "  $svc saw a connection: $(grep accepted "$E2E_TMP/$svc.log")"
		return 1
	fi
}

case_control() { get 100.64.1.5 1; }

case_loopback() { denied 100.64.7.1 127.0.0.1 lo_svc; }

case_own_address() { denied 100.64.8.1 10.10.2.1 own_svc; }

case_metadata() { denied 100.65.169.254 169.254.169.254 meta; }

case_multicast() { denied 100.66.0.251 224.0.0.251 -; }

# An address the proxy host gains while running (inside a managed prefix) is refused too, once
# its address list has been read again (at most a second old at a dial).
case_new_own_address() {
	ip -n "$NS_site" addr add 192.168.1.77/24 dev vsiteweb
	start new_svc site $PY "$NETAPP" serve --bind 192.168.1.77 --port 80 --log-accepts
	wait_log new_svc listening 10 || return 1
	sleep 1.5
	denied 100.64.1.77 192.168.1.77 new_svc
}

case_refusals_counted() {
	local v
	v=$(grep -c "local address" "$E2E_TMP/proxy.log")
	e2e_log "  proxy log lines naming a local address: $v (want 5)"
	[ "$v" = 5 ]
}

# allow_local: true by SIGHUP; the same destinations now answer byte-exact.
case_allow_local() {
	write_proxy_config true
	kill -HUP "$(pid_of proxy)"
	wait_log proxy "configuration reloaded" 10 || return 1
	get 100.64.7.1 2 && get 100.64.8.1 3 && get 100.65.169.254 4 && get 100.64.1.77 5 &&
		grep -q accepted "$E2E_TMP/lo_svc.log" && grep -q accepted "$E2E_TMP/own_svc.log" &&
		grep -q accepted "$E2E_TMP/meta.log"
}

run_case "setup: proxy managing loopback, its own network and link-local" setup || exit 1
run_case "control: a remote host in a managed prefix, 1 MiB byte-exact" case_control
run_case "loopback 127.0.0.1 refused; the service there sees nothing" case_loopback
run_case "the proxy host's own address refused; its service sees nothing" case_own_address
run_case "169.254.169.254 (metadata) refused; the service sees nothing" case_metadata
run_case "multicast 224.0.0.251 refused" case_multicast
run_case "an address added to the proxy host while running is refused" case_new_own_address
run_case "each refusal logged once" case_refusals_counted
run_case "allow_local (SIGHUP): all of them reached byte-exact" case_allow_local
e2e_summary
