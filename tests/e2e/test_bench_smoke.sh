#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmark's smoke run: tools/bench --smoke builds every path (direct, stunnel chain,
# HAProxy chain, ssh -L, sshuttle, each like-for-like and with its defaults, ntun with BPF
# interception, ntun with the iptables fallback; in the sanitizer build direct and ntun only)
# in its own namespaces, runs every figure for a second or two (figure 9 with one ntun-server
# and with two), and this checks that each one ran end to end, that every transfer was exact,
# and that every hop's negotiated suite was seen on the wire. Never a timed pass/fail: no number
# is compared with a threshold here.
#
#   ns ?app (apps in a child cgroup) -- ns ?rly -- ns ?site -- ns ?srv 192.168.1.5:5201
#   (topology and cleanup: tools/bench, through lib.sh)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${NTUN_BUILD:-$top/build}
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the benchmark needs root"
	exit 77
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/ntun-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT
# Every path in the normal build. In the sanitizer build only the paths that run our binaries
# (direct runs the load generator alone): the baselines are the same packaged tools in both
# builds, and the normal build's run has already checked them.
paths=direct,stunnel,stunnel-def,haproxy,haproxy-def,ssh,ssh-def,sshuttle,sshuttle-def,ntun,ntunipt
if grep -q '^NTUN_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	paths=direct,ntun,ntunipt
	echo "sanitizer build: paths $paths (the baselines ran in the normal build)"
fi
pass=0 fail=0
result() {
	if [ "$1" = 0 ]; then
		echo "PASS: $2"
		pass=$((pass + 1))
	else
		echo "FAIL: $2"
		fail=$((fail + 1))
	fi
}

# lib.sh's variables must not leak in from a calling test: the bench sources it afresh.
env -u NTUN_BUILD -u NTUN_SRC "$top/tools/bench" --smoke --build "$build" --paths "$paths" --out "$out" \
	>"$out/bench.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 40 "$out/bench.log"
result $rc "tools/bench --smoke exits 0 (every measurement complete and exact)"

/usr/bin/python3 - "$out/smoke.json" "$paths" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
raw, bad = doc["raw"], 0
busy_paths = set()
PATHS = tuple(sys.argv[2].split(","))
TRAFFIC = ("bulk1", "bulk8", "rr50", "lat1", "iload", "flows")
want = {(p, f) for p in PATHS for f in TRAFFIC + ("hold", "churn")}
have = {(r["path"], r["fig"]) for r in raw}
for p, f in sorted(want - have):
    print(f"missing: {p} {f}")
    bad = 1
# Figure 9: each of its two figures with one ntun-server and with two.
have9 = {(r["fig"], r.get("relays")) for r in raw if r["path"] == "relays"}
for f, n in sorted({(f, n) for f in ("relays_bulk8", "relays_rr50") for n in (1, 2)} - have9):
    print(f"missing: figure 9 {f} with {n} relay(s)")
    bad = 1
for r in raw:
    res = r["result"]
    ok = res.get("ok") == 1
    if r["fig"].startswith("bulk"):
        ok = ok and res.get("bytes") == res.get("want") and not res.get("errors")
    elif r["fig"] in ("rr50", "lat1", "churn"):
        ok = ok and res.get("errors") == 0 and res.get("conns", 0) > 0
        if r["fig"] == "churn" and r["path"] != "direct":
            ok = ok and all(set(v) == {"rss0", "fds0", "rss1", "fds1", "rss2", "fds2"}
                            for v in r.get("daemons", {}).values()) and r.get("daemons")
    elif r["fig"] == "iload":
        ok = ok and all(res.get(k, {}).get("ok") == 1 for k in ("new0", "open0", "new1", "open1",
                                                                 "bulk"))
        ok = ok and all(res[k].get("errors") == 0 for k in ("new0", "open0", "new1", "open1"))
    elif r["fig"] == "flows":
        ok = ok and res.get("errors") == 0 and res.get("open") == res.get("flows") > 0 and \
            res.get("jain", 0) > 0
    elif r["fig"] == "hold":
        ok = (ok and res.get("verified") == r.get("conns") and r["held"].get("held") == r.get("conns")
              and all(res.get(k) == 0 for k in ("f_connect", "f_reset", "f_eof", "f_bad",
                                                "f_timeout", "f_dropped")))
    elif r["fig"] in ("relays_bulk8", "relays_rr50"):
        # Two client hosts, each part exact (with two relays the second host's client knows
        # only the second server: its part crossed that one); relay and machine CPU read.
        parts = res.get("parts") or []
        m = r.get("machine") or {}
        ok = ok and len(parts) == 2 and sum((r.get("cpu_s") or {}).values()) > 0 and \
            m.get("wall_s", 0) > 0 and m.get("busy_s", -1) >= 0
        if r["fig"] == "relays_bulk8":
            ok = ok and all(x.get("bytes") == x.get("want") and not x.get("errors") for x in parts)
        else:
            ok = ok and all(x.get("errors") == 0 and x.get("conns", 0) > 0 for x in parts)
    elif not r["fig"].startswith("tool_"):
        print(f"unknown figure: {r['fig']}")
        ok = False
    # tool_*: the packaged load tools on the direct path, exact when "ok" is 1.
    if not ok:
        print(f"not exact: {r['path']} {r['fig']} run {r['run']}: {json.dumps(res)}")
        bad = 1
    # Relay CPU is read for every relay daemon of the path.
    if r["path"] != "direct" and r["fig"] in TRAFFIC and not r.get("cpu_s"):
        print(f"no relay CPU figures: {r['path']} {r['fig']}")
        bad = 1
    # The whole machine's busy and idle time is read around every traffic figure. Busy time
    # comes in ticks: a figure whose processes used a few hundredths of a CPU second (ssh -L's
    # one-at-a-time loop: 0 to 4 ticks in a second) may see none on an idle machine, so busy
    # time must be there only where the figure's own processes were seen to use 0.2 s or more
    # (relays from /proc/PID/stat, the load generator from its getrusage).
    if r["fig"] in TRAFFIC:
        m = r.get("machine") or {}
        own = sum((r.get("cpu_s") or {}).values()) + r.get("srv_cpu_s", 0) + \
            sum(v.get("cpu_self_s", 0) for v in ([res] + [x for x in res.values()
                                                          if isinstance(x, dict)]))
        if not (m.get("busy_s", -1) >= 0 and m.get("idle_s", -1) >= 0 and m.get("wall_s", 0) > 0):
            print(f"no machine CPU figures: {r['path']} {r['fig']}: {m}")
            bad = 1
        elif own >= 0.2 and m["busy_s"] <= 0:
            print(f"machine busy 0 while its processes used {own:.2f} s: {r['path']} {r['fig']}")
            bad = 1
        if m.get("busy_s", 0) > 0:
            busy_paths.add(r["path"])
    if r["fig"] == "hold" and r["path"] != "direct" and not r.get("mem_kib"):
        print(f"no memory figures: {r['path']}")
        bad = 1
# A bench that measures no machine time at all is broken, whatever the lengths.
for p in sorted(set(PATHS) - busy_paths):
    print(f"no machine busy time in any figure of {p}")
    bad = 1
for key in ("machine_s_per_gib_1", "machine_busy_pct_1", "machine_ms_per_conn",
            "machine_busy_pct_rr50"):
    for p in PATHS:
        v = doc["figures"].get(key, {}).get(p, {}).get("median")
        if v is not None and (v <= 0 or (key.startswith("machine_busy_pct") and v > 100)):
            print(f"{key} out of range for {p}: {v}")
            bad = 1
# Every hop of every tunnel: the suite seen on the wire. Like-for-like rows run ntun's.
seen = doc["meta"]["seen"]
for p in PATHS:
    hops = {"direct": 0, "ssh": 1, "ssh-def": 1, "sshuttle": 1, "sshuttle-def": 1}.get(p, 2)
    got = seen.get(p, "")
    if p != "direct" and got.count(" to ") != hops:
        print(f"negotiated suites of {p}: {hops} hop(s) wanted, seen: {got!r}")
        bad = 1
    if p in ("stunnel", "haproxy", "ntun", "ntunipt") and \
            got.count("TLSv1.3 TLS_AES_128_GCM_SHA256") != 2:
        print(f"{p} is not like-for-like: {got!r}")
        bad = 1
    if p in ("ssh", "sshuttle") and "aes128-gcm@openssh.com" not in got:
        print(f"{p} is not like-for-like: {got!r}")
        bad = 1
print(f"{len(raw)} measurements checked")
sys.exit(bad)
EOF
result $? "every path ran every figure; every byte and every echo exact; CPU (relays and machine) and memory read"

grep -q '^## Issue 16 targets for ntun' "$out/smoke.md"
result $? "Markdown report written with the targets table"

echo "== $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
