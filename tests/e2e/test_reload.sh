#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SIGHUP reloads every daemon's configuration in place: new networks on the proxy, new CIDRs on
# the client, new static routes and log level on the server; a broken file or a restart-only
# change is refused and the running configuration keeps serving.
#
#   ns cli: app, ntun-client ── ns rly: ntun-server ── ns site: ntun-proxy ── ns web
#   10.10.1.1        10.10.1.2 / 10.10.2.2        10.10.2.1 / 192.168.1.1      192.168.1.5
#                                                            192.168.2.1      192.168.2.5
# Virtual 100.64.1.0/24 -> 192.168.1.0/24 from the start; 100.64.2.0/24 -> 192.168.2.0/24 and a
# server route 100.64.3.0/24 -> proxy-1 192.168.1.0/24 appear by reload.
. "$(dirname "$0")/lib.sh"
e2e_init

write_configs() { # PROXY_NETS CLIENT_CIDRS SERVER_ROUTES LOG_LEVEL
	cat >"$E2E_TMP/proxy.yaml" <<EOC
server_addr: 10.10.2.2:8443
proxy_id: proxy-1
managed_cidr: [$1]
virtual_cidr: [$2]
tls: {cert_file: $CERTS/proxy/cert.pem, key_file: $CERTS/proxy/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
EOC
	cat >"$E2E_TMP/client.yaml" <<EOC
server_addr: 10.10.1.2:8443
target_cidr: [$3]
listen_port: 15001
cgroup: $CG_APPS
intercept: bpf
instance: t$E2E_ID
tls: {cert_file: $CERTS/client/cert.pem, key_file: $CERTS/client/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
EOC
	cat >"$E2E_TMP/server.yaml" <<EOC
listen_addr: 0.0.0.0:8443
routes: [$4]
tls: {cert_file: $CERTS/server/cert.pem, key_file: $CERTS/server/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text, level: $5}
EOC
}

setup() {
	topo_sites
	ip -n "$NS_site" addr add 192.168.2.1/24 dev vsiteweb
	ip -n "$NS_web" addr add 192.168.2.5/24 dev vwebsite
	cg_make
	certs_make || return 1
	write_configs 192.168.1.0/24 100.64.1.0/24 100.64.1.0/24 "" info
	start web web $PY "$NETAPP" serve --port 80
	start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml"
	start proxy site "$BIN_PROXY" --config "$E2E_TMP/proxy.yaml"
	start client cli "$BIN_CLIENT" --config "$E2E_TMP/client.yaml"
	wait_log web listening 10 && wait_log server "proxy registered" 10 &&
		wait_log client "connected to server" 10
}

get() { # HOST SEED
	local out
	out=$(app cli $PY "$NETAPP" client get --host "$1" --port 80 --size 300000 --seed "$2" --timeout 5)
	local rc=$?
	e2e_log "  get $1: $out"
	return $rc
}

hup() { # NAME PATTERN: SIGHUP a daemon and wait for the log line that shows the outcome.
	local before
	before=$(grep -c "" "$E2E_TMP/$1.log")
	kill -HUP "$(pid_of "$1")"
	for i in $(seq 1 50); do
		tail -n +"$((before + 1))" "$E2E_TMP/$1.log" | grep -Eq -- "$2" && return 0
		sleep 0.1
	done
	e2e_log "no /$2/ after SIGHUP to $1"
	tail -n 5 "$E2E_TMP/$1.log" >&2
	return 1
}

case_baseline() {
	get 100.64.1.5 1 || return 1
	! get 100.64.2.5 2 # not intercepted yet: the app has no route there
}

case_new_networks() {
	write_configs "192.168.1.0/24, 192.168.2.0/24" "100.64.1.0/24, 100.64.2.0/24" \
		"100.64.1.0/24, 100.64.2.0/24" "" info
	hup proxy "configuration reloaded" || return 1
	wait_log server "proxy registered: 2 route" 5 || return 1
	hup client "configuration reloaded" || return 1
	grep -q "intercepting 2 CIDR" "$E2E_TMP/client.log" || return 1
	get 100.64.2.5 3 && get 100.64.1.5 4
}

case_server_routes_and_log_level() {
	write_configs "192.168.1.0/24, 192.168.2.0/24" "100.64.1.0/24, 100.64.2.0/24" \
		"100.64.0.0/16" \
		"{virtual_cidr: 100.64.3.0/24, real_cidr: 192.168.1.0/24, proxy_id: proxy-1}" debug
	hup server "configuration reloaded" || return 1
	hup client "configuration reloaded" || return 1
	get 100.64.3.5 5 || return 1
	# debug level is on now: the server logs each tunnel as it starts
	grep -q "debug.*tunnel 100.64.3.5:80 -> 192.168.1.5:80" "$E2E_TMP/server.log"
}

case_broken_config_refused() {
	echo "target_cidr: [100.64.1.0/33" >"$E2E_TMP/client.yaml"
	hup client "reload failed, keeping the running configuration" || return 1
	kill -0 "$(pid_of client)" || return 1
	get 100.64.1.5 6 && get 100.64.2.5 7
}

case_restart_only_refused() {
	write_configs "192.168.1.0/24, 192.168.2.0/24" "100.64.1.0/24, 100.64.2.0/24" \
		"100.64.0.0/16" "" info
	sed -i 's/listen_port: 15001/listen_port: 15009/' "$E2E_TMP/client.yaml"
	hup client "'listen_port' changed and needs a restart" || return 1
	get 100.64.3.5 8 # the client kept its whole running configuration
}

run_case "setup" setup || exit 1
run_case "baseline: 100.64.1.0/24 tunnels, 100.64.2.0/24 is not intercepted" case_baseline
run_case "proxy and client reload: a new network is registered and intercepted" case_new_networks
run_case "server reload: a static route and the log level take effect" \
	case_server_routes_and_log_level
run_case "a broken file is refused; the running configuration keeps serving" \
	case_broken_config_refused
run_case "a restart-only change is refused; traffic keeps flowing" case_restart_only_refused
e2e_summary
