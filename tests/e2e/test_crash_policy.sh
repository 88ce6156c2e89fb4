#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The client's crash policy (issue 11, item 5): kill -9, restart and --cleanup, failing open
# (default) and failing closed (--fail-closed), in BPF mode and in iptables mode.
#
#   ns ctr (lo only, a "container": apps there reach 100.64.1.0/24 only through ntun)
#   ns cli 10.10.1.1 --- 10.10.1.2 rly 10.10.2.2 --- 10.10.2.1 site 192.168.1.1 --- .5 web
#   apps run in the test's cgroup $CG_APPS (the only cgroup the client attaches to), in cli or
#   in ctr; the client intercepts 100.64.1.0/24 (proxy-1: -> 192.168.1.0/24).
#
# Without ntun a connect to 100.64.1.5 fails with ENETUNREACH (no route, BPF cases); in the
# iptables cases cli has the route 100.64.0.0/16 via lo that nat OUTPUT needs, and such a
# connect times out. Failing closed, a connect while the client is down must be refused at
# once (ECONNREFUSED): never one of those, and never data to anywhere.
. "$(dirname "$0")/lib.sh"
e2e_init

INST="t$E2E_ID"   # BPF cases
INST_I="t$E2E_ID-i" # iptables cases (lib.sh's cleanup matches t$E2E_ID-*)
PIN="/sys/fs/bpf/ntun/$INST"

setup() {
	topo_sites
	ns_add ctr
	cg_make
	certs_make || return 1
	start web web $PY "$NETAPP" serve --bind 192.168.1.5 --port 80
	start_server
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text
	# The container's process: the client keeps a listener in ctr while one lives there.
	app_start sleeper ctr sleep 600
	CTR_INO=$(stat -L -c %i /run/netns/"$NS_ctr")
	wait_log web listening 10 && wait_log proxy "registered as proxy-1" 10
}

start_server() {
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text
}

# client NAME INSTANCE MODE [ARGS...]: starts a client and waits for its server connection
# (and in BPF mode for its listener in ctr).
client() {
	local name=$1 inst=$2 mode=$3
	shift 3
	start "$name" cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.1.0/24 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "$inst" --intercept "$mode" \
		$(tls_args client) --log-format text "$@"
	wait_log "$name" "connected to server" 10 || return 1
	[ "$mode" != bpf ] || wait_log "$name" "netns $CTR_INO .*listening on" 10
}

# get NS SEED: a hash-checked 1 MiB download from 100.64.1.5 as an app in NS.
get() {
	local out
	out=$(app "$1" $PY "$NETAPP" client get --host 100.64.1.5 --port 80 --size 1048576 \
		--seed "$2" --timeout 5)
	local rc=$?
	e2e_log "  get from $1: $out"
	[ $rc -eq 0 ]
}

# PROBE: connects to 100.64.1.5:80 (1 s timeout). With no argument once, printing the outcome
# (connected, timeout or the errno name) and its milliseconds; with STOPFILE every 10 ms until
# it exists (30 s at most), printing how many connects ended how.
PROBE='import errno, json, os, socket, sys, time
def once():
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("100.64.1.5", 80))
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
if len(sys.argv) < 2:
    t0 = time.monotonic()
    r = once()
    print(r, int((time.monotonic() - t0) * 1000))
    sys.exit(0)
out, end = {}, time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < end:
    k = once()
    out[k] = out.get(k, 0) + 1
    # For the test to wait on: a first connect was tried, a first one was intercepted.
    for f, seen in ((".first", True), (".conn", k == "connected")):
        if seen and not os.path.exists(sys.argv[1] + f):
            open(sys.argv[1] + f, "w").close()
    time.sleep(0.01)
print(json.dumps(out, sort_keys=True), flush=True)'

# one_of WORD A|B...: WORD is one of the alternatives.
one_of() { [[ "|$2|" == *"|$1|"* ]]; }

# expect NS RESULT: one connect to 100.64.1.5:80 as an app in NS gives RESULT (an errno name,
# connected or timeout; A|B for either); a refusal must come at once (under 200 ms).
expect() {
	local got ms
	read -r got ms < <(app "$1" $PY -c "$PROBE")
	e2e_log "  connect from $1: $got in $ms ms (want $2)"
	check "connect from $1 gives $2 (got $got)" one_of "$got" "$2" || return 1
	[ "$got" != ECONNREFUSED ] || check "refused at once ($ms ms)" [ "$ms" -lt 200 ]
}

# restart_no_gap NAME INSTANCE MODE [ARGS...]: starts the client while the prober runs; every
# connect must be refused (old interception, no listener; or reset by the new client before it
# has its server) or connected (new client): none may escape to normal routing.
restart_no_gap() {
	local name=$1 out pid
	rm -f "$E2E_TMP/stop.$name"*
	app_start "prober.$name" cli $PY -c "$PROBE" "$E2E_TMP/stop.$name"
	pid=$(pid_of "prober.$name")
	# The prober has been refused at least once before the client starts, and intercepted at
	# least once before it stops.
	wait_file "$E2E_TMP/stop.$name.first" 20 || return 1
	sleep 0.1
	client "$@" || return 1
	wait_file "$E2E_TMP/stop.$name.conn" 20
	sleep 0.1
	touch "$E2E_TMP/stop.$name"
	wait "$pid"
	out=$(cat "$E2E_TMP/prober.$name.log")
	e2e_log "  connects during the restart: $out"
	echo "restart ($3): $out" >>"$E2E_TMP/measurements"
	check "only refused or intercepted connects during the restart" \
		$PY -c 'import json, sys; d = json.loads(sys.argv[1])
sys.exit(not (set(d) <= {"ECONNREFUSED", "ECONNRESET", "connected"} and
              d.get("ECONNREFUSED") and d.get("connected")))' "$out"
}

progs() { bpftool cgroup show "$CG_APPS" 2>/dev/null | awk 'NR > 1' | wc -l; }

no_leftovers() {
	local d
	check "no pins left ($(ls "$PIN" 2>/dev/null | tr '\n' ' '))" [ ! -e "$PIN" ] || return 1
	check "no programs on $CG_APPS" [ "$(progs)" = 0 ] || return 1
	for d in "$E2E_CGROOT"/ntun-"$1"-*; do
		check "no daemon cgroup left ($d)" [ ! -e "$d" ] || return 1
	done
}

chains() { ip netns exec "$NS_cli" iptables -w 5 -t nat -S 2>/dev/null | grep -c -- "-N NTU[NX]-$INST_I\$"; }

case_bpf_fail_open() {
	client c1 "$INST" bpf || return 1
	get cli 1 && get ctr 2 || return 1
	stop c1 KILL
	expect cli ENETUNREACH && expect ctr ENETUNREACH || return 1
	check "no programs after kill -9 ($(progs))" [ "$(progs)" = 0 ] || return 1
	client c2 "$INST" bpf || return 1
	get cli 3 && get ctr 4 || return 1
	stop c2
	expect cli ENETUNREACH && no_leftovers "$INST"
}

case_bpf_fail_closed() {
	client c3 "$INST" bpf --fail-closed || return 1
	get cli 5 && get ctr 6 || return 1
	check "five pinned links" [ "$(ls "$PIN" | grep -c '^link_')" = 5 ] || return 1
	if nsenter --net=/run/netns/"$NS_cli" "$BIN_CLIENT" --cleanup --instance "$INST" \
		>"$E2E_TMP/cleanup-busy.log" 2>&1; then
		e2e_log "--cleanup went ahead with the client running"
		return 1
	fi
	check "--cleanup refused while running" grep -q "in use" "$E2E_TMP/cleanup-busy.log" ||
		return 1
	stop c3 KILL
	check "programs stay after kill -9 ($(progs))" [ "$(progs)" = 5 ] || return 1
	expect cli ECONNREFUSED && expect ctr ECONNREFUSED || return 1
	restart_no_gap c4 "$INST" bpf --fail-closed || return 1
	check "the restart took the pinned links over" grep -q "took over $PIN/link_" \
		"$E2E_TMP/c4.log" || return 1
	check "still five programs after the restart ($(progs))" [ "$(progs)" = 5 ] || return 1
	get cli 7 && get ctr 8 || return 1
	stop c4
	check "a clean stop keeps them too ($(progs))" [ "$(progs)" = 5 ] || return 1
	expect cli ECONNREFUSED && expect ctr ECONNREFUSED || return 1
	nsenter --net=/run/netns/"$NS_cli" "$BIN_CLIENT" --cleanup --instance "$INST" \
		>"$E2E_TMP/cleanup.log" 2>&1 || { cat "$E2E_TMP/cleanup.log" >&2; return 1; }
	no_leftovers "$INST" && expect cli ENETUNREACH && expect ctr ENETUNREACH
}

# Route following (no --cidr) and failing closed: a client restarted while the server is
# unreachable keeps intercepting its predecessor's prefixes, refusing the connects itself.
case_bpf_follow_fail_closed() {
	start c7 cli "$BIN_CLIENT" --server 10.10.1.2:8443 --listen-port 15001 \
		--cgroup "$CG_APPS" --instance "$INST" --intercept bpf $(tls_args client) \
		--log-format text --fail-closed
	wait_log c7 "following the server's routes: intercepting 1 prefix" 10 || return 1
	get cli 11 || return 1
	stop server
	stop c7 KILL
	expect cli ECONNREFUSED || return 1
	start c8 cli "$BIN_CLIENT" --server 10.10.1.2:8443 --listen-port 15001 \
		--cgroup "$CG_APPS" --instance "$INST" --intercept bpf $(tls_args client) \
		--log-format text --fail-closed
	wait_log c8 "keeping the 1 prefix\\(es\\) the previous daemon intercepted" 10 || return 1
	wait_log c8 "following the server's routes with bpf" 10 || return 1
	# Up but not connected: accepted and reset by the client (the reset may beat connect()'s
	# return), never routed elsewhere.
	expect cli "connected|ECONNRESET" || return 1
	# The app's connect completes in the kernel; the client logs once it has accepted and
	# refused the connection, which on a loaded machine can come a little later.
	check "c8 refused it itself" wait_log c8 "refused: not connected to server" 10 || return 1
	start_server
	wait_log c8 "following the server's routes: intercepting 1 prefix" 20 || return 1
	get cli 12 || return 1
	stop c8
	nsenter --net=/run/netns/"$NS_cli" "$BIN_CLIENT" --cleanup --instance "$INST" \
		>"$E2E_TMP/cleanup-f.log" 2>&1 || { cat "$E2E_TMP/cleanup-f.log" >&2; return 1; }
	no_leftovers "$INST" && expect cli ENETUNREACH
}

case_iptables_fail_closed() {
	ip -n "$NS_cli" route add 100.64.0.0/16 dev lo src 127.0.0.1
	expect cli timeout || return 1
	client c5 "$INST_I" iptables --fail-closed || return 1
	get cli 9 || return 1
	stop c5 KILL
	check "chain stays after kill -9" [ "$(chains)" = 1 ] || return 1
	expect cli ECONNREFUSED || return 1
	restart_no_gap c6 "$INST_I" iptables --fail-closed || return 1
	check "the restart took the chain over" grep -q "took over chain" "$E2E_TMP/c6.log" ||
		return 1
	check "one chain after the restart" [ "$(chains)" = 1 ] || return 1
	get cli 10 || return 1
	stop c6
	check "a clean stop keeps the chain" [ "$(chains)" = 1 ] || return 1
	expect cli ECONNREFUSED || return 1
	nsenter --net=/run/netns/"$NS_cli" "$BIN_CLIENT" --cleanup --instance "$INST_I" \
		>"$E2E_TMP/cleanup-i.log" 2>&1 || { cat "$E2E_TMP/cleanup-i.log" >&2; return 1; }
	check "no chain after --cleanup" [ "$(chains)" = 0 ] || return 1
	no_leftovers "$INST_I" && expect cli timeout
}

run_case "setup: server, proxy, web" setup || exit 1
run_case "a) fail open (BPF): kill -9 un-intercepts at once; restart; clean stop leaves nothing" \
	case_bpf_fail_open
run_case "b) fail closed (BPF): kill -9 -> ECONNREFUSED in both netns; restart without a gap; --cleanup" \
	case_bpf_fail_closed
run_case "c) fail closed, following routes (BPF): a restart without server keeps the prefixes" \
	case_bpf_follow_fail_closed
run_case "d) fail closed (iptables): kill -9 -> ECONNREFUSED; restart without a gap; --cleanup" \
	case_iptables_fail_closed
[ -f "$E2E_TMP/measurements" ] && cat "$E2E_TMP/measurements"
e2e_summary
