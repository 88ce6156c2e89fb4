#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Chaos with nothing lost. While apps (traffic.py load, in the client's intercepted cgroup)
# run hash-checked transfers of varied sizes in both directions (GET, PUT and HALF with a
# half-close, ECHO both ways at once) to two destinations behind two proxies, faults are
# injected one after another, round-robin:
#   kill9-client kill9-server kill9-proxy-a kill9-proxy-b   kill -9, restart after a pause
#   stop-proxy-b                 SIGSTOP longer than the server's ping timeout, then SIGCONT
#   flap-cli-rly flap-rly-s1 flap-s2-w2   ip link set down, up again (client, proxy and
#                                destination links), for 0.5-1.2 s or for 3.5-5 s
#   loss-reorder                 1% of the relay's packets dropped (iptables -m statistic) and
#                                1% of those it sends held in a slow htb class (iptables
#                                CLASSIFY -m statistic), so that later packets overtake them
#   drain-server                 SIGTERM (drain), restart once it exited
# Checked:
#   every transfer ended byte-exact (SHA-256 both ways, clean EOF) or with an error the app
#   saw; none silently truncated (EOF short, a wrong hash, a destination that saw a plain EOF
#   short of the announced upload) and none hung: no progress for STALL s or past DEADLINE s,
#   both derived from the daemons' timeouts below;
#   after each fault ends (restart issued, a restarted server listening, SIGCONT, link up,
#   rules removed) a new connection to each destination succeeds (hash-checked) within 2 s:
#   recovery times are recorded;
#   afterwards, with the tunnels closed and a settle time, every daemon's open fds equal its
#   starting count, the client's pinned BPF maps hold as many entries as at the start, and RSS
#   is within 8 MiB of the start (normal build; the sanitizer build's allocator holds freed
#   memory in quarantine, so there LeakSanitizer at exit is the check instead).
#
# Usage: run.sh [--short | --long | SECONDS]   (default --short: one round of every fault;
# --long: 1500 s). CHAOS_SCALE (default 1, 3 for the sanitizer build) stretches the waits;
# transfers are 4x smaller in the sanitizer build. Logs stay in the printed directory on failure
# (E2E_KEEP=1 keeps them always).
#
#   ns cli: apps, ntun-client ── ns rly: ntun-server ──┬── ns s1: proxy-a ── ns w1 (dest)
#                                                      └── ns s2: proxy-b ── ns w2 (dest)
#   100.64.1.0/24 -> proxy-a 192.168.1.0/24, 100.64.2.0/24 -> proxy-b 192.168.1.0/24
. "$(dirname "$0")/../e2e/lib.sh"

DURATION=0 # 0: one round
case "${1:---short}" in
--short) DURATION=0 ;;
--long) DURATION=1500 ;;
[0-9]*) DURATION=$1 ;;
*) echo "usage: $0 [--short | --long | SECONDS]" >&2; exit 2 ;;
esac
SAN=${E2E_SANITIZED:-0}
[ "$SAN" = 1 ] || [ "$SAN" = ON ] || [ "$SAN" = TRUE ] && SAN=1 || SAN=0
SCALE=${CHAOS_SCALE:-$([ $SAN = 1 ] && echo 3 || echo 1)}
SMALL=$([ $SAN = 1 ] && echo 4 || echo 0)
TRAFFIC="$NTUN_SRC/tests/chaos/traffic.py"
DSTS=100.64.1.5,100.64.2.5

# The daemons' timeouts, and the apps' limits derived from them: a tunnel whose peer died is
# reset within PING_IV + PING_TO (every daemon pings every hop), one that stalls otherwise
# within IDLE; a Dial is retried or failed within DIAL. STALL adds a margin for a loaded
# machine; DEADLINE bounds a whole transfer (8 MiB at 1% loss takes a few seconds).
PING_IV=1 PING_TO=2 IDLE=10 DIAL=1 DRAIN=2
STALL=$((IDLE + PING_IV + PING_TO + DIAL + 6 * SCALE))
DEADLINE=$((STALL * 3))
# New connections must work within 2 s of a fault's end; the sanitizer build's daemons start
# and move bytes several times slower, so there the bound is scaled too.
RECOVERY_MAX=${CHAOS_RECOVERY_MAX:-$((2 * SCALE)).0}

e2e_init
INST="t$E2E_ID"
PIN="/sys/fs/bpf/ntun/$INST"
FAULTS="$E2E_TMP/faults.jsonl"
LOAD="$E2E_TMP/load.jsonl"
STOPFILE="$E2E_TMP/stop"
now() { echo "$EPOCHREALTIME"; }

start_daemon() {
	local m
	m=$(mark "$1")
	case $1 in
	server) start server rly "$BIN_SERVER" --config "$E2E_TMP/server.yaml" ;;
	proxya) start proxya s1 "$BIN_PROXY" --server 10.10.2.2:8443 --proxy-id proxy-a \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.1.0/24 $(tls_args proxy) \
		--log-format text $TIMEOUT_FLAGS ;;
	proxyb) start proxyb s2 "$BIN_PROXY" --server 10.10.3.2:8443 --proxy-id proxy-b \
		--managed-cidr 192.168.1.0/24 --virtual-cidr 100.64.2.0/24 $(tls_args proxy-b) \
		--log-format text $TIMEOUT_FLAGS ;;
	client) start client cli "$BIN_CLIENT" --server 10.10.1.2:8443 --cidr 100.64.0.0/16 \
		--listen-port 15001 --cgroup "$CG_APPS" --instance "$INST" --intercept bpf \
		$(tls_args client) --log-format text $TIMEOUT_FLAGS ;;
	esac
	echo "$m"
}

TIMEOUT_FLAGS="--ping-interval ${PING_IV}s --ping-timeout ${PING_TO}s --idle-timeout ${IDLE}s --drain-timeout ${DRAIN}s"

setup() {
	topo_two_sites
	cg_make
	certs_two_sites || return 1
	cat >"$E2E_TMP/server.yaml" <<EOC
listen_addr: 0.0.0.0:8443
tls: {cert_file: $CERTS/server/cert.pem, key_file: $CERTS/server/key.pem, ca_file: $CERTS/ca/cert.pem}
log: {format: text}
timeouts: {ping_interval_ms: ${PING_IV}s, ping_timeout_ms: ${PING_TO}s, dial_ms: ${DIAL}s, drain_ms: ${DRAIN}s, idle_ms: ${IDLE}s}
proxies:
  - {id: proxy-a, prefixes: 100.64.1.0/24}
  - {id: proxy-b, prefixes: 100.64.2.0/24}
EOC
	start dest1 w1 $PY "$TRAFFIC" serve --port 80 --log "$E2E_TMP/dest1.jsonl" --stall "$STALL"
	start dest2 w2 $PY "$TRAFFIC" serve --port 80 --log "$E2E_TMP/dest2.jsonl" --stall "$STALL"
	start_daemon server >/dev/null
	start_daemon proxya >/dev/null
	start_daemon proxyb >/dev/null
	start_daemon client >/dev/null
	wait_log dest1 listening 10 && wait_log dest2 listening 10 &&
		wait_log proxya "registered" 20 && wait_log proxyb "registered" 20 &&
		wait_log client "connected to server" 20 || return 1
	probe >/dev/null
}

# probe_arm: starts a prober (an app in cli) that waits for probe_fire; probe_fire: lets it go
# and prints the wall-clock time its hash-checked GET to each destination had succeeded
# ("None" if not within 30 s). Armed before a fault ends, so its start-up is not counted.
PROBES=0
probe_arm() {
	PROBES=$((PROBES + 1))
	rm -f "$E2E_TMP/go.$PROBES"
	app_start "probe.$PROBES" cli $PY "$TRAFFIC" probe --hosts "$DSTS" --port 80 \
		--give-up 30 --go "$E2E_TMP/go.$PROBES" --stall $((3 * SCALE))
	wait_log "probe.$PROBES" ready 30 >/dev/null
}
probe_fire() {
	local out
	touch "$E2E_TMP/go.$PROBES"
	wait_log "probe.$PROBES" '"ok"' 40 >/dev/null
	wait "$(pid_of "probe.$PROBES")" 2>/dev/null
	out=$(grep '"ok"' "$E2E_TMP/probe.$PROBES.log")
	json_get "$out" ok
	[ "$(json_get "$out" bad)" = None ] || e2e_log "probe: $out"
}
probe() { probe_arm && probe_fire; }

# ---- leak figures ----
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
map_entries() {
	local m n out=""
	for m in "$PIN"/ntun_*; do
		[ -e "$m" ] || continue
		n=$(bpftool -j map dump pinned "$m" 2>/dev/null |
			$PY -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except Exception: print("-")')
		out+="$(basename "$m")=$n "
	done
	echo "${out% }"
}
snapshot() { # NAME: fds and RSS of every daemon, entries of the client's maps
	local d
	for d in client server proxya proxyb; do
		echo "$1 $d fds=$(fds "$(pid_of $d)") rss=$(rss_kib "$(pid_of $d)")"
	done >>"$E2E_TMP/snapshots"
	echo "$1 maps $(map_entries)" >>"$E2E_TMP/snapshots"
}

# ---- faults ----
fault_log() { # KIND T_START T_END RECOVERED_AT [NOTE]
	printf '{"kind":"%s","start":%s,"end":%s,"ok":%s,"note":"%s"}\n' "$1" "$2" "$3" \
		"$([ "$4" = None ] && echo null || echo "$4")" "${5:-}" >>"$FAULTS"
}

wait_gone() { # PID: waits for a daemon that was signalled (30 s at most)
	local i
	for i in $(seq 1 300); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1" 2>/dev/null
}

# restart NAME: starts the daemon again; the fault ends then, for a server once it listens (its
# start-up on a loaded machine is not what the recovery bound is about: the peers' redial is,
# at most 1 s apart while they are failing).
restart() {
	local m
	m=$(mark "$1")
	start_daemon "$1" >/dev/null
	[ "$1" != server ] || since server "$m" "listening on" 30 >/dev/null
}

kill9() { # NAME
	local pid t0 t1
	pid=$(pid_of "$1")
	t0=$(now)
	kill -KILL "$pid"
	wait_gone "$pid"
	probe_arm
	pause 0.5 1.5
	sleep "$PAUSE"
	restart "$1"
	t1=$(now)
	fault_log "kill9-$1" "$t0" "$t1" "$(probe_fire)"
}

drain_server() {
	local pid t0 t1 rc
	pid=$(pid_of server)
	t0=$(now)
	kill -TERM "$pid"
	wait_gone "$pid"
	rc=$?
	probe_arm
	restart server
	t1=$(now)
	fault_log drain-server "$t0" "$t1" "$(probe_fire)" "exit $rc"
}

stop_cont() { # NAME
	local pid t0 t1
	pid=$(pid_of "$1")
	t0=$(now)
	kill -STOP "$pid"
	probe_arm
	pause $((PING_IV + PING_TO + 1)) $((PING_IV + PING_TO + 3))
	sleep "$PAUSE"
	kill -CONT "$pid"
	t1=$(now)
	fault_log "stop-$1" "$t0" "$t1" "$(probe_fire)"
}

flap() { # NS IFACE
	local t0 t1
	t0=$(now)
	ip -n "$1$E2E_ID" link set "$2" down
	probe_arm
	# Short outages (TCP retransmits through them) or long ones (the connections are declared
	# dead by PING, PING_IV + PING_TO = 3 s after the last byte, and redialled). In between,
	# 1.4-3 s, what ends the outage for a connection is its next retransmission (doubling from
	# 200 ms: at 1.4 s, then 3 s) or the PING timeout, up to 1.6 s after the link is back, with
	# the redial after that: TCP's schedule, not ours, so the 2 s bound is not applied to it.
	if [ $((RANDOM % 2)) = 0 ]; then pause 0.5 1.2; else pause 3.5 5; fi
	sleep "$PAUSE"
	ip -n "$1$E2E_ID" link set "$2" up
	t1=$(now)
	fault_log "flap-$2" "$t0" "$t1" "$(probe_fire)"
}

REORDER_DEVS="vrlycli vrlys1 vrlys2"
loss_reorder() {
	local t0 t1 d ns="$NS_rly"
	t0=$(now)
	for d in $REORDER_DEVS; do
		ip netns exec "$ns" tc qdisc add dev "$d" root handle 1: htb default 1
		ip netns exec "$ns" tc class add dev "$d" parent 1: classid 1:1 htb rate 10gbit quantum 60000
		ip netns exec "$ns" tc class add dev "$d" parent 1: classid 1:2 htb rate 4mbit ceil 4mbit
		ip netns exec "$ns" tc qdisc add dev "$d" parent 1:2 handle 20: pfifo limit 50
	done
	ip netns exec "$ns" iptables -w 5 -A INPUT -m statistic --mode random --probability 0.01 -j DROP
	ip netns exec "$ns" iptables -w 5 -A OUTPUT -m statistic --mode random --probability 0.01 -j DROP
	ip netns exec "$ns" iptables -w 5 -t mangle -A POSTROUTING -m statistic --mode random \
		--probability 0.01 -j CLASSIFY --set-class 1:2
	pause $((5 * SCALE)) $((10 * SCALE))
	sleep "$PAUSE"
	probe_arm
	for d in $REORDER_DEVS; do
		ip netns exec "$ns" tc -s class show dev "$d" classid 1:2 |
			awk -v d="$d" '/Sent/ { print d, "slow class:", $2, "bytes", $4, "packets" }' \
				>>"$E2E_TMP/reorder"
	done
	ip netns exec "$ns" iptables -w 5 -F
	ip netns exec "$ns" iptables -w 5 -t mangle -F
	for d in $REORDER_DEVS; do
		ip netns exec "$ns" tc qdisc del dev "$d" root
	done
	t1=$(now)
	fault_log loss-reorder "$t0" "$t1" "$(probe_fire)"
}

# pause MIN MAX: PAUSE, a random duration in seconds (bash's RANDOM, seeded in chaos).
pause() {
	local r=$RANDOM
	PAUSE=$(awk -v a="$1" -v b="$2" -v r="$r" 'BEGIN { printf "%.2f", a + (b - a) * r / 32767 }')
}

FAULT_KINDS=(kill9:client flap:cli:vclirly kill9:server stop:proxyb flap:rly:vrlys1
	kill9:proxya loss drain flap:s2:vs2w2 kill9:proxyb)

inject() {
	local f="$1"
	case $f in
	kill9:*) kill9 "${f#kill9:}" ;;
	stop:*) stop_cont "${f#stop:}" ;;
	flap:*) f=${f#flap:}; flap "${f%%:*}" "${f#*:}" ;;
	loss) loss_reorder ;;
	drain) drain_server ;;
	esac
}

reorder_counters() { # NS: the kernel's reordering/out-of-order counters in NS
	ip netns exec "$1$E2E_ID" nstat -az TcpExtTCPSACKReorder TcpExtTCPTSReorder \
		TcpExtTCPRenoReorder TcpExtTCPOFOQueue 2>/dev/null |
		awk 'NR > 1 { printf "%s=%s ", $1, $2 }'
}

chaos() {
	local t_end i=0 rc
	RANDOM=${CHAOS_SEED:-$E2E_ID}
	e2e_log "  CHAOS_SEED=${CHAOS_SEED:-$E2E_ID}, STALL ${STALL}s, DEADLINE ${DEADLINE}s"
	rm -f "$STOPFILE"
	app_start load cli $PY "$TRAFFIC" load --hosts "$DSTS" --port 80 --workers 6 \
		--seed "${CHAOS_SEED:-$E2E_ID}" --stall "$STALL" --deadline "$DEADLINE" \
		--small "$SMALL" --stopfile "$STOPFILE" --out "$LOAD"
	wait_log load started 30 || return 1
	sleep $((3 * SCALE))
	t_end=$(($(date +%s) + DURATION))
	while :; do
		inject "${FAULT_KINDS[i % ${#FAULT_KINDS[@]}]}"
		i=$((i + 1))
		sleep $((2 * SCALE))
		if [ "$DURATION" = 0 ]; then
			[ $i -ge ${#FAULT_KINDS[@]} ] && break
		elif [ "$(date +%s)" -ge "$t_end" ]; then
			break
		fi
	done
	touch "$STOPFILE"
	wait_log load '^done' $((DEADLINE + 30)) || return 1
	for ns in cli rly s1 s2; do
		echo "$ns $(reorder_counters $ns)" >>"$E2E_TMP/reorder"
	done
}

# Leak figures settle once the tunnels are closed: fds must come back to the start exactly
# (polled for up to 20 s: a drained connection may take DRAIN s to go), map entries too.
settle_equal() {
	local i ok d
	for i in $(seq 1 20); do
		ok=1
		for d in client server proxya proxyb; do
			[ "$(fds "$(pid_of $d)")" = "${FD0[$d]}" ] || ok=0
		done
		[ "$(map_entries)" = "$MAP0" ] || ok=0
		[ $ok = 1 ] && return 0
		sleep 1
	done
	return 1
}

declare -A FD0 RSS0
baseline() {
	local d i
	# Warm-up: the allocators reach their working size under the same load, without faults.
	rm -f "$STOPFILE"
	app_start warm cli $PY "$TRAFFIC" load --hosts "$DSTS" --port 80 --workers 6 --seed 7 \
		--stall "$STALL" --deadline "$DEADLINE" --small "$SMALL" --stopfile "$STOPFILE" \
		--out "$E2E_TMP/warm.jsonl"
	wait_log warm started 30 || return 1
	sleep $((5 * SCALE))
	touch "$STOPFILE"
	wait_log warm '^done' $((DEADLINE + 30)) || return 1
	# The warm-up's last tunnels are closed: every daemon's fds and the map entries stay the
	# same over a second (3 s at least, 30 at most).
	local snap prev=
	sleep 2
	for i in $(seq 1 30); do
		sleep 1
		snap="$(for d in client server proxya proxyb; do fds "$(pid_of $d)"; done) $(map_entries)"
		[ "$snap" = "$prev" ] && break
		prev=$snap
	done
	for d in client server proxya proxyb; do
		FD0[$d]=$(fds "$(pid_of $d)")
		RSS0[$d]=$(rss_kib "$(pid_of $d)")
	done
	MAP0=$(map_entries)
	snapshot start
	e2e_log "  start: fds client ${FD0[client]} server ${FD0[server]} proxy-a ${FD0[proxya]} proxy-b ${FD0[proxyb]}; maps $MAP0"
	check "warm-up transfers all whole" $PY -c 'import json,sys
rs = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rs if r["outcome"] != "ok"]
print(f"  warm-up: {len(rs)} transfers, {len(bad)} not ok {bad[:3]}", file=sys.stderr)
sys.exit(bool(bad) or not rs)' "$E2E_TMP/warm.jsonl"
}

leaks() {
	local d ok=0 rss lim
	settle_equal || ok=1
	snapshot end
	for d in client server proxya proxyb; do
		rss=$(rss_kib "$(pid_of $d)")
		# RSS margin: 8 MiB over the warmed-up start. glibc keeps freed blocks in its arenas
		# and trims lazily, so RSS is the high-water mark of what the busiest moment held:
		# six concurrent transfers' read buffers (256 KiB each) and HTTP/2 windows. The same
		# daemon measured 8.2 to 15.5 MiB after the same warm-up in different runs, and a
		# restarted daemon may have met a busier moment than the first one did. A leak of
		# 10 KiB per transfer over the short form's ~1500 transfers (15 MiB) exceeds it.
		lim=$((RSS0[$d] + 8192))
		e2e_log "  $d: fds ${FD0[$d]} -> $(fds "$(pid_of $d)"), rss ${RSS0[$d]} -> $rss KiB (limit $lim)"
		echo "leak $d fds ${FD0[$d]} $(fds "$(pid_of $d)") rss ${RSS0[$d]} $rss $lim" >>"$E2E_TMP/leaks"
		[ "$(fds "$(pid_of $d)")" = "${FD0[$d]}" ] || { e2e_log "  $d: fds differ"; ok=1; }
		if [ $SAN = 0 ] && [ "$rss" -gt "$lim" ]; then
			e2e_log "  $d: RSS over the margin"
			ok=1
		fi
	done
	e2e_log "  maps: start $MAP0, end $(map_entries)"
	echo "leak maps $MAP0 -> $(map_entries)" >>"$E2E_TMP/leaks"
	[ "$(map_entries)" = "$MAP0" ] || { e2e_log "  map entries differ"; ok=1; }
	return $ok
}

# A clean stop of the survivors: exit 0, and no sanitizer report in any daemon's log.
clean_exit() {
	local d rc ok=0
	for d in client proxya proxyb server; do
		kill -TERM "$(pid_of $d)"
		wait_gone "$(pid_of $d)"
		rc=$?
		[ $rc = 0 ] || { e2e_log "  $d exited $rc"; ok=1; }
	done
	if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" \
		"$E2E_TMP"/{client,server,proxya,proxyb}.log >&2; then
		ok=1
	fi
	return $ok
}

report() {
	$PY "$NTUN_SRC/tests/chaos/report.py" --load "$LOAD" --faults "$FAULTS" \
		--dest "$E2E_TMP/dest1.jsonl" --dest "$E2E_TMP/dest2.jsonl" \
		--recovery-max "$RECOVERY_MAX" --reorder "$E2E_TMP/reorder" --leaks "$E2E_TMP/leaks"
}

run_case "setup: relay, two proxies, client, two destinations" setup || exit 1
run_case "baseline after a warm-up without faults" baseline || exit 1
run_case "chaos ($([ "$DURATION" = 0 ] && echo "one round" || echo "${DURATION} s"))" chaos
run_case "leaks: fds, map entries and RSS back after settling" leaks
run_case "report: nothing lost, nothing hung, recovery within ${RECOVERY_MAX} s" report
run_case "clean exit of the survivors" clean_exit
e2e_summary
