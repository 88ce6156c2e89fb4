#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Least privilege after start, read from /proc/PID/status of each running daemon: server and
# proxy hold no capability at all; the client keeps CAP_NET_ADMIN plus CAP_BPF (BPF mode) or
# CAP_NET_RAW (iptables mode) and holds CAP_DAC_OVERRIDE in its permitted set only, for the
# clean-up at exit; every daemon has no_new_privs and an empty ambient set. With that, tunnels
# carry bytes exactly, SIGHUP still changes the client's CIDRs live in both modes and the
# server's routes, and a stopped client leaves no cgroup, pin or chain behind.
#
#   ns cli: app, ntun-client ── ns rly: ntun-server ── ns site: ntun-proxy ── ns web
#   10.10.1.1        10.10.1.2 / 10.10.2.2        10.10.2.1 / 192.168.1.1      192.168.1.5:80
# The proxy serves 192.168.1.0/24 as 100.64.1.0/24; the client starts intercepting only
# 100.64.9.0/24 and is told 100.64.1.0/24 by SIGHUP.
. "$(dirname "$0")/lib.sh"
e2e_init

CAP_DAC_OVERRIDE=1
CAP_NET_BIND_SERVICE=10
CAP_NET_ADMIN=12
CAP_NET_RAW=13
CAP_SYS_PTRACE=19
CAP_SYS_ADMIN=21
CAP_BPF=39

mask() { # CAP...: the /proc/PID/status hex form of a capability set
	local m=0 c
	for c in "$@"; do m=$((m | (1 << c))); done
	printf '%016x' $m
}

write_client_config() { # MODE CIDR
	cat >"$E2E_TMP/client.yaml" <<EOC
server_addr: 10.10.1.2:8443
target_cidr: [$2]
listen_port: 15001
cgroup: $CG_APPS
intercept: $1
instance: t$E2E_ID
tls: {cert_file: $CERTS/client/cert.pem, key_file: $CERTS/client/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
EOC
}

setup() {
	topo_sites
	# iptables mode's nat OUTPUT runs after routing: the intercepted prefix needs a route.
	ip -n "$NS_cli" route add 100.64.0.0/16 dev lo src 127.0.0.1
	cg_make
	certs_make || return 1
	cat >"$E2E_TMP/server.yaml" <<EOC
listen_addr: 0.0.0.0:8443
tls: {cert_file: $CERTS/server/cert.pem, key_file: $CERTS/server/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
EOC
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml"
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text
	wait_log web listening 10 && wait_log server listening 10 &&
		wait_log proxy "registered as proxy-1" 10
}

# caps NAME EFF PRM BND: the daemon's capability sets are exactly these, ambient and
# inheritable empty, no_new_privs set.
caps() {
	local pid st rc=0 f want
	pid=$(pid_of "$1")
	st=$(cat "/proc/$pid/status") || return 1
	e2e_log "  $1: $(grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' <<<"$st" |
		tr -s '\t\n' '  ')"
	for f in CapEff:$2 CapPrm:$3 CapBnd:$4 CapAmb:$(mask) CapInh:$(mask) NoNewPrivs:1; do
		want=${f#*:}
		grep -q "^${f%%:*}:[[:space:]]*$want\$" <<<"$st" ||
			{ e2e_log "  $1: ${f%%:*} is not $want"; rc=1; }
	done
	return $rc
}

get() { # HOST SEED: netapp checks the SHA-256 of every byte
	local out rc
	out=$(app cli $PY "$NETAPP" client get --host "$1" --port 80 --size $((1024 * 1024)) \
		--seed "$2" --timeout 20)
	rc=$?
	e2e_log "  get $1: $out"
	[ $rc -eq 0 ] && [ "$(json_get "$out" ok)" = 1 ]
}

case_server_proxy() {
	local none
	none=$(mask)
	caps server "$none" "$none" "$none" && caps proxy "$none" "$none" "$none"
}

# client_mode MODE "EXTRA_CAPS" SEED: start in MODE intercepting 100.64.9.0/24, check the sets, reload
# to 100.64.1.0/24, fetch byte-exact, stop, check that nothing is left behind.
client_mode() {
	local mode="$1" keep prm rc=0 name="client_$1" pid
	keep=$(mask $CAP_NET_ADMIN $2)
	prm=$(mask $CAP_NET_ADMIN $2 $CAP_DAC_OVERRIDE)
	write_client_config "$mode" 100.64.9.0/24
	start "$name" cli "$BIN_CLIENT" --config "$E2E_TMP/client.yaml"
	wait_log "$name" "connected to server" 10 && wait_log "$name" "privileges dropped" 10 ||
		return 1
	pid=$(pid_of "$name")
	caps "$name" "$keep" "$prm" "$keep" || rc=1
	write_client_config "$mode" 100.64.1.0/24
	kill -HUP "$pid"
	wait_log "$name" "configuration reloaded" 10 || rc=1
	get 100.64.1.5 "$3" || rc=1
	caps "$name" "$keep" "$prm" "$keep" || rc=1
	stop "$name"
	if grep -Ei "denied|not permitted|cannot" "$E2E_TMP/$name.log"; then
		e2e_log "  $name complained"
		rc=1
	fi
	[ -d "$E2E_CGROOT/ntun-t$E2E_ID-$pid" ] && { e2e_log "  daemon cgroup left behind"; rc=1; }
	[ -e "/sys/fs/bpf/ntun/t$E2E_ID" ] && { e2e_log "  BPF pins left behind"; rc=1; }
	in_ns cli iptables -t nat -S 2>/dev/null | grep -q "NTUN-t$E2E_ID" &&
		{ e2e_log "  iptables chain left behind"; rc=1; }
	return $rc
}

# BPF mode serves the cgroup's container namespaces: reading /proc/PID/ns/net of their
# processes (sys_ptrace) and entering them to open a listener (sys_admin) go on while it runs.
case_client_bpf() { client_mode bpf "$CAP_BPF $CAP_SYS_ADMIN $CAP_SYS_PTRACE" 1; }

case_client_iptables() { client_mode iptables $CAP_NET_RAW 2; }

# The server, holding nothing, still reloads: a route is added and taken effect.
case_server_reload() {
	cat >>"$E2E_TMP/server.yaml" <<EOC
routes: [{virtual_cidr: 100.64.3.0/24, proxy_id: proxy-1, real_cidr: 192.168.1.0/24}]
EOC
	kill -HUP "$(pid_of server)"
	wait_log server "configuration reloaded" 10 || return 1
	write_client_config bpf 100.64.3.0/24
	start client_r cli "$BIN_CLIENT" --config "$E2E_TMP/client.yaml"
	wait_log client_r "connected to server" 10 || return 1
	get 100.64.3.5 3
}

# The README's systemd units, replayed with setpriv: the server as nobody on port 443 with only
# CAP_NET_BIND_SERVICE (bounding and ambient), the proxy as nobody with no capability at all,
# the client as root with only CLIENT_BSET in its bounding set; all with no_new_privs. The
# tunnel through them carries bytes exactly and the client still cleans up at exit.
CLIENT_BSET=net_admin,net_raw,bpf,perfmon,dac_override,sys_admin,sys_ptrace
case_unit_sets() {
	local c="$E2E_TMP/nobody" rc=0 pid
	stop client_r
	cp -r "$CERTS" "$c" && chown -R 65534:65534 "$c" && chmod o+x "$E2E_TMP" || return 1
	start server_u rly setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all,+net_bind_service --inh-caps=-all,+net_bind_service \
		--ambient-caps=-all,+net_bind_service \
		"$BIN_SERVER" --listen 0.0.0.0:443 --tls-cert "$c/server/cert.pem" \
		--tls-key "$c/server/key.pem" --tls-ca "$c/ca/cert.pem" --log-format text
	wait_log server_u "listening on 0.0.0.0:443" 10 || return 1
	start proxy_u site setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all --ambient-caps=-all \
		"$BIN_PROXY" --server 10.10.2.2:443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 \
		--tls-cert "$c/proxy/cert.pem" --tls-key "$c/proxy/key.pem" --tls-ca "$c/ca/cert.pem" \
		--log-format text
	wait_log proxy_u "registered as proxy-1" 10 || return 1
	start client_u cli setpriv --no-new-privs --bounding-set=-all,+${CLIENT_BSET//,/,+} \
		"$BIN_CLIENT" --server 10.10.1.2:443 --cidr 100.64.1.0/24 --listen-port 15001 \
		--cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf $(tls_args client) \
		--log-format text
	wait_log client_u "connected to server" 10 || return 1
	pid=$(pid_of client_u)
	for n in server_u proxy_u client_u; do
		e2e_log "  $n: $(grep -o 'privileges dropped.*' "$E2E_TMP/$n.log")"
	done
	caps server_u "$(mask)" "$(mask)" "$(mask $CAP_NET_BIND_SERVICE)" || rc=1
	caps proxy_u "$(mask)" "$(mask)" "$(mask)" || rc=1
	get 100.64.1.5 4 || rc=1
	stop client_u
	grep -Ei "denied|not permitted|cannot" "$E2E_TMP/client_u.log" && rc=1
	[ -d "$E2E_CGROOT/ntun-t$E2E_ID-$pid" ] && { e2e_log "  daemon cgroup left behind"; rc=1; }
	return $rc
}

run_case "setup: server and proxy up" setup || exit 1
run_case "server and proxy: no capabilities, no_new_privs" case_server_proxy
run_case "BPF client: net_admin+bpf+sys_admin+sys_ptrace; CIDRs reload live; exit leaves nothing" case_client_bpf
run_case "iptables client: net_admin+net_raw; CIDRs reload live; exit leaves nothing" \
	case_client_iptables
run_case "server without capabilities reloads a route" case_server_reload
run_case "the README's systemd capability sets suffice (setpriv)" case_unit_sets
e2e_summary
