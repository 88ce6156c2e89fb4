#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The seed's own ways of starting the daemons keep working, with the same meaning: its command
# lines (ntun-server --listen :8081, ntun-proxy --server H:8081 --proxy-id --managed-cidr,
# ntun-client --server H:8081 --cidr --listen-port, --tls-cert/--tls-key/--tls-ca) and the same
# settings as YAML (listen_addr: ":8081"), JSON, a .env file and NTUN_* variables; each is
# first accepted by --check-config. An empty
# listen host is every address: the client reaches the server on 10.10.1.2 and the proxy on
# 10.10.2.2, both through the one ":8081" listener. For every form the three daemons start and
# a tunnel carries 1 KiB and 1 MiB byte-exact (SHA-256). The environment form also carries
# Kubernetes service-link variables (NTUN_SERVER_PORT=tcp://...): one warning, then it runs.
# Last, the repository's own configs/server.yaml and configs/server.json start the server.
#
#   ns cli: app, ntun-client ── ns rly: ntun-server :8081 ── ns site: ntun-proxy ── ns web
#   10.10.1.1        10.10.1.2 / 10.10.2.2        10.10.2.1 / 192.168.1.1      192.168.1.5:80
#
# The client also gets --cgroup and --instance (the seed had neither): its BPF programs attach
# to the test's own cgroup, never the root. Addresses are the real ones (the seed had no virtual
# prefixes): the app dials 192.168.1.5, which cli has no route to.
. "$(dirname "$0")/lib.sh"
e2e_init

WEB=192.168.1.5
FORM=0

setup() {
	topo_sites
	cg_make
	certs_make || return 1
	start web web $PY "$NETAPP" serve --bind $WEB --port 80
	wait_log web listening 10
}

# client_safety: what the client needs besides the seed's settings in this test.
client_safety() {
	echo --cgroup "$CG_APPS" --instance "t$E2E_ID$FORM"
}

# tunnel_ok: the app's 1 KiB and 1 MiB downloads arrive byte-exact through the tunnel.
tunnel_ok() {
	local out size seed=$((FORM * 10)) i
	for size in 1024 $((1024 * 1024)); do
		seed=$((seed + 1))
		for i in 1 2 3; do # the client may still be attaching its programs
			out=$(app cli $PY "$NETAPP" client get --host $WEB --port 80 --size $size \
				--seed $seed --timeout 10 2>&1) && break
			sleep 1
		done
		e2e_log "  get $size: $out"
		[ "$(json_get "$out" ok)" = 1 ] || return 1
	done
}

# daemons_up SERVER_LOG_NAME: all three started, the server on every address of port 8081.
daemons_up() {
	wait_log "server$FORM" "listening on 0\.0\.0\.0:8081" 10 &&
		wait_log "proxy$FORM" "registered as proxy-1" 10 &&
		wait_log "client$FORM" "connected to server" 10 &&
		wait_log "server$FORM" "proxy registered" 10
}

stop_all() {
	stop "client$FORM"
	stop "proxy$FORM"
	stop "server$FORM"
}

# launch NAME NS CMD...: --check-config accepts the daemon's settings, then it starts.
launch() {
	local name="$1" ns="$2" out
	shift 2
	out=$(in_ns "$ns" "$@" --check-config 2>&1)
	e2e_log "  $name --check-config: $out"
	grep -q "configuration OK" <<<"$out" || return 1
	start "$name" "$ns" "$@"
}

# form RUNNER: starts the three daemons with RUNNER (a function taking the daemon's name),
# checks them and the tunnel, stops them.
form() {
	FORM=$((FORM + 1))
	"$1" server && "$1" proxy && "$1" client &&
		daemons_up && tunnel_ok
	local rc=$?
	stop_all
	return $rc
}

# --- the forms: each function starts one daemon, named by its argument ---

# run_with NAME ARGS...: starts daemon NAME (server, proxy or client) in its namespace with
# ARGS, after the words in PREFIX (a command that runs it, such as env).
PREFIX=()
run_with() {
	local name=$1 ns=rly bin=$BIN_SERVER extra=()
	shift
	case $name in
	proxy) ns=site bin=$BIN_PROXY ;;
	client) ns=cli bin=$BIN_CLIENT extra=($(client_safety)) ;;
	esac
	launch "$name$FORM" $ns "${PREFIX[@]}" "$bin" "$@" "${extra[@]}"
}

run_flags() {
	case $1 in
	server) run_with server --listen :8081 $(tls_args server) ;;
	proxy) run_with proxy --server 10.10.2.2:8081 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 $(tls_args proxy) ;;
	client) run_with client --server 10.10.1.2:8081 --cidr 192.168.1.0/24 --listen-port 15001 \
		$(tls_args client) ;;
	esac
}

# tls_yaml ROLE: the tls section of a config file.
tls_yaml() {
	printf 'tls:\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n  insecure: false\n' \
		"$CERTS/$1/cert.pem" "$CERTS/$1/key.pem" "$CERTS/ca/cert.pem"
}

write_yaml() {
	cat >"$E2E_TMP/server.yaml" <<-EOF
		listen_addr: ":8081"
		$(tls_yaml server)
		log:
		  level: info
		  format: json
		  output: stdout
	EOF
	cat >"$E2E_TMP/proxy.yaml" <<-EOF
		server_addr: "10.10.2.2:8081"
		proxy_id: proxy-1
		managed_cidr: 192.168.1.0/24
		$(tls_yaml proxy)
		log:
		  level: info
		  format: text
		  output: stderr
	EOF
	cat >"$E2E_TMP/client.yaml" <<-EOF
		server_addr: "10.10.1.2:8081"
		target_cidr: 192.168.1.0/24
		listen_port: 15001
		client_id: laptop-1
		$(tls_yaml client)
		log:
		  level: info
		  format: text
	EOF
}

run_yaml() { run_with "$1" --config "$E2E_TMP/$1.yaml"; }

# tls_json ROLE
tls_json() {
	printf '"tls": {"cert_file": "%s", "key_file": "%s", "ca_file": "%s", "insecure": false}' \
		"$CERTS/$1/cert.pem" "$CERTS/$1/key.pem" "$CERTS/ca/cert.pem"
}

write_json() {
	cat >"$E2E_TMP/server.json" <<-EOF
		{"listen_addr": ":8081", $(tls_json server),
		 "log": {"level": "info", "format": "text", "output": "stderr"}}
	EOF
	cat >"$E2E_TMP/proxy.json" <<-EOF
		{"server_addr": "10.10.2.2:8081", "proxy_id": "proxy-1",
		 "managed_cidr": ["192.168.1.0/24"], $(tls_json proxy)}
	EOF
	cat >"$E2E_TMP/client.json" <<-EOF
		{"server_addr": "10.10.1.2:8081", "target_cidr": ["192.168.1.0/24"],
		 "listen_port": 15001, "client_id": "laptop-1", $(tls_json client),
		 "log": {"level": "debug", "format": "json"}}
	EOF
}

run_json() { run_with "$1" --config "$E2E_TMP/$1.json"; }

# env_lines ROLE: the NTUN_* settings of a daemon, one NAME=value a line.
env_lines() {
	case $1 in
	server) echo "NTUN_LISTEN_ADDR=:8081" ;;
	proxy) printf '%s\n' NTUN_SERVER_ADDR=10.10.2.2:8081 NTUN_PROXY_ID=proxy-1 \
		NTUN_MANAGED_CIDR=192.168.1.0/24 ;;
	client) printf '%s\n' NTUN_SERVER_ADDR=10.10.1.2:8081 NTUN_TARGET_CIDR=192.168.1.0/24 \
		NTUN_LISTEN_PORT=15001 NTUN_CLIENT_ID=laptop-1 ;;
	esac
	printf '%s\n' "NTUN_TLS_CERT_FILE=$CERTS/$1/cert.pem" "NTUN_TLS_KEY_FILE=$CERTS/$1/key.pem" \
		"NTUN_TLS_CA_FILE=$CERTS/ca/cert.pem" NTUN_TLS_INSECURE=false NTUN_LOG_LEVEL=info \
		NTUN_LOG_FORMAT=text NTUN_LOG_OUTPUT=stderr
}

run_env_file() {
	env_lines "$1" >"$E2E_TMP/$1.env"
	run_with "$1" --env-file "$E2E_TMP/$1.env"
}

# What Kubernetes puts into a pod's environment for a Service named ntun-server.
SERVICE_LINKS=(NTUN_SERVER_SERVICE_HOST=10.96.0.10 NTUN_SERVER_SERVICE_PORT=8081
	NTUN_SERVER_PORT=tcp://10.96.0.10:8081 NTUN_SERVER_PORT_8081_TCP=tcp://10.96.0.10:8081
	NTUN_SERVER_PORT_8081_TCP_PROTO=tcp NTUN_SERVER_PORT_8081_TCP_PORT=8081
	NTUN_SERVER_PORT_8081_TCP_ADDR=10.96.0.10)

run_environ() {
	local vars rc
	mapfile -t vars < <(env_lines "$1")
	PREFIX=(env "${vars[@]}" "${SERVICE_LINKS[@]}")
	run_with "$1"
	rc=$?
	PREFIX=()
	return $rc
}

case_environ() {
	form run_environ || return 1
	local d n rc=0
	for d in server proxy client; do
		n=$(grep -c "ignoring unknown NTUN_\* environment variables" "$E2E_TMP/$d$FORM.log")
		e2e_log "  $d: $n warning(s): $(grep -m1 -o 'ignoring unknown.*' "$E2E_TMP/$d$FORM.log")"
		[ "$n" = 1 ] || rc=1
		grep -q "NTUN_SERVER_PORT_8081_TCP_ADDR" "$E2E_TMP/$d$FORM.log" || rc=1
	done
	return $rc
}

# The repository's example server configs, with this test's certificates and port.
case_repo_configs() {
	local f rc=0
	for f in server.yaml server.json; do
		FORM=$((FORM + 1))
		# The examples grant and allow their own ids only; this test's are proxy-1, client-1.
		launch "server$FORM" rly "$BIN_SERVER" --config "$NTUN_SRC/configs/$f" \
			$(tls_args server) --grant proxy-1=192.168.1.0/24 \
			--allow '*=192.168.1.0/24' --log-format text
		wait_log "server$FORM" "listening on 0\.0\.0\.0:8443" 10 || rc=1
		start "proxy$FORM" site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
			--managed-cidr 192.168.1.0/24 $(tls_args proxy)
		start "client$FORM" cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 192.168.1.0/24 \
			$(tls_args client) $(client_safety)
		wait_log "proxy$FORM" "registered as proxy-1" 10 &&
			wait_log "client$FORM" "connected to server" 10 && tunnel_ok || rc=1
		stop_all
	done
	return $rc
}

run_case "setup: namespaces, certificates, web server" setup || exit 1
write_yaml
write_json
run_case "flags: --listen :8081, --server H:8081 --proxy-id --managed-cidr, --cidr --listen-port" \
	form run_flags
run_case "YAML: listen_addr \":8081\", server_addr, proxy_id, managed_cidr, target_cidr, tls, log" \
	form run_yaml
run_case "JSON: the same settings" form run_json
run_case ".env file: the same settings as NTUN_* lines (--env-file)" form run_env_file
run_case "environment: NTUN_* variables and service links (one warning each, ignored)" \
	case_environ
run_case "configs/server.yaml and configs/server.json start the server" case_repo_configs
e2e_summary
