#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: Debian's python3-grpcio, an independent gRPC implementation, calls
# ntun.v1.Relay/Connect on ntun-server with a client certificate (metadata ntun-dst), and the
# call is tunnelled through ntun-proxy to a web host only the proxy's site can reach. Every
# data check compares sha256 digests; every error check compares the gRPC status and the
# ntun-error trailer.
#
#   ns grpc (caller)       ns relay                        ns site                  ns web
#   grpcio_client.py       ntun-server :8443 (identity)    ntun-proxy -> :8443      192.168.77.5
#                          ntun-server :8444 (gzip)        ntun-proxy -> :8444      :80 httpd
#                                                          (managed 192.168.77.0/24) :81 closed
#   10.77.1.1 ------------ 10.77.1.2
#                          10.77.2.2 --------------------- 10.77.2.1
#                                                          192.168.77.1 ----------- 192.168.77.5
#
# No namespace has a default route: grpc reaches only 10.77.1.0/24, relay only 10.77.1-2.x;
# only site reaches the web host. Nothing is added to the root namespace.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init

GC="$NTUN_SRC/tests/interop/grpcio_client.py"
WEB=192.168.77.5
STUBS="$E2E_TMP/stubs"
WWW="$E2E_TMP/www"

# jget JSON KEY[.KEY]: a value from a grpcio_client.py result line (strings raw, else JSON).
jget() {
	$PY -c '
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}

# expect WHAT GOT WANT: equal, or log and fail.
expect() {
	if [ "$2" != "$3" ]; then
		e2e_log "  $1: got '$2', want '$3'"
		return 1
	fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# gc SUBCOMMAND ARGS...: the grpcio caller in ns grpc (server on 8443 unless --target given).
gc() {
	local sub="$1"
	shift
	in_ns grpc $PY "$GC" "$sub" --stubs "$STUBS" --certs "$CERTS" "$@"
}

setup() {
	$PY -c 'import grpc, grpc_tools' 2>/dev/null ||
		{ e2e_log "python3-grpcio and python3-grpc-tools are needed for $PY"; return 1; }
	mkdir -p "$STUBS" "$WWW"
	$PY -m grpc_tools.protoc -I "$NTUN_SRC/proto" --python_out="$STUBS" \
		--grpc_python_out="$STUBS" "$NTUN_SRC/proto/ntun.proto" || return 1
	"$BIN_GENCERTS" --out "$E2E_TMP/certs" --server-san 10.77.1.2 --server-san 10.77.2.2 \
		>/dev/null || return 1
	CERTS="$E2E_TMP/certs"
	"$BIN_GENCERTS" --out "$E2E_TMP/other" >/dev/null || return 1 # an unrelated CA
	head -c $((1024 * 1024 + 333)) /dev/urandom >"$WWW/file1"
	head -c $((32 * 1024 * 1024)) /dev/urandom >"$WWW/big"
	: >"$WWW/empty"
	head -c $((8 * 1024 * 1024 + 7)) /dev/urandom >"$E2E_TMP/upload"
	# text compresses: shows gzip really carries the bytes
	$PY -c 'import sys; sys.stdout.write("".join("line %d of the tunnel\n" % i for i in range(200000)))' \
		>"$WWW/text"

	ns_add grpc
	ns_add relay
	ns_add site
	ns_add web
	link grpc 10.77.1.1/24 relay 10.77.1.2/24
	link relay 10.77.2.2/24 site 10.77.2.1/24
	link site 192.168.77.1/24 web $WEB/24

	start web web $PY "$GC" httpd --bind $WEB --port 80 --dir "$WWW"
	start server relay "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
	start server_gz relay "$BIN_SERVER" --listen 0.0.0.0:8444 $(tls_args server) \
		--log-format text --compression gzip
	start proxy site "$BIN_PROXY" --server 10.77.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.77.0/24 $(tls_args proxy) --log-format text
	start proxy_gz site "$BIN_PROXY" --server 10.77.2.2:8444 --proxy-id proxy-1 \
		--managed-cidr 192.168.77.0/24 $(tls_args proxy) --log-format text --compression gzip
	wait_log web "listening" 10 || return 1
	wait_log proxy "registered as proxy-1" 10 || return 1
	wait_log proxy_gz "registered as proxy-1" 10 || return 1
	wait_log server "proxy registered" 10 || return 1
	wait_log server_gz "proxy registered" 10 || return 1
}

# The caller and the relay cannot reach the web host by themselves: only the tunnel can.
case_isolation() {
	local ns r rc=0
	for ns in grpc relay; do
		r=$(in_ns $ns $PY -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 80), timeout=2)
    print("connected")
except OSError as e:
    print(e.__class__.__name__, e.errno)' $WEB)
		e2e_log "  $ns -> $WEB:80: $r"
		[ "$r" = "connected" ] && rc=1
	done
	return $rc
}

# get_ok FILE ARGS...: a GET of /FILE through the tunnel; the body's sha256 must match.
get_ok() {
	local f="$1" out
	shift
	out=$(gc get --target 10.77.1.2:8443 --dst $WEB:80 --path "/$f" "$@") || return 1
	e2e_log "  get $f $*: $out"
	expect "$f sha256" "$(jget "$out" sha256)" "$(sha "$WWW/$f")" &&
		expect "$f HTTP status" "$(jget "$out" statuses)" '["HTTP/1.0 200 OK"]' &&
		expect "$f errors" "$(jget "$out" errors)" '[]'
}

# post_ok ARGS...: an 8 MiB POST; the web host's digest of what it received must match.
post_ok() {
	local out
	out=$(gc post --target 10.77.1.2:8443 --dst $WEB:80 --file "$E2E_TMP/upload" "$@") || return 1
	e2e_log "  post $*: $out"
	expect "uploaded sha256" "$(jget "$out" server_sha256)" "$(sha "$E2E_TMP/upload")" &&
		expect "uploaded bytes" "$(jget "$out" server_bytes)" "$(stat -c %s "$E2E_TMP/upload")" &&
		expect "post error" "$(jget "$out" error)" null
}

case_get() {
	get_ok file1 && get_ok empty && get_ok text
}

case_get_big() {
	get_ok big --timeout 120
}

case_post() {
	post_ok
}

case_concurrent() {
	local out
	out=$(gc get --target 10.77.1.2:8443 --dst $WEB:80 --path /file1 --count 20) || return 1
	e2e_log "  20 calls: $out"
	expect calls "$(jget "$out" calls)" 20 &&
		expect "sha256 of all 20" "$(jget "$out" sha256)" "$(sha "$WWW/file1")" &&
		expect errors "$(jget "$out" errors)" '[]'
}

# status_is WANT_CODE WANT_NTUN_ERROR ARGS...: a call that must fail with that status.
status_is() {
	local code="$1" nerr="$2" out
	shift 2
	out=$(gc status --target 10.77.1.2:8443 "$@") || return 1
	e2e_log "  status $*: $out"
	expect "status code" "$(jget "$out" code)" "$code" &&
		expect "ntun-error" "$(jget "$out" ntun_error)" "$nerr" &&
		expect "bytes received" "$(jget "$out" received)" 0
}

case_refused() {
	status_is UNAVAILABLE ECONNREFUSED --dst $WEB:81
}

case_no_route() {
	status_is UNAVAILABLE EHOSTUNREACH --dst 192.168.78.5:80
}

case_no_dst() {
	status_is INVALID_ARGUMENT EINVAL --no-dst &&
		status_is INVALID_ARGUMENT EINVAL --dst "not-an-address"
}

case_unknown_method() {
	status_is UNIMPLEMENTED null --dst $WEB:80 --method /ntun.v1.Relay/Nope &&
		status_is UNIMPLEMENTED null --dst $WEB:80 --method /other.v9.Thing/Connect
}

# grpcio compresses every request message. The identity server takes no gzip and answers
# UNIMPLEMENTED, as gRPC asks of a server for an encoding it does not accept; the gzip server
# decompresses them and also compresses its responses (and its Dial calls to the proxy).
case_gzip() {
	local out
	out=$(gc get --target 10.77.1.2:8443 --dst $WEB:80 --path /text --gzip) || return 1
	e2e_log "  gzip call to the identity server: $out"
	expect "gzip refused" "$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["errors"][0]["code"])' "$out")" UNIMPLEMENTED &&
		get_ok text &&
		get_ok text --gzip --target 10.77.1.2:8444 &&
		get_ok file1 --target 10.77.1.2:8444 &&
		post_ok --gzip --target 10.77.1.2:8444 &&
		post_ok --target 10.77.1.2:8444
}

case_other_ca() {
	local out
	out=$(gc badca --target 10.77.1.2:8443 --dst $WEB:80 --path /big --other "$E2E_TMP/other" \
		--timeout 60) || return 1
	e2e_log "  other CA: $out"
	expect "other-CA call" "$(jget "$out" bad.code)" UNAVAILABLE &&
		expect "parallel good call sha256" "$(jget "$out" good_sha256)" "$(sha "$WWW/big")" &&
		expect "parallel good call error" "$(jget "$out" good_error)" null &&
		wait_log server "TLS handshake failed" 5
}

case_still_serving() {
	local d rc=0
	for d in server server_gz proxy proxy_gz web; do
		kill -0 "$(pid_of $d)" 2>/dev/null || { e2e_log "  $d died"; rc=1; }
	done
	[ $rc -eq 0 ] && get_ok file1
}

# Proxies first (they deregister and drain), then the servers. A daemon that does not exit by
# itself within 15 s, exits non-zero (LeakSanitizer exits 23) or logs a sanitizer report fails.
case_clean_exit() {
	local d pid st rc=0
	for d in proxy proxy_gz server server_gz; do
		pid=$(pid_of $d)
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			e2e_log "  $d did not exit within 15 s of SIGTERM"
			rc=1
			continue
		fi
		wait "$pid"
		st=$?
		[ $st -eq 0 ] || { e2e_log "  $d exited with status $st"; rc=1; }
	done
	for d in proxy proxy_gz server server_gz web; do
		if grep -qE 'Sanitizer|runtime error' "$E2E_TMP/$d.log"; then
			e2e_log "  sanitizer report in $d.log:"
			grep -E -A5 'Sanitizer|runtime error' "$E2E_TMP/$d.log" | head -n 30 >&2
			rc=1
		fi
	done
	return $rc
}

run_case "setup: web host, two servers, two proxies registered" setup
if [ $E2E_FAIL -gt 0 ]; then
	e2e_summary
	exit 1
fi
run_case "isolation: caller and relay cannot reach $WEB themselves" case_isolation
run_case "GET 1 MiB, empty and text files in odd Chunk sizes: sha256 matches" case_get
run_case "GET 32 MiB: sha256 matches" case_get_big
run_case "POST 8 MiB: the web host's sha256 of the body matches" case_post
run_case "20 concurrent calls on one channel: all sha256 match" case_concurrent
run_case "refused port: UNAVAILABLE with ntun-error ECONNREFUSED" case_refused
run_case "destination outside every route: UNAVAILABLE with ntun-error EHOSTUNREACH" case_no_route
run_case "missing or malformed ntun-dst: INVALID_ARGUMENT" case_no_dst
run_case "unknown method: UNIMPLEMENTED" case_unknown_method
run_case "grpcio gzip: refused where not enabled, byte-exact both ways where it is" case_gzip
run_case "client certificate from another CA refused; a parallel good call finishes" case_other_ca
run_case "every daemon still serving" case_still_serving
run_case "SIGTERM: every daemon exits 0, no sanitizer report in any log" case_clean_exit
e2e_summary
