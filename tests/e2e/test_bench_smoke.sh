#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmark's smoke run: tools/bench --smoke builds every path (direct, stunnel chain,
# ssh -L, ntun with BPF interception, ntun with the iptables fallback) in its own namespaces,
# runs every figure for a second or two, and this checks that each one ran end to end and that
# every transfer was exact. Never a timed pass/fail: no number is compared with a threshold here.
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
out=$(mktemp -d /tmp/ntun-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
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
env -u NTUN_BUILD -u NTUN_SRC "$top/tools/bench" --smoke --build "$build" --out "$out" \
	>"$out/bench.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 40 "$out/bench.log"
result $rc "tools/bench --smoke exits 0 (every measurement complete and exact)"

/usr/bin/python3 - "$out/smoke.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
raw, bad = doc["raw"], 0
want = {(p, f) for p in ("direct", "stunnel", "ssh", "ntun", "ntunipt")
        for f in ("bulk1", "bulk8", "rr50", "lat1", "hold")}
have = {(r["path"], r["fig"]) for r in raw}
for p, f in sorted(want - have):
    print(f"missing: {p} {f}")
    bad = 1
for r in raw:
    res = r["result"]
    ok = res.get("ok") == 1
    if r["fig"].startswith("bulk"):
        ok = ok and res.get("bytes") == res.get("want") and not res.get("errors")
    elif r["fig"] in ("rr50", "lat1"):
        ok = ok and res.get("errors") == 0 and res.get("conns", 0) > 0
    elif r["fig"] == "hold":
        ok = (ok and res.get("verified") == r.get("conns") and r["held"].get("held") == r.get("conns")
              and all(res.get(k) == 0 for k in ("f_connect", "f_reset", "f_eof", "f_bad",
                                                "f_timeout", "f_dropped")))
    elif not r["fig"].startswith("tool_"):
        print(f"unknown figure: {r['fig']}")
        ok = False
    # tool_*: the packaged load tools on the direct path, exact when "ok" is 1.
    if not ok:
        print(f"not exact: {r['path']} {r['fig']} run {r['run']}: {json.dumps(res)}")
        bad = 1
    # Relay CPU is read for every relay daemon of the path.
    if r["path"] != "direct" and r["fig"] != "hold" and not r.get("cpu_s"):
        print(f"no relay CPU figures: {r['path']} {r['fig']}")
        bad = 1
    # The whole machine's busy and idle time is read around every traffic figure.
    m = r.get("machine") or {}
    if r["fig"] in ("bulk1", "bulk8", "rr50", "lat1") and not (
            m.get("busy_s", 0) > 0 and m.get("idle_s", -1) >= 0):
        print(f"no machine CPU figures: {r['path']} {r['fig']}")
        bad = 1
    if r["fig"] == "hold" and r["path"] != "direct" and not r.get("mem_kib"):
        print(f"no memory figures: {r['path']}")
        bad = 1
for key in ("machine_s_per_gib_1", "machine_busy_pct_1"):
    for p in ("direct", "stunnel", "ssh", "ntun", "ntunipt"):
        v = doc["figures"].get(key, {}).get(p, {}).get("median")
        if v is None or v <= 0 or (key == "machine_busy_pct_1" and v > 100):
            print(f"{key} missing or out of range for {p}: {v}")
            bad = 1
print(f"{len(raw)} measurements checked")
sys.exit(bad)
EOF
result $? "every path ran every figure; every byte and every echo exact; CPU (relays and machine) and memory read"

grep -q '^## Issue 3 targets for ntun' "$out/smoke.md"
result $? "Markdown report written with the targets table"

echo "== $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
