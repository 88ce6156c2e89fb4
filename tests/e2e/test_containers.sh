#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One ntun-client (BPF mode) serves every container under its --cgroup, whatever network
# namespace the container runs in: it keeps a listener in each of them.
#
#   ns cli (container host)                         ns rly          ns site        ns web
#   ntun-client --cgroup <test>/apps  10.10.1.1 --- 10.10.1.2       10.10.2.1 ---- 192.168.1.5:80
#   br0 10.88.0.1/24                                ntun-server --- ntun-proxy     192.168.1.6:80
#    `- vbr ======== cbr: eth0 10.88.0.2/24, default via 10.88.0.1          (bridged, like Docker)
#   vpod (proxy_arp) = cpod: eth0 10.99.0.5/32, default via 169.254.1.1     (routed, like Calico)
#   route 10.99.0.5/32 dev vpod
#   cnone, cx, cy, late*, f1..f50: only lo                                  (--network none)
#
#   cgroups: <test>/apps/{cbr,cpod,cnone,cx,cy,late*,f*}  intercepted (--cgroup <test>/apps)
#            <test>/sibling                                     never intercepted
#
# The apps dial 100.64.1.5:80 / 100.64.1.6:80 (virtual 100.64.1.0/24 -> 192.168.1.0/24); the web
# server answers each connection with "HELLO <its real address>" and then GET's bytes, so a
# connection carried to the wrong destination shows. Every transfer is checked by SHA-256.
. "$(dirname "$0")/lib.sh"
e2e_init

PORT=15001
SIZES="1024 $((1024 * 1024)) $((16 * 1024 * 1024))"
CTRAPP="$E2E_TMP/ctrapp.py"

write_ctrapp() {
	cat >"$CTRAPP" <<'EOF'
# usage: ctrapp.py E2EDIR serve PORT | get HOST PORT SIZE SEED [SPORT HOLD] | late CGDIR HOST PORT
#        | direct PORT | burst N HOST PORT ok|refused|reset | many N HOST PORT FLAG
#        | probe HOST PORT
import errno, hashlib, json, os, socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
from netapp import gen, gen_hash, read_line as readline

def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__

def real_of(host, port):
    return "192.168.1.%s:%d" % (host.rsplit(".", 1)[1], port)

def get(host, port, size, seed, sport=0, hold=0.0, timeout=30):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", sport))
        s.connect((host, port))
        peer = "%s:%d" % s.getpeername()
        local = "%s:%d" % s.getsockname()
        time.sleep(hold)
        hello = readline(s)
        s.sendall(b"GET %d %d\n" % (size, seed))
        h, n = hashlib.sha256(), 0
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            h.update(d)
            n += len(d)
        ok = (peer == "%s:%d" % (host, port) and hello == "HELLO " + real_of(host, port)
              and n == size and h.hexdigest() == gen_hash(size, seed))
        return {"ok": ok, "peer": peer, "local": local, "hello": hello, "got": n}
    except OSError as e:
        return {"ok": False, "err": ename(e)}
    finally:
        s.close()

def serve(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1024)
    print("listening", flush=True)
    def one(c):
        try:
            c.sendall(("HELLO %s:%d\n" % c.getsockname()).encode())
            cmd = readline(c).split()
            if cmd and cmd[0] == "GET":
                for b in gen(int(cmd[1]), int(cmd[2])):
                    c.sendall(b)
        except OSError:
            pass
        c.close()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()

def late(cgdir, host, port):
    """Moves itself into cgdir (the container appears), then connects until one is carried.
    cgdir "-": already in the subtree, it appeared in this netns when it started."""
    first_err, tries = None, 0
    t0 = time.monotonic()
    if cgdir != "-":
        with open(os.path.join(cgdir, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    while time.monotonic() - t0 < 5:
        tries += 1
        t1 = time.monotonic()
        r = get(host, port, 1024, 77, timeout=2)
        if r["ok"]:
            r.update(delay=round(t1 - t0, 4), tries=tries, first_err=first_err)
            return r
        if first_err is None:
            first_err = "%s after %.4f s" % (r.get("err", "bad"), time.monotonic() - t1)
        time.sleep(0.005)
    return {"ok": False, "tries": tries, "first_err": first_err}

def direct(port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET 10 1\n")
        d = s.recv(100)
        return {"outcome": "data" if d else "eof"}
    except OSError as e:
        return {"outcome": ename(e)}
    finally:
        s.close()

def burst(n, host, port, mode):
    lock, res, idx = threading.Lock(), {"ok": 0, "bad": 0, "why": []}, [0]
    def worker():
        while True:
            with lock:
                if idx[0] >= n:
                    return
                idx[0] += 1
                i = idx[0]
            if mode == "ok":
                r = get(host, port, 1, i, timeout=20)
                good = r["ok"]
            elif mode == "reset":  # the app resets right after connect
                s = socket.socket()
                s.settimeout(20)
                try:
                    s.connect((host, port))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    good, r = True, {}
                except OSError as e:  # the daemon may have reset it first
                    good, r = e.errno == errno.ECONNRESET, {"err": ename(e)}
                finally:
                    s.close()
            else:
                s = socket.socket()
                s.settimeout(20)
                try:
                    s.connect((host, port))
                    s.sendall(b"GET 1 1\n")
                    d = s.recv(100)  # a refused tunnel: reset or EOF, never data
                    good, r = not d, {"err": "data" if d else "eof"}
                except OSError as e:
                    good, r = True, {"err": ename(e)}
                finally:
                    s.close()
            with lock:
                res["ok" if good else "bad"] += 1
                if not good and len(res["why"]) < 3:
                    res["why"].append(r)
    ts = [threading.Thread(target=worker) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return res

def many(n, host, port, flag):
    """n connections open at once (each has had its HELLO), held until flag exists."""
    socks, ok = [], 0
    for _ in range(n):
        s = socket.socket()
        s.settimeout(20)
        try:
            s.connect((host, port))
            ok += readline(s) == "HELLO " + real_of(host, port)
        except OSError:
            pass
        socks.append(s)
    print(json.dumps({"open": ok}), flush=True)
    for _ in range(1200):
        if os.path.exists(flag):
            break
        time.sleep(0.05)
    for s in socks:
        s.close()

def probe(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return {"outcome": "connected", "hello": readline(s)}
    except OSError as e:
        return {"outcome": ename(e)}
    finally:
        s.close()

a = sys.argv[2:]
if a[0] == "serve":
    serve(int(a[1]))
elif a[0] == "get":
    r = get(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]) if len(a) > 5 else 0,
            float(a[6]) if len(a) > 6 else 0.0)
    print(json.dumps(r))
    sys.exit(0 if r["ok"] else 1)
elif a[0] == "late":
    r = late(a[1], a[2], int(a[3]))
    print(json.dumps(r))
    sys.exit(0 if r["ok"] else 1)
elif a[0] == "direct":
    print(json.dumps(direct(int(a[1]))))
elif a[0] == "burst":
    print(json.dumps(burst(int(a[1]), a[2], int(a[3]), a[4])))
elif a[0] == "many":
    many(int(a[1]), a[2], int(a[3]), a[4])
elif a[0] == "probe":
    print(json.dumps(probe(a[1], int(a[2]))))
EOF
}

# ctrapp ARGS...: the helper app, with netapp's generator.
ctrapp() { $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" "$@"; }

# in_ctr CG NS CMD...: CMD as a container process: enters netns NS (nsenter keeps /sys), then
# joins cgroup CG (a name under apps, or an absolute dir): never a moment in the subtree while
# still in the root netns. Sockets are made after both, so both apply.
in_ctr() {
	local cg="$1" ns="$2$E2E_ID"
	shift 2
	[[ $cg == /* ]] || cg="$CG_APPS/$cg"
	mkdir -p "$cg"
	nsenter --net=/run/netns/"$ns" sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
		_ "$cg" "$@"
}

# hold CG NS: a long-lived process (the container's "pause") in CG and NS; sets HELD_PID.
hold() {
	mkdir -p "$CG_APPS/$1"
	nsenter --net=/run/netns/"$2$E2E_ID" sh -c 'echo $$ > "$1/cgroup.procs" && exec sleep 900' \
		_ "$CG_APPS/$1" &
	HELD_PID=$!
	E2E_PIDS+=("$HELD_PID")
}

netns_ino() { stat -L -c %i "/run/netns/$1$E2E_ID"; }

# wait_listener NS [SECONDS]: the client logs a listener in that netns.
wait_listener() { wait_log client "ctr: netns $(netns_ino "$1") .*listening on" "${2:-10}"; }

# wait_count NAME REGEX N SECONDS: until the daemon's log has N matching lines.
wait_count() {
	local i
	for i in $(seq 1 $(($4 * 10))); do
		[ "$(grep -Ec -- "$2" "$E2E_TMP/$1.log")" -ge "$3" ] && return 0
		sleep 0.1
	done
	e2e_log "timeout waiting for $3 lines /$2/ in $1.log"
	return 1
}

client_pid() { pid_of client; }
client_fds() { ls "/proc/$(client_pid)/fd" | wc -l; }

# get_sizes CG NS HOST SEED: 1 KiB, 1 MiB and 16 MiB byte-exact, getpeername = dialed address.
get_sizes() {
	local cg="$1" ns="$2" host="$3" seed="$4" size out
	for size in $SIZES; do
		out=$(in_ctr "$cg" "$ns" $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" get "$host" 80 "$size" \
			"$seed")
		local rc=$?
		e2e_log "  $ns $size: $out"
		[ $rc -eq 0 ] || return 1
		seed=$((seed + 1))
	done
}

# server_saw CG NS: the server's tunnel line names the source container.
server_saw() {
	local want="from cgroup ${CG_APPS#$E2E_CGROOT}/$1 netns $(netns_ino "$2")"
	grep -q -- "$want" "$E2E_TMP/server.log" || { e2e_log "server log lacks '$want'"; return 1; }
	grep -q -- "from cgroup ${CG_APPS#$E2E_CGROOT}/$1 netns $(netns_ino "$2") (cookie [1-9]" \
		"$E2E_TMP/client.log" || { e2e_log "client log lacks the source of $1"; return 1; }
}

start_server() {
	start server rly "$BIN_SERVER" --listen 0.0.0.0:8443 $(tls_args server) --log-format text \
		--log-level debug
}

setup() {
	topo_sites
	ip -n "$NS_web" addr add 192.168.1.6/24 dev vwebsite
	cg_make
	mkdir -p "$E2E_CG/sibling"
	# a bridged container (Docker's default network)
	ns_add cbr
	ip -n "$NS_cli" link add br0 type bridge
	ip -n "$NS_cli" addr add 10.88.0.1/24 dev br0
	ip -n "$NS_cli" link set br0 up
	ip link add vbr netns "$NS_cli" type veth peer name eth0 netns "$NS_cbr"
	ip -n "$NS_cli" link set vbr master br0 up
	ip -n "$NS_cbr" addr add 10.88.0.2/24 dev eth0
	ip -n "$NS_cbr" link set eth0 up
	ip -n "$NS_cbr" route add default via 10.88.0.1
	# a routed pod (Calico): /32, default via a link-local next hop answered by proxy ARP
	ns_add cpod
	ip link add vpod netns "$NS_cli" type veth peer name eth0 netns "$NS_cpod"
	ip -n "$NS_cpod" addr add 10.99.0.5/32 dev eth0
	ip -n "$NS_cpod" link set eth0 up
	ip -n "$NS_cpod" route add 169.254.1.1 dev eth0 scope link
	ip -n "$NS_cpod" route add default via 169.254.1.1 dev eth0
	ip -n "$NS_cli" link set vpod up
	nsenter --net=/run/netns/"$NS_cli" sh -c 'echo 1 > /proc/sys/net/ipv4/conf/vpod/proxy_arp'
	ip -n "$NS_cli" route add 10.99.0.5/32 dev vpod
	# only lo
	ns_add cnone
	ns_add cx
	ns_add cy
	hold cbr cbr
	hold cpod cpod
	hold cnone cnone
	hold cx cx
	hold cy cy
	certs_make || return 1
	write_ctrapp
	start web web $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" serve 80
	start_server
	start proxy site "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-1 \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text
	start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port $PORT --cgroup "$CG_APPS" --instance "t$E2E_ID" --intercept bpf \
		$(tls_args client) --log-format text --log-level debug --metrics 127.0.0.1:9100
	wait_log web listening 10 || return 1
	wait_registered 1 10 || return 1
	wait_log client "connected to server" 10 || return 1
	local ns
	for ns in cbr cpod cnone cx cy; do
		wait_listener $ns 5 || return 1
	done
	# the topology is real: each container's own route to the host
	ip -n "$NS_cbr" route get 10.10.1.1 | grep -q "via 10.88.0.1 dev eth0" || return 1
	ip -n "$NS_cpod" route get 10.10.1.1 | grep -q "via 169.254.1.1 dev eth0" || return 1
}

case_bridged() { get_sizes cbr cbr 100.64.1.5 10 && server_saw cbr cbr; }
case_routed_pod() { get_sizes cpod cpod 100.64.1.6 20 && server_saw cpod cpod; }
case_none() { get_sizes cnone cnone 100.64.1.5 30 && server_saw cnone cnone; }

# Not under --cgroup: never intercepted, neither in a netns of its own (where nothing listens:
# an intercepted connect would be refused, an untouched one finds no route) nor inside a served
# container's netns (where an intercepted connect would succeed).
case_sibling() {
	local out rc=0 n0 n1
	ns_add csib
	n0=$(grep -c " requested from cgroup " "$E2E_TMP/server.log")
	out=$(in_ctr "$E2E_CG/sibling" csib $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" probe 100.64.1.5 80)
	e2e_log "  sibling, own netns: $out"
	[ "$(json_get "$out" outcome)" = ENETUNREACH ] || rc=1
	out=$(in_ctr "$E2E_CG/sibling" cnone $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" probe 100.64.1.5 80)
	e2e_log "  sibling in cnone's netns: $out"
	[ "$(json_get "$out" outcome)" = ENETUNREACH ] || rc=1
	out=$(in_ctr "$E2E_CG/sibling" cbr $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" probe 100.64.1.5 80)
	e2e_log "  sibling in cbr's netns: $out"
	[ "$(json_get "$out" outcome)" != connected ] || rc=1
	sleep 1
	grep -q "ctr: netns $(netns_ino csib) " "$E2E_TMP/client.log" &&
		{ e2e_log "  the client served the sibling's netns"; rc=1; }
	n1=$(grep -c " requested from cgroup " "$E2E_TMP/server.log")
	[ "$n0" = "$n1" ] || { e2e_log "  $((n1 - n0)) tunnels appeared"; rc=1; }
	return $rc
}

# Two containers, same source 127.0.0.1:40001 -> 127.0.0.1:PORT in their own netns, at once.
case_overlap() {
	local size ox oy rc=0
	local sport=40000
	for size in $SIZES; do
		sport=$((sport + 1))
		in_ctr cx cx $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" get 100.64.1.5 80 "$size" 41 $sport 1 \
			>"$E2E_TMP/ox" &
		local px=$!
		in_ctr cy cy $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" get 100.64.1.6 80 "$size" 42 $sport 1 \
			>"$E2E_TMP/oy" &
		local py=$!
		wait $px || rc=1
		wait $py || rc=1
		ox=$(cat "$E2E_TMP/ox")
		oy=$(cat "$E2E_TMP/oy")
		e2e_log "  cx $size: $ox"
		e2e_log "  cy $size: $oy"
		[ "$(json_get "$ox" local)" = 127.0.0.1:$sport ] &&
			[ "$(json_get "$oy" local)" = 127.0.0.1:$sport ] || rc=1
	done
	return $rc
}

# One app holding 2,000 connections open takes nothing from the shared hand-over map (their
# records ride on the sockets), so it cannot fill it for a neighbour, who is served meanwhile.
case_many_open() {
	local out i n rc=0
	rm -f "$E2E_TMP/many.go"
	in_ctr cx cx $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" many 2000 100.64.1.5 80 "$E2E_TMP/many.go" \
		>"$E2E_TMP/many.out" 2>&1 &
	local pid=$!
	for i in $(seq 1 1200); do
		[ -s "$E2E_TMP/many.out" ] && break
		sleep 0.05
	done
	n=$(map_count)
	e2e_log "  one app: $(cat "$E2E_TMP/many.out"); ntun_conn entries meanwhile: $n"
	out=$(in_ctr cy cy $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" get 100.64.1.6 80 $((1024 * 1024)) 61)
	e2e_log "  neighbour meanwhile: $out"
	[ "$(json_get "$out" ok)" = True ] || rc=1
	touch "$E2E_TMP/many.go"
	wait $pid
	[ "$(json_get "$(cat "$E2E_TMP/many.out")" open)" = 2000 ] || rc=1
	[ "$n" = 0 ] || rc=1
	# The 2,000 tunnels close in the background; the next cases time how soon a new
	# container is served, so they start once the daemons have finished with these (a
	# sanitizer build on a loaded machine took over 3 s, and a late container waited).
	for i in $(seq 1 300); do
		[ "$(metric ntun_tunnels_active)" = 0 ] && break
		sleep 0.1
	done
	[ "$(metric ntun_tunnels_active)" = 0 ] || { e2e_log "  tunnels still open: $(metric ntun_tunnels_active)"; rc=1; }
	echo "ntun_conn entries with one app holding 2,000 connections open: $n" \
		>>"$E2E_TMP/measurements"
	return $rc
}

case_direct_refused() {
	local out
	out=$(in_ctr cnone cnone $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" direct $PORT)
	e2e_log "  direct connect to the listener: $out"
	case "$(json_get "$out" outcome)" in
	ECONNRESET | eof) ;;
	*) return 1 ;;
	esac
	wait_log client "netns $(netns_ino cnone)\) has no original destination" 5
}

# A container appears (a process moves into a new child cgroup, in a new netns): connects
# work within 1 s. Five of them; every delay is checked and the median reported.
case_late() {
	local i out d delays=() rc=0
	for i in 1 2 3 4 5; do
		ns_add late$i
		mkdir -p "$CG_APPS/late$i"
		out=$(nsenter --net=/run/netns/late$i$E2E_ID $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" \
			late "$CG_APPS/late$i" 100.64.1.5 80)
		e2e_log "  late$i: $out"
		d=$(json_get "$out" delay)
		[ "$(json_get "$out" ok)" = True ] || { rc=1; continue; }
		$PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 1.0 else 1)' "$d" || rc=1
		delays+=("$d")
		echo "late container $i: first carried connect ${d}s after it appeared;" \
			"before: $(json_get "$out" first_err)" >>"$E2E_TMP/measurements"
	done
	[ ${#delays[@]} -gt 0 ] && echo "late container: median $(printf '%s\n' "${delays[@]}" |
		sort -n | sed -n 3p)s of ${#delays[@]}" >>"$E2E_TMP/measurements"
	return $rc
}

# A process of a populated cgroup moves to a new netns (unshare): no cgroup event tells, the
# periodic scan (500 ms) finds it. Three of them, each within 1 s.
case_unshare() {
	local i out d rc=0
	for i in 1 2 3; do
		out=$(in_ctr cnone cnone unshare -n sh -c 'ip link set lo up && exec "$@"' _ \
			$PY "$CTRAPP" "$NTUN_SRC/tests/e2e" late - 100.64.1.5 80)
		e2e_log "  unshare $i: $out"
		d=$(json_get "$out" delay)
		[ "$(json_get "$out" ok)" = True ] || { rc=1; continue; }
		$PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 1.0 else 1)' "$d" || rc=1
		echo "netns change inside a populated cgroup $i: first carried connect ${d}s later" \
			>>"$E2E_TMP/measurements"
	done
	return $rc
}

# A netns whose processes have all left: its listener is closed (an fd would pin it).
case_listener_closed() {
	local ino pid
	ino=$(netns_ino late1)
	# late1's only process has exited: the listener goes within a scan or two
	wait_log client "ctr: netns $ino .*has left the subtree; listener closed" 3
}

ntun_stat() {
	bpftool -j map dump pinned "/sys/fs/bpf/ntun/t$E2E_ID/ntun_stats" |
		$PY -c 'import json,sys; print(json.load(sys.stdin)[0]["formatted"]["value"][sys.argv[1]])' "$1"
}

map_count() {
	bpftool -j map dump pinned "/sys/fs/bpf/ntun/t$E2E_ID/ntun_conn" |
		$PY -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# 10,000 connections from three containers: carried ones, then, with the server stopped, ones
# the client refuses (reset after accept) and ones the app resets right after connect (its close
# races the hand-over to the daemon's socket): the handshake map ends empty. (Refusals made
# while the server is up would each cost an RST_STREAM, and thousands of them trip the HTTP/2
# library's reset flood guard at the server; that is not what this case is about.)
case_map_drains() {
	local out n i rc=0
	out=$(in_ctr cnone cnone $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" burst 4000 100.64.1.5 80 ok)
	e2e_log "  4000 carried: $out"
	[ "$(json_get "$out" ok)" = 4000 ] || rc=1
	stop server
	wait_log client "connection closed" 10 || rc=1
	out=$(in_ctr cbr cbr $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" burst 3000 100.64.1.5 80 refused)
	e2e_log "  3000 refused by the client (no server): $out"
	[ "$(json_get "$out" ok)" = 3000 ] || rc=1
	out=$(in_ctr cpod cpod $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" burst 3000 100.64.1.5 80 reset)
	e2e_log "  3000 reset by the app: $out"
	[ "$(json_get "$out" ok)" = 3000 ] || rc=1
	start_server
	for i in $(seq 1 50); do
		n=$(map_count)
		[ "$n" = 0 ] && break
		sleep 0.1
	done
	e2e_log "  ntun_conn entries after 10,000 connections: $n; redirected" \
		"$(ntun_stat redirected), track_fail $(ntun_stat track_fail)"
	echo "ntun_conn entries after 10,000 connections: $n" >>"$E2E_TMP/measurements"
	[ "$n" = 0 ] && [ "$(ntun_stat track_fail)" = 0 ] || rc=1
	# The restarted server logs to the same file: its own "proxy registered" is the second.
	wait_count client "connected to server" 2 30 && wait_count server "proxy registered" 2 30 ||
		rc=1
	return $rc
}

metric() {
	in_ns cli curl -sS --max-time 3 http://127.0.0.1:9100/metrics |
		awk -v n="$1" '$1 == n { print $2 }'
}

# 50 containers (own netns, own cgroup) at once, each with a live connection: what one costs
# the client (fds, RSS), all byte-exact; once they are gone every listener is closed again.
case_fifty() {
	local n0 fds0 rss0 fds1 rss1 fds2 i t0 dt rc=0 pids=() peak=0 v
	n0=$(metric ntun_container_namespaces)
	fds0=$(client_fds)
	rss0=$(rss_kib "$(client_pid)")
	t0=$(date +%s%N)
	local holders=()
	for i in $(seq 1 50); do
		ns_add f$i
		hold f$i f$i
		holders+=("$HELD_PID")
	done
	for i in $(seq 1 200); do
		[ "$(metric ntun_container_namespaces)" = $((n0 + 50)) ] && break
		sleep 0.05
	done
	dt=$(( ($(date +%s%N) - t0) / 1000000 ))
	fds1=$(client_fds)
	rss1=$(rss_kib "$(client_pid)")
	e2e_log "  listeners: $(metric ntun_container_namespaces) (had $n0), fds $fds0 -> $fds1," \
		"RSS $rss0 -> $rss1 KiB, all 50 served ${dt} ms after the first was made"
	[ "$(metric ntun_container_namespaces)" = $((n0 + 50)) ] || rc=1
	for i in $(seq 1 50); do
		in_ctr f$i f$i $PY "$CTRAPP" "$NTUN_SRC/tests/e2e" get 100.64.1.$((5 + i % 2)) 80 \
			$((1024 * 1024)) $((500 + i)) 0 8 >"$E2E_TMP/f$i.out" 2>&1 &
		pids+=($!)
	done
	for i in $(seq 1 100); do
		v=$(metric ntun_tunnels_active)
		[ "${v:-0}" -gt $peak ] && peak=$v && fds2=$(client_fds)
		[ "$peak" -ge 50 ] && break
		sleep 0.1
	done
	for i in $(seq 1 50); do
		wait "${pids[$((i - 1))]}" || { rc=1; e2e_log "  f$i: $(cat "$E2E_TMP/f$i.out")"; }
	done
	e2e_log "  live tunnels at once: $peak (fds then: ${fds2:-?})"
	[ "$peak" -ge 50 ] || rc=1
	kill "${holders[@]}"
	for i in $(seq 1 100); do
		[ "$(metric ntun_container_namespaces)" = "$n0" ] && break
		sleep 0.05
	done
	e2e_log "  after the 50 left: listeners $(metric ntun_container_namespaces), fds $(client_fds)"
	[ "$(metric ntun_container_namespaces)" = "$n0" ] || rc=1
	# (+2: a metrics scrape or a reconnect may hold an fd at the moment of counting)
	[ "$(client_fds)" -le $((fds0 + 2)) ] || rc=1
	{
		echo "50 namespaces: all served ${dt} ms after the first was made (making them included);" \
			"client fds +$((fds1 - fds0)) ($(( (fds1 - fds0) / 50 )) per container)," \
			"RSS +$((rss1 - rss0)) KiB ($(( (rss1 - rss0) * 1024 / 50 )) B per container)"
		echo "50 namespaces with a live 1 MiB connection each: $peak tunnels at once," \
			"client fds ${fds2:-?}; all listeners closed after they left"
	} >>"$E2E_TMP/measurements"
	return $rc
}

# iptables mode cannot serve other namespaces: it says so at start.
case_iptables_says_so() {
	ns_add ipt
	start ipt ipt "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port $PORT --instance "t${E2E_ID}i" --intercept iptables \
		$(tls_args client) --log-format text
	wait_log ipt "iptables mode intercepts this network namespace only" 10
	local rc=$?
	stop ipt
	return $rc
}

# --intercept auto where BPF cannot be used (no CAP_BPF/CAP_SYS_ADMIN: loading fails): iptables,
# with one line saying why; an explicit --intercept bpf fails and says why.
case_auto_fallback() {
	local drop="-bpf,-sys_admin,-perfmon" rc=0 out n
	ns_add auto
	start auto auto setpriv --bounding-set=$drop --inh-caps=$drop -- "$BIN_CLIENT" \
		--server 10.10.1.2:8443 --cidr 100.64.0.0/16 --listen-port $PORT --cgroup "$CG_APPS" \
		--instance "t${E2E_ID}a" --intercept auto $(tls_args client) --log-format text
	wait_log auto "intercepting 1 CIDR\(s\) with iptables" 10 || rc=1
	n=$(grep -E ' (warn|error) ' "$E2E_TMP/auto.log" | grep -cE 'BPF|libbpf')
	e2e_log "  auto: $(grep -E 'BPF unavailable' "$E2E_TMP/auto.log")"
	[ "$n" = 1 ] || { e2e_log "  $n warning/error lines about BPF, want 1"; rc=1; }
	grep -q "BPF unavailable (loading BPF programs: Operation not permitted); falling back" \
		"$E2E_TMP/auto.log" || rc=1
	kill -0 "$(pid_of auto)" || rc=1
	stop auto
	out=$(in_ns auto timeout 20 setpriv --bounding-set=$drop --inh-caps=$drop -- "$BIN_CLIENT" \
		--server 10.10.1.2:8443 --cidr 100.64.0.0/16 --listen-port $PORT \
		--cgroup "$CG_APPS" --instance "t${E2E_ID}b" --intercept bpf $(tls_args client) \
		--log-format text 2>&1)
	local st=$?
	e2e_log "  bpf (exit $st): $(echo "$out" | grep -E ' (warn|error) ')"
	# (libbpf's own lines may come first: with an explicit bpf they help)
	[ $st -ne 0 ] && [ $st -ne 124 ] || rc=1
	echo "$out" | grep -q "error client: redirect: BPF interception unavailable: loading BPF" ||
		rc=1
	# It had its admin socket up when it gave up: the file goes with it.
	check "the client that gave up left no admin socket behind" \
		[ ! -e "/run/ntun/client-t${E2E_ID}b.sock" ] || rc=1
	return $rc
}

run_case "setup: daemons up, five containers served" setup || exit 1
run_case "bridged container: 1 KiB, 1 MiB, 16 MiB byte-exact, source named" case_bridged
run_case "routed pod: 1 KiB, 1 MiB, 16 MiB byte-exact, source named" case_routed_pod
run_case "container with only lo: 1 KiB, 1 MiB, 16 MiB byte-exact" case_none
run_case "sibling cgroup: never intercepted" case_sibling
run_case "same source address and port in two namespaces at once: no mix-up" case_overlap
run_case "one app holding 2,000 connections leaves the shared map empty" case_many_open
run_case "a direct connect to a container's listener is refused" case_direct_refused
run_case "a container appearing later is served within 1 s" case_late
run_case "a netns that left the subtree loses its listener" case_listener_closed
run_case "a process that moves to a new netns is served within 1 s" case_unshare
run_case "ntun_conn back to 0 after 10,000 connections incl. refused" case_map_drains
run_case "50 containers at once, each with a live connection" case_fifty
run_case "iptables mode says it serves only its own netns" case_iptables_says_so
run_case "--intercept auto falls back to iptables in one line; bpf fails" case_auto_fallback
[ -f "$E2E_TMP/measurements" ] && cat "$E2E_TMP/measurements"
e2e_summary
