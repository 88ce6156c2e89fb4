#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A server's Drain notice that arrives after its GOAWAY has already moved the client to its
# other server (a loaded server can send them apart; seen once in a full run of
# test_multi_server: the client closed the draining connection at its own 5 s and reset a
# tunnel the server had given 20 s). The first server is tests/e2e/late_drain.py: it opens
# the app's tunnel, sends half of the bytes, GOAWAY, waits until the client is on the real
# server, then sends Drain (20 s) on the Attach call, and the second half 8 s after the
# GOAWAY. The app must get every byte, and the client must say it heard the drain.
#
#   ns cli: app, ntun-client  10.10.1.1 --- 10.10.1.2 ns rlya: late_drain.py
#                             10.10.3.1 --- 10.10.3.2 ns rlyb: ntun-server
. "$(dirname "$0")/lib.sh"
e2e_init

VIP=100.64.1.5
SIZE=100000
HOLD=8 # seconds from the GOAWAY to the tunnel's second half: more than the client's own 5 s

setup() {
	ns_add cli
	ns_add rlya
	ns_add rlyb
	link cli 10.10.1.1/24 rlya 10.10.1.2/24
	link cli 10.10.3.1/24 rlyb 10.10.3.2/24
	cg_make
	certs_make --server-san 10.10.3.2 || return 1
	start fake rlya $PY "$NTUN_SRC/tests/e2e/late_drain.py" --bind 10.10.1.2 --port 8443 \
		--certs "$CERTS" --size $SIZE --hold $HOLD --deadline-ms 20000 --go-file "$E2E_TMP/go"
	wait_log fake listening 10 || return 1
	# The real server is not up yet: whatever order the client tries them in, it lands on
	# the fake one first.
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443,10.10.3.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text
	wait_log client "connected to server 10.10.1.2:8443" 15 || return 1
	start server rlyb "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
	wait_log server "listening on" 10
}

case_late_drain() {
	local out want rc=0
	want=$($PY -c 'import hashlib, sys
n = int(sys.argv[1])
print(n, hashlib.sha256(bytes((i * 7 + 3) % 251 for i in range(n))).hexdigest())' $SIZE)
	app_start app cli $PY -c 'import hashlib, json, socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=60)
h, n, err = hashlib.sha256(), 0, None
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
except OSError as e:
    err = repr(e)
print(n, h.hexdigest(), err)' $VIP
	# The fake sends GOAWAY once the tunnel is open; the client moves to the real server;
	# only then does the Drain go out.
	wait_log client "connected to server 10.10.3.2:8443" 15 || rc=1
	touch "$E2E_TMP/go"
	wait "$(pid_of app)"
	out=$(tail -n 1 "$E2E_TMP/app.log")
	e2e_log "  app got: $out (want $want None)"
	check "every byte of the tunnel arrived, in order, then EOF" [ "$out" = "$want None" ] ||
		rc=1
	check "the client heard the late Drain" \
		grep -q "server draining: late drain" "$E2E_TMP/client.log" || rc=1
	# What the fake did, and when (its line comes when it has sent the rest).
	wait_log fake '"rest_s"' 10 || rc=1
	out=$(grep '^{' "$E2E_TMP/fake.log" | tail -n 1)
	e2e_log "  fake server: $out"
	check "the Drain went out after the GOAWAY, the second half $HOLD s after it" $PY -c '
import json, sys
r = json.loads(sys.argv[1])
ok = (r["attached"] and r["tunnel"] and not r["reset_by_client"] and
      r["sent"] == int(sys.argv[3]) and r["drain_s"] > r["goaway_s"] and
      r["rest_s"] - r["goaway_s"] >= float(sys.argv[2]))
sys.exit(0 if ok else 1)' "$out" $HOLD $SIZE || rc=1
	return $rc
}

run_case "setup: a client on a server that drains late, a real server beside it" setup || exit 1
run_case "a Drain after the GOAWAY still holds the old connection open for its tunnels" \
	case_late_drain
e2e_summary
