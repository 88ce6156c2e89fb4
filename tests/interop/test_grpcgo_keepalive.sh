#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: ntun-server's keepalive on a proxy's reverse connection, where it is the gRPC
# (HTTP/2) client, against a proxy built on grpc-go (Debian's golang-google-grpc-dev), an
# independent implementation that enforces its keepalive policy: PINGs closer than MinTime
# with no HEADERS/DATA sent in between are strikes, the third ends the connection with GOAWAY
# ENHANCE_YOUR_CALM "too_many_pings" and every tunnel on it dies. grpcio_client.py (Debian's
# python3-grpcio) calls Relay/Connect on the server; its POSTs pause halfway so a tunnel sits
# idle on the reverse connection; the web host answers with the sha256 of what it received.
#
#   ns grpc (caller)      ns relay                    ns site                    ns web
#   grpcio_client.py      ntun-server :8443           grpcgo_proxy -> :8443      192.168.78.5
#                                                     (managed 192.168.78.0/24)  :80 httpd
#   10.78.1.1 ----------- 10.78.1.2
#                         10.78.2.2 ----------------- 10.78.2.1
#                                                     192.168.78.1 ------------- 192.168.78.5
#
# Go's MinTime is scaled down from its 5 minutes so that the cases take seconds; ntun's own
# settings use the older flag names (--ping-interval = keepalive time, --ping-timeout =
# keepalive timeout) so that the same script runs against older builds.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init

GC="$NTUN_SRC/tests/interop/grpcio_client.py"
WEB=192.168.78.5
STUBS="$E2E_TMP/stubs"
WWW="$E2E_TMP/www"
GOPROXY="$E2E_TMP/grpcgo_proxy"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# jget JSON KEY: a value from a grpcio_client.py result line (strings raw, else JSON).
jget() {
	$PY -c '
import json, sys
v = json.loads(sys.argv[1]).get(sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}

# The Go proxy, built offline in GOPATH mode from Debian's Go packages, with the stubs protoc
# generates from proto/ntun.proto. The build cache stays in the build tree between runs.
build_goproxy() {
	local src="$E2E_TMP/gopath/src/ntuninterop/grpcgoproxy" m=Mntun.proto=ntun.test/grpcgoproxy
	command -v go >/dev/null && command -v protoc-gen-go-grpc >/dev/null &&
		[ -d /usr/share/gocode/src/google.golang.org/grpc ] ||
		{ e2e_log "golang-go, golang-google-grpc-dev and protoc-gen-go-grpc are needed"; return 77; }
	mkdir -p "$src" "$NTUN_BUILD/gocache"
	protoc -I "$NTUN_SRC/proto" --go_out="$src" --go_opt=paths=source_relative,$m \
		--go-grpc_out="$src" --go-grpc_opt=paths=source_relative,$m ntun.proto || return 1
	sed -i 's/^package .*/package main/' "$src"/*.pb.go
	cp "$NTUN_SRC/tests/interop/grpcgo_proxy.go" "$src/"
	(cd "$src" && GO111MODULE=off GOPATH="$E2E_TMP/gopath:/usr/share/gocode" \
		GOCACHE="$NTUN_BUILD/gocache" GOFLAGS= nice go build -o "$GOPROXY" .) || return 1
}

setup() {
	$PY -c 'import grpc, grpc_tools' 2>/dev/null ||
		{ e2e_log "python3-grpcio and python3-grpc-tools are needed for $PY"; return 77; }
	build_goproxy || return $?
	mkdir -p "$STUBS" "$WWW"
	$PY -m grpc_tools.protoc -I "$NTUN_SRC/proto" --python_out="$STUBS" \
		--grpc_python_out="$STUBS" "$NTUN_SRC/proto/ntun.proto" || return 1
	"$BIN_GENCERTS" --out "$E2E_TMP/certs" --server-san 10.78.1.2 --server-san 10.78.2.2 \
		>/dev/null || return 1
	CERTS="$E2E_TMP/certs"
	head -c $((2 * 1024 * 1024 + 77)) /dev/urandom >"$E2E_TMP/upload"
	ns_add grpc
	ns_add relay
	ns_add site
	ns_add web
	link grpc 10.78.1.1/24 relay 10.78.1.2/24
	link relay 10.78.2.2/24 site 10.78.2.1/24
	link site 192.168.78.1/24 web $WEB/24
	start web web $PY "$GC" httpd --bind $WEB --port 80 --dir "$WWW"
	wait_log web "listening" 10
}

# servers NAME FLAGS...: ntun-server NAME in relay, and the Go proxy goNAME with
# GOFLAGS_MIN (its MinTime) dialing it; waits for the registration.
servers() {
	local name="$1"
	shift
	start "$name" relay "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) \
		--log-format text --dial-timeout 5s "$@"
	start "go$name" site "$GOPROXY" -server 10.78.2.2:8443 -proxy-id proxy-1 \
		-managed-cidr 192.168.78.0/24 -min-time "$GO_MIN" -cert "$CERTS/proxy/cert.pem" \
		-key "$CERTS/proxy/key.pem" -ca "$CERTS/ca/cert.pem"
	wait_log "$name" "proxy registered" 20
}

# post_paused PAUSE [MAXTIME]: a 2 MiB POST through the tunnel whose second half follows PAUSE
# seconds of silence; the web host's sha256 of what it received must match.
post_paused() {
	local out
	out=$(in_ns grpc $PY "$GC" post --stubs "$STUBS" --certs "$CERTS" --target 10.78.1.2:8443 \
		--dst $WEB:80 --file "$E2E_TMP/upload" --pause "$1" --timeout "${2:-120}") || return 1
	e2e_log "  post with a ${1} s pause: $out"
	[ "$(jget "$out" server_sha256)" = "$(sha "$E2E_TMP/upload")" ] &&
		[ "$(jget "$out" error)" = null ] || { e2e_log "  the tunnel did not carry the data"; return 1; }
}

# pings_refused NAME: how many too_many_pings GOAWAYs the Go proxy NAME sent.
pings_refused() { grep -c "too many pings" "$E2E_TMP/$1.log"; }

# dead_within NAME MARK SECONDS: seconds until server NAME closed the proxy's connection after
# log line MARK; fails beyond SECONDS.
dead_within() {
	local t0 t1
	t0=$(date +%s%N)
	since "$1" "$2" "proxy/proxy-1@.*connection closed" "$3" || return 1
	t1=$(date +%s%N)
	e2e_log "  declared dead after $(((t1 - t0) / 1000000)) ms (bound ${3} s): $(tail -n +"$(($2 + 1))" \
		"$E2E_TMP/$1.log" | grep -m1 "proxy/proxy-1@.*connection closed" | sed 's/.*connection closed/connection closed/')"
}

# Defaults (keepalive time 5 min) against grpc-go with MinTime 15 s: a tunnel idle for 45 s,
# longer than four of the 10 s PINGs ntun-server used to send whatever the traffic (the fourth
# was the third strike: GOAWAY too_many_pings after 40 s, every tunnel reset), still carries
# its data, and the Go side refused no PING.
case_default_idle() {
	GO_MIN=15s servers s1 --ping-timeout 4s || return 1
	post_paused 45 || return 1
	e2e_log "  too_many_pings GOAWAYs from grpc-go: $(pings_refused gos1)"
	[ "$(pings_refused gos1)" = 0 ]
}

# Where PINGs are rare, a vanished peer is found by TCP keepalive / TCP_USER_TIMEOUT within the
# keepalive timeout (4 s here): every packet of the proxy's namespace dropped.
case_dead_host() {
	local m rc=0
	m=$(mark s1)
	in_ns site iptables -w 5 -A INPUT -j DROP && in_ns site iptables -w 5 -A OUTPUT -j DROP ||
		return 1
	dead_within s1 "$m" 9 || rc=1
	in_ns site iptables -w 5 -F
	stop gos1 KILL
	stop s1
	return $rc
}

# Keepalive time 2 s (timeout 2 s) against MinTime 3 s: the first connection earns GOAWAY too_many_pings
# (unavoidable: grpc-go closes it at once); ntun-server doubles the time for that proxy (gRPC
# A8), its next connection is PINGed every 4 s, and a tunnel on it stays idle for 14 s (seven
# of the old PINGs) and still carries its data; no further GOAWAY.
case_too_many_pings() {
	GO_MIN=3s servers s2 --ping-interval 2s --ping-timeout 2s || return 1
	local m
	# Marked before grpc-go's GOAWAY: the server's lines after it come 200 ms later (the
	# proxy's redial), sooner than a loaded shell may notice grpc-go's own line.
	m=$(mark s2)
	wait_log gos2 "too many pings" 20 || return 1
	since s2 "$m" "keepalive time 4000 ms" 20 && since s2 "$m" "proxy registered" 20 ||
		return 1
	post_paused 14 || return 1
	e2e_log "  too_many_pings GOAWAYs from grpc-go: $(pings_refused gos2)"
	[ "$(pings_refused gos2)" = 1 ]
}

# A proxy process that hangs with its kernel alive (SIGSTOP) answers TCP but no PING: with
# PINGs every 4 s and a 2 s timeout it is declared dead within 6 s (bound 12 s).
case_hung_peer() {
	local m rc=0
	m=$(mark s2)
	kill -STOP "$(pid_of gos2)" || return 1
	dead_within s2 "$m" 12 || rc=1
	kill -CONT "$(pid_of gos2)"
	return $rc
}

run_case "set-up (grpc-go proxy built, namespaces, web host)" setup || exit 1
[ "$E2E_SKIP" = 0 ] || exit 77
run_case "defaults vs grpc-go MinTime 15 s: a tunnel idle 45 s carries its data, no GOAWAY" \
	case_default_idle
run_case "vanished proxy host found by TCP keepalive within the keepalive timeout" case_dead_host
run_case "too_many_pings doubles the keepalive time; the next connection's tunnel survives" \
	case_too_many_pings
run_case "hung proxy (SIGSTOP) found by PING within time + timeout" case_hung_peer
e2e_summary
