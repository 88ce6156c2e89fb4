#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# E2E for the client's interception (user/client/redirect.c) through ntun-redirect-harness: BPF
# mode (connect4/6, sockops, getsockopt, getpeername4/6), the iptables fallback, and leftovers.
#
#  root netns: nothing is added here         cgroup v2 ($CGV2, e.g. /sys/fs/cgroup/unified)
#                                            |-- ntun-test-tiPID/     BPF attached here (--cgroup);
#  +- netns ntun-tiPID-b (BPF cases) ----+   |     apps join it, then enter a netns
#  | lo 127.0.0.1:15001  harness listener|   |-- ntun-test-tiPID-root/  bind-mounted over $CGV2 in
#  |    100.64.9.9:7000  "real" server   |   |     a private mount ns: the harness's "root"
#  |    100.65.0.1:7000  "real" server   |   |     (default --cgroup case; daemon cgroup inside)
#  | no routes: an unredirected connect  |   `-- ntun-<inst>-<pid>/   the harness's own cgroup
#  | to 100.64.x fails with ENETUNREACH  |
#  +-------------------------------------+   intercepted: 100.64.1.0/24 100.64.2.0/24 100.64.9.9/32
#  +- netns ntun-tiPID-i (iptables) -----+   never:       100.65.0.0/16, 100.66.0.0/16
#  | the same, plus route 100.64.0.0/16  |
#  | dev lo src 127.0.0.1 and the chain  |   app -> 100.64.1.5:80 --(connect4 | nat REDIRECT)-->
#  | NTUN-<inst> in nat OUTPUT           |     127.0.0.1:15001 harness: "orig=100.64.1.5:80\n",
#  +-------------------------------------+     then echo
set -u
trap '' PIPE
. "$(dirname "$0")/own.sh"

BUILD=${NTUN_BUILD:-./build}
HARNESS=$BUILD/user/client/ntun-redirect-harness
PY=/usr/bin/python3
TAG=ti$$
NS_B=ntun-$TAG-b
NS_I=ntun-$TAG-i
PORT=15001
CIDRS=(--cidr 100.64.1.0/24 --cidr 100.64.2.0/24 --cidr 100.64.9.9/32)
INST_B=${TAG}b   # long-lived BPF harness
INST_C=${TAG}c   # crash/restart
INST_R=${TAG}r   # default cgroup (bind-mounted root)
INST_I=${TAG}i   # iptables
PIDS=()
N_PASS=0
N_FAIL=0
N_SKIP=0
TMP=
CGV2=
CG=
CG_ROOT=

log() { echo "    $*" >&2; }
fail() { log "FAIL: $*"; return 1; }

cleanup() {
	set +e
	local p d inst mine=()
	# Which are ours first: a harness whose wrapper dies is reparented, and is ours still.
	for p in "${PIDS[@]}"; do
		e2e_own "$p" && mine+=("$p")
	done
	for p in "${mine[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		{ wait "$p"; } 2>/dev/null
	done
	ip netns del "$NS_B" 2>/dev/null
	ip netns del "$NS_I" 2>/dev/null
	if [ -n "$CGV2" ]; then
		# innermost first: anything the harness made below our test cgroups, then ours
		for d in "$CG_ROOT" "$CG"; do
			[ -d "$d" ] &&
				find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$d" ] && rmdir "$d"
		done
		for inst in "$INST_B" "$INST_C" "$INST_R" "$INST_I"; do
			for d in "$CGV2"/ntun-"$inst"-*; do
				[ -d "$d" ] && rmdir "$d"
			done
			rm -f /sys/fs/bpf/ntun/"$inst"/* 2>/dev/null
			rmdir /sys/fs/bpf/ntun/"$inst" 2>/dev/null
		done
		rmdir /sys/fs/bpf/ntun 2>/dev/null
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT

# ---- helpers ----

forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do
		[ "$p" != "$1" ] && keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# wait_line FILE AFTER_LINE REGEX [SECONDS]: prints the first line after line AFTER_LINE matching.
wait_line() {
	local f=$1 from=$2 re=$3 t=${4:-10} i line
	for ((i = 0; i < t * 20; i++)); do
		if line=$(tail -n +"$((from + 1))" "$f" 2>/dev/null | grep -m1 -E -- "$re"); then
			echo "$line"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# h_start NS MODE INST CGROUP [MOUNT_ROOT]: starts a harness; sets H_PID H_FD H_OUT H_ERR.
# With MOUNT_ROOT, the harness runs in a private mount namespace where MOUNT_ROOT is bind-mounted
# over the cgroup v2 mount, so that it takes that (test-made) cgroup for the v2 root. A wrapper
# subshell waits for it and records its exit status (and keeps bash's "Killed" notices quiet).
h_start() {
	local ns=$1 mode=$2 inst=$3 cg=$4 root=${5:-} fifo i pre=()
	fifo=$TMP/h.$inst.$RANDOM.in
	H_OUT=$TMP/h.$inst.$RANDOM.out
	H_ERR=$H_OUT.err
	mkfifo "$fifo"
	if [ -n "$root" ]; then
		pre=(unshare -m --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 &&
			exec "$@"' sh "$root" "$CGV2")
	fi
	(
		nsenter --net=/run/netns/"$ns" "${pre[@]}" "$HARNESS" --mode "$mode" \
			--cgroup "$cg" --instance "$inst" --port "$PORT" "${CIDRS[@]}" \
			<"$fifo" >"$H_OUT" 2>"$H_ERR" &
		echo $! >"$H_OUT.pid"
		wait $!
		echo $? >"$H_OUT.rc"
	) 2>/dev/null &
	PIDS+=("$!")
	exec {H_FD}>"$fifo"
	for ((i = 0; i < 100; i++)); do
		[ -s "$H_OUT.pid" ] && break
		sleep 0.05
	done
	H_PID=$(cat "$H_OUT.pid")
	PIDS+=("$H_PID")
	if ! wait_line "$H_OUT" 0 '^ready ' 15 >/dev/null; then
		log "harness did not start:"
		sed 's/^/      /' "$H_ERR" >&2
		return 1
	fi
}

# h_cmd COMMAND REGEX: sends a command, prints the matching answer.
h_cmd() {
	local n
	n=$(wc -l <"$H_OUT")
	echo "$1" >&"$H_FD"
	wait_line "$H_OUT" "$n" "$2" 15
}

# h_stop quit|kill: ends the harness, returns its exit status (quit) or 0 (kill).
h_stop() {
	local i rc
	if [ "$1" = kill ]; then
		kill -9 "$H_PID"
	else
		echo quit >&"$H_FD"
	fi
	exec {H_FD}>&-
	for ((i = 0; i < 100; i++)); do
		[ -s "$H_OUT.rc" ] && break
		sleep 0.1
	done
	if [ ! -s "$H_OUT.rc" ]; then
		kill -9 "$H_PID" 2>/dev/null
		fail "harness $H_PID did not exit"
		return 1
	fi
	rc=$(cat "$H_OUT.rc")
	forget_pid "$H_PID"
	[ "$1" = kill ] && return 0
	if grep -qE 'Sanitizer|runtime error' "$H_ERR"; then
		sed 's/^/      /' "$H_ERR" >&2
		return 99
	fi
	return "$rc"
}

# app NS ARGS...: runs app.py joined to $CG first, then in the netns (order matters).
app() {
	local ns=$1
	shift
	timeout 120 sh -c 'cg=$1 ns=$2; shift 2; echo $$ >"$cg/cgroup.procs" &&
		exec nsenter --net="/run/netns/$ns" "$@"' sh "${APP_CG:-$CG}" "$ns" \
		"$PY" "$TMP/app.py" "$@"
}

# expect_probe NS DST WANT [probe6]: one probe line must equal WANT.
expect_probe() {
	local got
	got=$(app "$1" "${4:-probe}" "$2")
	[ "$got" = "$3" ] || fail "${4:-probe} $2: got '$got', want '$3'"
}

redirected_line() { echo "$1 line=orig=$1 peer=$1 echo=ok"; }
real_line() { echo "$1 line=REAL $1 peer=$1 echo=ok"; }

map_count() {
	bpftool -j map dump pinned "$1" |
		"$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# wait_map_empty PIN: up to 5 s for the connection map to drain.
wait_map_empty() {
	local i n
	for ((i = 0; i < 50; i++)); do
		n=$(map_count "$1") && [ "$n" = 0 ] && return 0
		sleep 0.1
	done
	fail "$1 still has $n entries: $(bpftool map dump pinned "$1" | head -40)"
}

cg_progs() {
	bpftool cgroup show "$1" 2>/dev/null | awk 'NR > 1 { print $NF }' | sort | tr '\n' ' '
}

root_untouched() {
	if bpftool cgroup show "$CGV2" 2>/dev/null | grep -q ntun_; then
		fail "a ntun program is attached to the cgroup v2 root $CGV2"
	fi
}

start_real_server() {
	local out=$TMP/real.$1.out
	nsenter --net=/run/netns/"$1" "$PY" "$TMP/app.py" serve 7000 >"$out" 2>&1 &
	PIDS+=("$!")
	wait_line "$out" 0 '^ready' 10 >/dev/null || fail "real server in $1 did not start"
}

# no_leftovers INST: nothing of the instance survives a clean exit.
no_leftovers() {
	local inst=$1 d
	[ ! -e /sys/fs/bpf/ntun/"$inst" ] || fail "pins left: $(ls /sys/fs/bpf/ntun/"$inst")" ||
		return 1
	for d in "$CGV2"/ntun-"$inst"-* "$CG_ROOT"/ntun-"$inst"-*; do
		[ ! -e "$d" ] || fail "daemon cgroup left: $d" || return 1
	done
	[ -z "$(cg_progs "$CG")" ] || fail "programs left on $CG: $(cg_progs "$CG")" || return 1
	[ -z "$(cg_progs "$CG_ROOT")" ] || fail "programs left on $CG_ROOT: $(cg_progs "$CG_ROOT")"
}

run_case() {
	local rc
	"$1"
	rc=$?
	case $rc in
	0) echo "PASS $1"; N_PASS=$((N_PASS + 1)) ;;
	77) echo "SKIP $1"; N_SKIP=$((N_SKIP + 1)) ;;
	*) echo "FAIL $1"; N_FAIL=$((N_FAIL + 1)) ;;
	esac
}

write_app() {
	cat >"$TMP/app.py" <<'EOF'
# The app side: probe DST... | probe6 DST... | many N PREFIX PORT FLAGDIR | fastclose DST | serve PORT
import errno, hashlib, os, socket, sys, threading, time

TIMEOUT = float(os.environ.get("APP_TIMEOUT", "5"))

def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "ETIMEDOUT"

def split(dst):
    ip, port = dst.rsplit(":", 1)
    return ip, int(port)

def exchange(s, size):
    """Reads the server's first line, echoes size random bytes; returns (line, echo_ok)."""
    f = s.makefile("rb")
    line = f.readline().decode().strip()
    data = os.urandom(size)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    back = f.read()
    t.join()
    return line, hashlib.sha256(back).digest() == hashlib.sha256(data).digest()

def probe(dst, v6=False):
    """v6: the same IPv4 destination from a dual-stack AF_INET6 socket (::ffff:a.b.c.d)."""
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.settimeout(TIMEOUT)
    try:
        ip, port = split(dst)
        s.connect(("::ffff:" + ip if v6 else ip, port))
        peer = "%s:%d" % s.getpeername()[:2]
        line, ok = exchange(s, 256 * 1024)
        return "%s line=%s peer=%s echo=%s" % (dst, line, peer, "ok" if ok else "bad")
    except OSError as e:
        return "%s err=%s" % (dst, ename(e))
    finally:
        s.close()

def many(n, prefix, port, flagdir):
    """n threads connect at once to prefix.1..n; all stay open until every one is checked."""
    start, opened, go = threading.Barrier(n), threading.Barrier(n + 1), threading.Event()
    res = [None] * n
    def worker(i):
        dst = "%s.%d:%d" % (prefix, i + 1, port)
        s = socket.socket()
        s.settimeout(30)
        try:
            start.wait()
            s.connect(split(dst))
            f = s.makefile("rb")
            line = f.readline().decode().strip()
            peer = "%s:%d" % s.getpeername()
            opened.wait()
            go.wait(60)
            s.sendall(dst.encode())
            s.shutdown(socket.SHUT_WR)
            back = f.read()
            good = line == "orig=" + dst and peer == dst and back == dst.encode()
            res[i] = "ok" if good else "%s line=%s peer=%s back=%r" % (dst, line, peer, back)
        except Exception as e:
            res[i] = "%s exc=%r" % (dst, e)
            try:
                opened.abort()
            except Exception:
                pass
        finally:
            s.close()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    try:
        opened.wait(timeout=60)
        open(os.path.join(flagdir, "many.open"), "w").close()
        for _ in range(600):
            if os.path.exists(os.path.join(flagdir, "many.go")):
                break
            time.sleep(0.05)
    except threading.BrokenBarrierError:
        pass
    go.set()
    for t in ts:
        t.join()
    bad = [r for r in res if r != "ok"]
    print("many ok=%d bad=%d" % (n - len(bad), len(bad)))
    for r in bad[:5]:
        print("  " + str(r))

def fastclose(dst):
    s = socket.create_connection(split(dst), timeout=TIMEOUT)
    s.sendall(b"x" * 1000)
    s.close()
    print("sent")

def serve(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(256)
    print("ready", flush=True)
    def handle(c):
        try:
            c.sendall(("REAL %s:%d\n" % c.getsockname()).encode())
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

cmd = sys.argv[1]
if cmd in ("probe", "probe6"):
    for d in sys.argv[2:]:
        print(probe(d, cmd == "probe6"), flush=True)
elif cmd == "many":
    many(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
elif cmd == "fastclose":
    fastclose(sys.argv[2])
elif cmd == "serve":
    serve(int(sys.argv[2]))
EOF
}

setup_netns() {
	local ns=$1
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 100.64.9.9/32 dev lo
	ip -n "$ns" addr add 100.65.0.1/32 dev lo
}

# ---- cases: BPF mode (one harness for the first six) ----

PIN_B=
APP_PROGS="ntun_connect4 ntun_connect6 ntun_getpeer4 ntun_getpeer6 ntun_sockops "

case_bpf_intercept() {
	local progs dcg
	h_start "$NS_B" bpf "$INST_B" "$CG" || return 1
	H_B_FD=$H_FD H_B_PID=$H_PID H_B_OUT=$H_OUT H_B_ERR=$H_ERR
	PIN_B=/sys/fs/bpf/ntun/$INST_B
	grep -q 'mode=bpf' "$H_ERR" || fail "no 'mode=bpf' in the log" || return 1
	expect_probe "$NS_B" 100.64.1.5:80 "$(redirected_line 100.64.1.5:80)" || return 1
	expect_probe "$NS_B" 100.64.2.9:443 "$(redirected_line 100.64.2.9:443)" || return 1
	expect_probe "$NS_B" 100.64.2.10:80 \
		"100.64.2.10:80 line=orig=100.64.2.10:80 peer=::ffff:100.64.2.10:80 echo=ok" probe6 ||
		return 1
	grep -q '^orig=100.64.1.5:80 peer=127.0.0.1:' "$H_OUT" || fail "harness saw no orig" ||
		return 1
	# outside the CIDRs: untouched (a local "real" server; no route at all)
	expect_probe "$NS_B" 100.65.0.1:7000 "$(real_line 100.65.0.1:7000)" || return 1
	expect_probe "$NS_B" 100.66.0.1:80 "100.66.0.1:80 err=ENETUNREACH" || return 1
	expect_probe "$NS_B" 100.65.0.1:7000 \
		"100.65.0.1:7000 line=REAL 100.65.0.1:7000 peer=::ffff:100.65.0.1:7000 echo=ok" \
		probe6 || return 1
	# attachments: five on the test cgroup, getsockopt + sockops on the daemon's, none on root
	progs=$(cg_progs "$CG")
	[ "$progs" = "$APP_PROGS" ] ||
		fail "programs on $CG: '$progs'" || return 1
	dcg=$(echo "$CGV2"/ntun-"$INST_B"-"$H_PID")
	[ -d "$dcg" ] || fail "no daemon cgroup $dcg" || return 1
	grep -qx "$H_PID" "$dcg/cgroup.procs" || fail "harness not in $dcg" || return 1
	progs=$(cg_progs "$dcg")
	[ "$progs" = "ntun_getsockopt ntun_sockops " ] || fail "programs on $dcg: '$progs'" ||
		return 1
	root_untouched || return 1
	for m in ntun_cidrs ntun_conn ntun_stats; do
		[ -e "$PIN_B/$m" ] || fail "no pin $PIN_B/$m" || return 1
	done
	bpftool map dump pinned "$PIN_B/ntun_cidrs" | grep -q '"prefixlen": 24' ||
		fail "ntun_cidrs dump not BTF-formatted"
}

case_bpf_self_not_redirected() {
	local got
	# the harness's own connect (its cgroup is outside the attached subtree)
	got=$(h_cmd "connect 100.64.9.9:7000 nomark" '^connect ') || fail "no answer" || return 1
	[ "$got" = "connect 100.64.9.9:7000 -> REAL 100.64.9.9:7000" ] || fail "$got" || return 1
	# a marked socket inside the intercepted cgroup is left alone...
	got=$(h_cmd "connect 100.64.9.9:7000 mark $CG" '^connect ') || fail "no answer" || return 1
	[ "$got" = "connect 100.64.9.9:7000 -> REAL 100.64.9.9:7000" ] || fail "$got" || return 1
	# ...and the same connect unmarked is redirected
	got=$(h_cmd "connect 100.64.9.9:7000 nomark $CG" '^connect ') || fail "no answer" ||
		return 1
	[ "$got" = "connect 100.64.9.9:7000 -> orig=100.64.9.9:7000" ] || fail "$got" || return 1
	got=$(h_cmd stats '^stats ')
	echo "$got" | grep -qE 'skip_mark=[1-9]' || fail "skip_mark not counted: $got"
}

case_bpf_live_update() {
	h_cmd "cidrs 100.64.3.0/24 100.64.2.0/24" '^(ok|err) cidrs' | grep -q '^ok' ||
		fail "cidrs update failed" || return 1
	expect_probe "$NS_B" 100.64.3.7:8080 "$(redirected_line 100.64.3.7:8080)" || return 1
	expect_probe "$NS_B" 100.64.2.9:443 "$(redirected_line 100.64.2.9:443)" || return 1
	expect_probe "$NS_B" 100.64.1.5:80 "100.64.1.5:80 err=ENETUNREACH" || return 1
	[ "$(map_count "$PIN_B/ntun_cidrs")" = 2 ] || fail "ntun_cidrs should hold 2 prefixes" ||
		return 1
	h_cmd "cidrs 100.64.1.0/24 100.64.2.0/24 100.64.9.9/32" '^(ok|err) cidrs' | grep -q '^ok' ||
		fail "cidrs restore failed" || return 1
	expect_probe "$NS_B" 100.64.1.5:80 "$(redirected_line 100.64.1.5:80)"
}

# The app connects, writes and closes before the daemon accepts: the daemon must still learn
# the original destination. The record crossed the handshake in ntun_conn and now rides on the
# daemon's not yet accepted socket, so the shared map is already empty while it is held.
case_bpf_early_close() {
	local got n i
	h_cmd hold '^ok hold' >/dev/null || return 1
	got=$(app "$NS_B" fastclose 100.64.1.77:80)
	# The entry leaves the map when the kernel finishes the handshake (normally inside the
	# app's connect(); later if softirq work waits for ksoftirqd on a loaded machine).
	for i in $(seq 1 50); do
		n=$(map_count "$PIN_B/ntun_conn")
		[ "$n" = 0 ] && break
		sleep 0.1
	done
	h_cmd release '^ok release' >/dev/null || return 1
	[ "$got" = sent ] || fail "fastclose: $got" || return 1
	[ "$n" = 0 ] || fail "ntun_conn holds $n entries for a connection the daemon has" ||
		return 1
	got=$(wait_line "$H_OUT" 0 '100.64.1.77' 5) || fail "harness never accepted it" || return 1
	[[ $got == "orig=100.64.1.77:80 "* ]] || fail "$got"
}

case_bpf_concurrent_200() {
	local got pid n
	rm -f "$TMP/many.open" "$TMP/many.go"
	app "$NS_B" many 200 100.64.1 80 "$TMP" >"$TMP/many.out" 2>&1 &
	pid=$!
	for ((n = 0; n < 600; n++)); do
		[ -e "$TMP/many.open" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	n=$(map_count "$PIN_B/ntun_conn")
	touch "$TMP/many.go"
	wait "$pid"
	got=$(head -1 "$TMP/many.out")
	[ "$got" = "many ok=200 bad=0" ] || fail "$(cat "$TMP/many.out")" || return 1
	# every one was accepted: the records ride on the sockets, none waits in the shared map
	[ "$n" = 0 ] || fail "$n entries in ntun_conn with 200 accepted connections open" ||
		return 1
	n=$(grep -cE '^orig=100\.64\.1\.([1-9]|[1-9][0-9]|1[0-9][0-9]|200):80 ' "$H_OUT")
	[ "$n" -ge 200 ] ||
		fail "harness reported fewer than 200 original destinations"
}

case_bpf_no_leaks() {
	local got
	wait_map_empty "$PIN_B/ntun_conn" || return 1
	got=$(h_cmd stats '^stats ')
	echo "$got" | grep -q 'track_fail=0 ' || fail "$got" || return 1
	log "$got"
}

case_bpf_exit_cleanup() {
	H_FD=$H_B_FD H_PID=$H_B_PID H_OUT=$H_B_OUT H_ERR=$H_B_ERR
	h_stop quit || fail "harness exit status $?" || return 1
	no_leftovers "$INST_B" || return 1
	root_untouched || return 1
	# policy while the daemon is down: fail open, nothing redirected
	expect_probe "$NS_B" 100.64.1.5:80 "100.64.1.5:80 err=ENETUNREACH"
}

case_bpf_crash_restart() {
	local old got
	h_start "$NS_B" bpf "$INST_C" "$CG" || return 1
	old=$H_PID
	# a second daemon of the same instance is refused while the first lives
	if nsenter --net=/run/netns/"$NS_B" "$HARNESS" --mode bpf --cgroup "$CG" \
		--instance "$INST_C" --port 15002 --cidr 100.64.1.0/24 </dev/null >/dev/null \
		2>"$TMP/busy.err"; then
		fail "a second harness of instance $INST_C started" || return 1
	fi
	grep -q 'in use' "$TMP/busy.err" || fail "busy: $(cat "$TMP/busy.err")" || return 1
	h_stop kill
	# links die with the process; the stale pins and the empty cgroup stay until a restart
	[ -z "$(cg_progs "$CG")" ] || fail "programs survive SIGKILL: $(cg_progs "$CG")" || return 1
	[ -e /sys/fs/bpf/ntun/"$INST_C"/ntun_conn ] || fail "expected stale pins" || return 1
	[ -d "$CGV2/ntun-$INST_C-$old" ] || fail "expected a stale daemon cgroup" || return 1
	expect_probe "$NS_B" 100.64.1.5:80 "100.64.1.5:80 err=ENETUNREACH" || return 1
	# restart (mode auto must pick BPF) clears the leftovers and works
	h_start "$NS_B" auto "$INST_C" "$CG" || return 1
	grep -q '^ready mode=bpf ' "$H_OUT" || fail "auto did not choose bpf" || return 1
	[ ! -e "$CGV2/ntun-$INST_C-$old" ] || fail "stale daemon cgroup not removed" || return 1
	expect_probe "$NS_B" 100.64.2.9:443 "$(redirected_line 100.64.2.9:443)" || return 1
	h_stop quit || fail "harness exit status $?" || return 1
	no_leftovers "$INST_C"
}

# --cgroup default with the daemon cgroup inside the attached subtree, as in production where
# the root is intercepted: here the "root" is a test cgroup bind-mounted over the v2 mount.
case_bpf_default_cgroup() {
	local got progs
	h_start "$NS_B" bpf "$INST_R" default "$CG_ROOT" || return 1
	grep -q "cgroup=$CGV2 " "$H_ERR" || fail "harness did not take the default cgroup" ||
		return 1
	progs=$(cg_progs "$CG_ROOT")
	[ "$progs" = "$APP_PROGS" ] ||
		fail "programs on $CG_ROOT: '$progs'" || return 1
	[ -d "$CG_ROOT/ntun-$INST_R-$H_PID" ] || fail "daemon cgroup not inside" || return 1
	root_untouched || return 1
	# the harness's own unmarked connect is skipped by cgroup id
	got=$(h_cmd "connect 100.64.9.9:7000 nomark" '^connect ') || fail "no answer" || return 1
	[ "$got" = "connect 100.64.9.9:7000 -> REAL 100.64.9.9:7000" ] || fail "$got" || return 1
	got=$(h_cmd stats '^stats ')
	echo "$got" | grep -qE 'skip_self=[1-9]' || fail "skip_self not counted: $got" || return 1
	# an app in the same subtree is redirected, and sockops runs once for the daemon side
	got=$(APP_CG=$CG_ROOT app "$NS_B" probe 100.64.1.5:80)
	[ "$got" = "$(redirected_line 100.64.1.5:80)" ] || fail "$got" || return 1
	wait_map_empty /sys/fs/bpf/ntun/"$INST_R"/ntun_conn || return 1
	h_stop quit || fail "harness exit status $?" || return 1
	no_leftovers "$INST_R"
}

# ---- cases: iptables mode ----

# mode auto with a --cgroup that is no cgroup v2 directory: an error, not netns-wide iptables
case_auto_bad_cgroup() {
	if nsenter --net=/run/netns/"$NS_I" "$HARNESS" --mode auto --cgroup "$TMP" \
		--instance "$INST_I" --port "$PORT" --cidr 100.64.1.0/24 </dev/null >/dev/null \
		2>"$TMP/bad.err"; then
		fail "harness started with --cgroup $TMP" || return 1
	fi
	grep -q 'not a cgroup v2 directory' "$TMP/bad.err" || fail "$(cat "$TMP/bad.err")" ||
		return 1
	! nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S 2>/dev/null | grep -q NTUN ||
		fail "iptables rules installed" || return 1
	no_leftovers "$INST_I"
}

case_ipt_intercept() {
	local got rules
	if ! nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S OUTPUT >/dev/null 2>&1; then
		log "iptables nat table unavailable"
		return 77
	fi
	ip -n "$NS_I" route add 100.64.0.0/16 dev lo src 127.0.0.1 || return 1
	h_start "$NS_I" iptables "$INST_I" "$CG" || return 1
	grep -q '^ready mode=iptables ' "$H_OUT" || fail "not in iptables mode" || return 1
	rules=$(nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S)
	echo "$rules" | grep -qx -- "-A OUTPUT -p tcp -j NTUN-$INST_I" || fail "no jump: $rules" ||
		return 1
	echo "$rules" | grep -qx -- "-A NTUN-$INST_I -m mark --mark 0x4e54554e -j RETURN" ||
		fail "no mark rule: $rules" || return 1
	[ "$(echo "$rules" | grep -c -- "-j REDIRECT --to-ports $PORT")" = 3 ] ||
		fail "want 3 REDIRECT rules: $rules" || return 1
	[ -z "$(cg_progs "$CG")" ] || fail "BPF attached in iptables mode" || return 1
	# one daemon per instance and netns
	if nsenter --net=/run/netns/"$NS_I" "$HARNESS" --mode iptables --cgroup "$CG" \
		--instance "$INST_I" --port 15002 --cidr 100.64.1.0/24 </dev/null >/dev/null \
		2>"$TMP/busy.err"; then
		fail "a second harness of instance $INST_I started" || return 1
	fi
	grep -q 'in use' "$TMP/busy.err" || fail "busy: $(cat "$TMP/busy.err")" || return 1
	got=$(nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S | grep -c -- "-j REDIRECT")
	[ "$got" = 3 ] || fail "the refused harness touched the rules" || return 1
	expect_probe "$NS_I" 100.64.1.5:80 "$(redirected_line 100.64.1.5:80)" || return 1
	expect_probe "$NS_I" 100.64.2.9:443 "$(redirected_line 100.64.2.9:443)" || return 1
	expect_probe "$NS_I" 100.64.2.10:80 \
		"100.64.2.10:80 line=orig=100.64.2.10:80 peer=::ffff:100.64.2.10:80 echo=ok" probe6 ||
		return 1
	expect_probe "$NS_I" 100.65.0.1:7000 "$(real_line 100.65.0.1:7000)" || return 1
	expect_probe "$NS_I" 100.66.0.1:80 "100.66.0.1:80 err=ENETUNREACH" || return 1
	# the daemon's marked connect passes; iptables mode is per netns, not per cgroup
	got=$(h_cmd "connect 100.64.9.9:7000 mark" '^connect ') || fail "no answer" || return 1
	[ "$got" = "connect 100.64.9.9:7000 -> REAL 100.64.9.9:7000" ] || fail "$got" || return 1
	got=$(h_cmd "connect 100.64.9.9:7000 nomark" '^connect ') || fail "no answer" || return 1
	[ "$got" = "connect 100.64.9.9:7000 -> orig=100.64.9.9:7000" ] || fail "$got"
}

case_ipt_live_update_and_200() {
	local got
	[ -n "${H_PID:-}" ] && grep -q '^ready mode=iptables' "$H_OUT" 2>/dev/null || return 77
	h_cmd "cidrs 100.64.3.0/24 100.64.2.0/24" '^(ok|err) cidrs' | grep -q '^ok' ||
		fail "cidrs update failed" || return 1
	expect_probe "$NS_I" 100.64.3.7:8080 "$(redirected_line 100.64.3.7:8080)" || return 1
	got=$(APP_TIMEOUT=1 app "$NS_I" probe 100.64.1.5:80)
	[ "$got" = "100.64.1.5:80 err=ETIMEDOUT" ] ||
		fail "removed prefix still redirected: $got" || return 1
	h_cmd "cidrs 100.64.1.0/24 100.64.2.0/24 100.64.9.9/32" '^(ok|err) cidrs' | grep -q '^ok' ||
		fail "cidrs restore failed" || return 1
	[ "$(nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S "NTUN-$INST_I" |
		grep -c REDIRECT)" = 3 ] || fail "want 3 REDIRECT rules after restore" || return 1
	rm -f "$TMP/many.open"
	touch "$TMP/many.go"
	got=$(app "$NS_I" many 200 100.64.1 80 "$TMP" | head -1)
	[ "$got" = "many ok=200 bad=0" ] || fail "$got"
}

case_ipt_exit_cleanup() {
	local old rules
	[ -n "${H_PID:-}" ] && grep -q '^ready mode=iptables' "$H_OUT" 2>/dev/null || return 77
	# crash: the chain stays (connects would be refused), a restart replaces it exactly once
	old=$H_PID
	h_stop kill
	nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S | grep -q "NTUN-$INST_I" ||
		fail "chain should survive SIGKILL" || return 1
	h_start "$NS_I" iptables "$INST_I" "$CG" || return 1
	rules=$(nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S)
	[ "$(echo "$rules" | grep -c -- "-j NTUN-$INST_I")" = 1 ] || fail "jumps: $rules" ||
		return 1
	[ "$(echo "$rules" | grep -c -- "-j REDIRECT")" = 3 ] || fail "rules: $rules" || return 1
	[ ! -e "$CGV2/ntun-$INST_I-$old" ] || fail "stale daemon cgroup not removed" || return 1
	expect_probe "$NS_I" 100.64.1.5:80 "$(redirected_line 100.64.1.5:80)" || return 1
	h_stop quit || fail "harness exit status $?" || return 1
	rules=$(nsenter --net=/run/netns/"$NS_I" iptables -w -t nat -S)
	! echo "$rules" | grep -q NTUN || fail "chain left: $rules" || return 1
	no_leftovers "$INST_I"
}

# ---- main ----

main() {
	local t
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP test_intercept (needs root)"
		exit 77
	fi
	for t in bpftool iptables nsenter unshare ip findmnt "$PY"; do
		command -v "$t" >/dev/null || { echo "FAIL test_intercept: $t missing"; exit 1; }
	done
	if [ ! -x "$HARNESS" ]; then
		echo "FAIL test_intercept: no $HARNESS (NTUN_BUILD=$BUILD)"
		exit 1
	fi
	CGV2=$(findmnt -n -t cgroup2 -o TARGET | head -1)
	if [ -z "$CGV2" ]; then
		echo "SKIP test_intercept (no cgroup v2 mount)"
		exit 77
	fi
	CG=$CGV2/ntun-test-$TAG
	CG_ROOT=$CGV2/ntun-test-$TAG-root
	TMP=$(mktemp -d /tmp/ntun-test-intercept.XXXXXX)
	mkdir "$CG" "$CG_ROOT" || exit 1
	write_app
	setup_netns "$NS_B" || exit 1
	setup_netns "$NS_I" || exit 1
	start_real_server "$NS_B" || exit 1
	start_real_server "$NS_I" || exit 1

	run_case case_bpf_intercept
	run_case case_bpf_self_not_redirected
	run_case case_bpf_live_update
	run_case case_bpf_early_close
	run_case case_bpf_concurrent_200
	run_case case_bpf_no_leaks
	run_case case_bpf_exit_cleanup
	run_case case_bpf_crash_restart
	run_case case_bpf_default_cgroup
	run_case case_auto_bad_cgroup
	run_case case_ipt_intercept
	run_case case_ipt_live_update_and_200
	run_case case_ipt_exit_cleanup

	echo "test_intercept: $N_PASS passed, $N_FAIL failed, $N_SKIP skipped"
	[ "$N_FAIL" = 0 ]
}

main "$@"
