#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# tools/bench's report: medians, spreads and ratios from the raw per-run records, as Markdown
# and JSON, plus issue 16's targets for ntun, judged on the like-for-like rows (every TLS path on
# the suite ntun negotiates); the -def rows are each tool with its defaults. Only runs whose
# every byte was exact count; failed runs are listed, never averaged in.
import argparse, json, statistics, sys

PATHS = ["direct", "stunnel", "stunnel-def", "haproxy", "haproxy-def", "ssh", "ssh-def",
         "sshuttle", "sshuttle-def", "ntun", "ntunipt", "ntun2"]
NAMES = {"direct": "direct", "stunnel": "stunnel chain", "stunnel-def": "stunnel chain (defaults)",
         "haproxy": "HAProxy chain", "haproxy-def": "HAProxy chain (defaults)",
         "ssh": "ssh -L", "ssh-def": "ssh -L (defaults)", "sshuttle": "sshuttle",
         "sshuttle-def": "sshuttle (defaults)", "ntun": "ntun (BPF)",
         "ntunipt": "ntun (iptables)", "ntun2": "ntun2 (BPF)"}
# The baselines every figure is given as a ratio to (like-for-like rows).
BASES = (("stunnel", "x_stunnel"), ("haproxy", "x_haproxy"), ("sshuttle", "x_sshuttle"),
         ("ssh", "x_ssh"), ("direct", "x_direct"))
GIB = float(1 << 30)


def load(raw):
    recs = []
    with open(raw) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def stats(vals):
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "runs": vals}


def add_ratios(fig, paths):
    for p in paths:
        s = fig.get(p)
        if not s:
            continue
        for base, key in BASES:
            b = fig.get(base)
            s[key] = s["median"] / b["median"] if b and b["median"] else None
            # Paired: the ratio within each run (the paths ran back to back), then its spread.
            if b and "by_run" in s and "by_run" in b:
                rr = [s["by_run"][k] / b["by_run"][k] for k in s["by_run"]
                      if k in b["by_run"] and b["by_run"][k]]
                s[key + "_runs"] = stats(rr)


def fmt(v, nd=2):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def ratio(v):
    return "—" if v is None else f"{v:.2f}×"


def run_ratio(s):
    if not s or len(s["runs"]) < 2:
        return "—" if not s else ratio(s["median"])
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meta", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    meta = json.load(open(a.meta))
    if meta.get("also"):
        NAMES["ntun2"] = f"ntun @{meta['also'][:9]} (BPF)"
    recs = load(a.raw)
    paths = [p for p in PATHS if any(r["path"] == p for r in recs)]
    labels = meta.get("labels", {})

    def runs(path, fig):
        return [r for r in recs if r["path"] == path and r["fig"] == fig]

    def ok(r):
        return r.get("result", {}).get("ok") == 1

    figs, exact, failures = {}, {}, []
    for r in recs:
        if not ok(r):
            failures.append(r)

    def fig_stats(name, fig, value):
        out = {}
        for p in paths:
            rs = runs(p, fig)
            by_run = {r["run"]: value(r) for r in rs if ok(r)}
            by_run = {k: v for k, v in by_run.items() if v is not None}
            exact.setdefault(fig, {})[p] = (sum(ok(r) for r in rs), len(rs))
            s = stats(list(by_run.values()))
            if s:
                s["by_run"] = by_run
                out[p] = s
        add_ratios(out, paths)
        figs[name] = out

    fig_stats("bulk1_gbps", "bulk1", lambda r: r["result"]["gbps"])
    fig_stats("bulk8_gbps", "bulk8", lambda r: r["result"]["gbps"])
    fig_stats("conn_per_s", "rr50", lambda r: r["result"]["rate"])
    fig_stats("lat_p50_us", "lat1", lambda r: r["result"]["p50_us"])
    fig_stats("lat_p99_us", "lat1", lambda r: r["result"]["p99_us"])

    def cpu_per_gib(r):
        c = r.get("cpu_s") or {}
        return sum(c.values()) / (r["result"]["bytes"] / GIB) if c else None

    fig_stats("seq_conn_per_s", "lat1", lambda r: r["result"]["rate"])

    def sys_share(r):
        c, k = r.get("cpu_s") or {}, r.get("cpu_sys_s") or {}
        t = sum(c.values())
        return sum(k.values()) / t if t else None

    fig_stats("cpu_sys_share_1", "bulk1", sys_share)
    fig_stats("cpu_s_per_gib_1", "bulk1", cpu_per_gib)
    fig_stats("cpu_s_per_gib_8", "bulk8", cpu_per_gib)
    def machine(r, per_gib):
        # Busy time is counted in ticks: none at all in a figure means it was too short to
        # measure (a few hundredths of a CPU second), not that it cost nothing: left out.
        m = r.get("machine")
        if not m or m["busy_s"] <= 0 or m["busy_s"] + m["idle_s"] <= 0:
            return None
        if per_gib:
            return m["busy_s"] / (r["result"]["bytes"] / GIB)
        return 100.0 * m["busy_s"] / (m["busy_s"] + m["idle_s"])

    fig_stats("machine_s_per_gib_1", "bulk1", lambda r: machine(r, True))
    fig_stats("machine_busy_pct_1", "bulk1", lambda r: machine(r, False))
    fig_stats("cpu_ms_per_conn", "rr50",
              lambda r: sum(r["cpu_s"].values()) / r["result"]["conns"] * 1e3
              if r.get("cpu_s") else None)

    def per_conn(secs):
        return lambda r: secs(r) / r["result"]["conns"] * 1e3 \
            if r["result"].get("conns") and secs(r) is not None else None

    # Where a new connection's CPU goes on the whole machine: what decides the rate when every
    # CPU is busy (3a ≈ CPUs × busy share ÷ this).
    fig_stats("machine_ms_per_conn", "rr50",
              per_conn(lambda r: r["machine"]["busy_s"] if machine(r, False) else None))
    fig_stats("machine_busy_pct_rr50", "rr50", lambda r: machine(r, False))
    # The traffic's own ends: the app's load generator (its getrusage) and the server host's.
    fig_stats("ends_ms_per_conn", "rr50",
              per_conn(lambda r: r["result"]["cpu_self_s"] + r["srv_cpu_s"]
                       if "cpu_self_s" in r["result"] and "srv_cpu_s" in r else None))

    # Figure 6: interactive under load; new connection (rr) and open connection (ping).
    def sub(part, key):
        return lambda r: r["result"].get(part, {}).get(key)

    for part, name in (("new0", "inew_idle"), ("new1", "inew_load"), ("open0", "iopen_idle"),
                       ("open1", "iopen_load")):
        fig_stats(name + "_p50_us", "iload", sub(part, "p50_us"))
        fig_stats(name + "_p99_us", "iload", sub(part, "p99_us"))
    fig_stats("iload_bulk_gbps", "iload", sub("bulk", "gbps"))

    def own_ratio(part_load, part_idle, key):
        def f(r):
            a = r["result"].get(part_load, {}).get(key)
            b = r["result"].get(part_idle, {}).get(key)
            return a / b if a and b else None
        return f

    fig_stats("iopen_p99_x_idle", "iload", own_ratio("open1", "open0", "p99_us"))
    fig_stats("inew_p99_x_idle", "iload", own_ratio("new1", "new0", "p99_us"))
    # Figure 7: many flows.
    fig_stats("flows_gbps", "flows", lambda r: r["result"]["gbps"])
    fig_stats("flows_jain", "flows", lambda r: r["result"]["jain"])
    # The relays' CPU over the whole figure (setting the flows up included) per GiB they
    # carried in it, inside the measured window or not.
    fig_stats("flows_cpu_s_per_gib", "flows",
              lambda r: sum(r["cpu_s"].values()) /
              (r["result"].get("bytes_all", r["result"]["bytes"]) / GIB)
              if r.get("cpu_s") and r["result"]["bytes"] else None)

    # Figure 8: churn, per daemon: RSS and descriptors before, right after, settled.
    churn = {}
    for p in paths:
        rs = runs(p, "churn")
        exact.setdefault("churn", {})[p] = (sum(ok(r) for r in rs), len(rs))
        rs = [r for r in rs if ok(r)]
        if not rs:
            continue
        r = rs[-1]
        churn[p] = {"conns": r["result"]["conns"], "rate": r["result"]["rate"],
                    "want": r.get("want"), "settle_ms": r.get("settle_ms"),
                    "daemons": r.get("daemons", {})}

    # Per daemon CPU (median over runs, and the system part of it) for the detail lines of
    # figures 5 (s/GiB, one stream) and 5c (ms per new connection).
    def daemon_detail(fig, unit_of):
        out = {}
        for p in paths:
            ds = {}
            for r in runs(p, fig):
                if not ok(r) or not r.get("cpu_s") or not unit_of(r):
                    continue
                u = unit_of(r)
                for d, v in r["cpu_s"].items():
                    ds.setdefault(d, {"total": [], "sys": []})
                    ds[d]["total"].append(v / u)
                    ds[d]["sys"].append(r.get("cpu_sys_s", {}).get(d, 0) / u)
            out[p] = {d: {k: statistics.median(v) for k, v in e.items()}
                      for d, e in ds.items()}
        return out

    cpu_detail = daemon_detail("bulk1", lambda r: r["result"]["bytes"] / GIB)
    conn_detail = daemon_detail("rr50", lambda r: r["result"].get("conns", 0) / 1e3)

    # Figure 4: KiB per idle connection, per daemon and in all, from PSS (RSS alongside).
    mem = {}
    for p in paths:
        rs = [r for r in runs(p, "hold") if ok(r)]
        exact.setdefault("hold", {})[p] = (len(rs), len(runs(p, "hold")))
        if not rs:
            continue
        per = {}
        for r in rs:
            n = r["held"]["held"] or 1
            for d, m in r["mem_kib"].items():
                e = per.setdefault(d, {"pss": [], "rss": []})
                e["pss"].append((m["pss1"] - m["pss0"]) / n)
                e["rss"].append((m["rss1"] - m["rss0"]) / n)
        total_pss = [sum(per[d]["pss"][i] for d in per) for i in range(len(rs))]
        total_rss = [sum(per[d]["rss"][i] for d in per) for i in range(len(rs))]
        mem[p] = {
            "conns": rs[0]["conns"],
            "daemons": {d: {"pss": stats(v["pss"]), "rss": stats(v["rss"])}
                        for d, v in per.items()},
            "total_pss": stats(total_pss) if per else None,
            "total_rss": stats(total_rss) if per else None,
            "base_pss_kib": {d: statistics.median(r["mem_kib"][d]["pss0"] for r in rs)
                             for d in per},
        }
    mt = {p: dict(mem[p]["total_pss"]) for p in mem if mem[p]["total_pss"]}
    add_ratios(mt, paths)
    figs["idle_kib_per_conn"] = mt

    # Issue 16's targets for ntun, on the like-for-like rows.
    targets = []

    def target(what, f, base_path, limit, cmp, unit):
        val, base = med(f, "ntun"), med(f, base_path)
        r = val / base if val is not None and base else None
        met = None if r is None else (r >= limit if cmp == ">=" else r <= limit)
        a, b = figs.get(f, {}).get("ntun", {}), figs.get(f, {}).get(base_path, {})
        per = [a["by_run"][k] / b["by_run"][k] for k in a.get("by_run", {})
               if k in b.get("by_run", {}) and b["by_run"][k]]
        met_runs = sum((x >= limit if cmp == ">=" else x <= limit) for x in per)
        targets.append({"target": what, "ntun": val, "baseline": base, "ratio": r,
                        "ratio_runs": stats(per), "met_runs": [met_runs, len(per)],
                        "limit": f"{cmp} {limit}", "met": met, "unit": unit})

    def med(f, p):
        s = figs.get(f, {}).get(p)
        return s["median"] if s else None

    def absolute(what, f, limit, cmp, unit):
        a = figs.get(f, {}).get("ntun")
        val = a["median"] if a else None
        per = list(a["by_run"].values()) if a else []
        ok_ = (lambda x: x >= limit) if cmp == ">=" else (lambda x: x <= limit)
        targets.append({"target": what, "ntun": val, "baseline": None, "ratio": None,
                        "ratio_runs": None, "met_runs": [sum(ok_(x) for x in per), len(per)],
                        "limit": f"{cmp} {limit}", "met": None if val is None else ok_(val),
                        "unit": unit, "absolute": True})

    target("one stream ≥ 1.3 × stunnel chain", "bulk1_gbps", "stunnel", 1.3, ">=", "Gbit/s")
    target("one stream ≥ 1 × HAProxy chain", "bulk1_gbps", "haproxy", 1.0, ">=", "Gbit/s")
    target("one stream ≥ 1 × sshuttle", "bulk1_gbps", "sshuttle", 1.0, ">=", "Gbit/s")
    target("whole-machine CPU s/GiB, one stream ≤ 0.6 × stunnel chain", "machine_s_per_gib_1",
           "stunnel", 0.6, "<=", "s/GiB")
    target("new connections/s (c=50) ≥ 2 × ssh -L", "conn_per_s", "ssh", 2.0, ">=", "conn/s")
    absolute("interactive p99 (open connection) under 8 bulk streams ≤ 3 × with no load",
             "iopen_p99_x_idle", 3.0, "<=", "× own p99 idle")
    absolute("interactive p99 (new connection) under 8 bulk streams ≤ 3 × with no load",
             "inew_p99_x_idle", 3.0, "<=", "× own p99 idle")
    target("interactive p99 (open connection) under load ≤ stunnel chain's", "iopen_load_p99_us",
           "stunnel", 1.0, "<=", "µs")
    target("interactive p99 (new connection) under load ≤ stunnel chain's", "inew_load_p99_us",
           "stunnel", 1.0, "<=", "µs")
    target(f"{meta.get('flows', 1000):,} flows: aggregate ≥ stunnel chain", "flows_gbps",
           "stunnel", 1.0, ">=", "Gbit/s")
    absolute(f"{meta.get('flows', 1000):,} flows: Jain's index ≥ 0.9", "flows_jain", 0.9, ">=",
             "")
    worst = None
    met_runs = None
    if "ntun" in mem:
        worst = max(v["rss"]["median"] for v in mem["ntun"]["daemons"].values())
        per = [v["rss"]["runs"] for v in mem["ntun"]["daemons"].values()]
        met_runs = [sum(max(col) <= 2.0 for col in zip(*per)), len(per[0])]
    ex = exact.get("hold", {}).get("ntun", (0, 0))
    targets.append({"target": f"{meta.get('hold', 0):,} idle: ≤ 2 KiB per connection in each "
                    f"daemon (RSS), all answer afterwards ({ex[0]} of {ex[1]} runs did)",
                    "ntun": worst, "baseline": None, "ratio": None, "limit": "<= 2 KiB",
                    "met_runs": met_runs, "unit": "KiB (worst daemon)",
                    "met": None if worst is None else (worst <= 2.0 and ex[0] == ex[1])})
    cm = None
    if "ntun" in churn:
        worst_c = 0.0
        for d, v in churn["ntun"]["daemons"].items():
            worst_c = max(worst_c, v["rss2"] / v["rss0"] if v["rss0"] else 9,
                          v["fds2"] / v["fds0"] if v["fds0"] else 9)
        cm = worst_c
    targets.append({"target": f"churn {churn.get('ntun', {}).get('conns', 0):,}: RSS and fds "
                    "back within 5% of where they started", "ntun": cm, "baseline": None,
                    "ratio": None, "limit": "<= 1.05", "met_runs": None,
                    "unit": "× start (worst daemon, RSS or fds)",
                    "met": None if cm is None else cm <= 1.05})

    # Figure 9: one ntun-server against two, two client hosts; per set-up and figure the
    # aggregate, each daemon's CPU, the machine's busy share, and two ÷ one within each run.
    relays = {}
    for fig, key in (("relays_bulk8", "gbps"), ("relays_rr50", "rate")):
        for n in (1, 2):
            rs = [r for r in recs if r["fig"] == fig and r.get("relays") == n]
            good = [r for r in rs if ok(r)]
            e = relays.setdefault(fig, {}).setdefault(n, {})
            e["exact"] = (len(good), len(rs))
            e["by_run"] = {r["run"]: r["result"][key] for r in good}
            e["value"] = stats(list(e["by_run"].values()))
            cpu = {}
            for r in good:
                unit = (r["result"]["bytes"] / GIB if key == "gbps"
                        else r["result"]["conns"] / 1000.0)
                for d, v in (r.get("cpu_s") or {}).items():
                    if unit:
                        cpu.setdefault(d, []).append(v / unit)
            e["cpu"] = {d: statistics.median(v) for d, v in cpu.items()}
            busy = [machine(r, False) for r in good]
            busy = [v for v in busy if v is not None]
            e["busy_pct"] = statistics.median(busy) if busy else None
        one, two = relays[fig][1]["by_run"], relays[fig][2]["by_run"]
        relays[fig]["two_over_one"] = stats([two[k] / one[k] for k in two if one.get(k)])
    if not any(relays[f][n]["exact"][1] for f in relays for n in (1, 2)):
        relays = {}

    doc = {"meta": meta, "figures": figs, "memory": mem, "churn": churn, "relays": relays,
           "cpu_per_daemon_s_per_gib": cpu_detail, "exact": exact, "targets": targets,
           "failures": failures, "raw": recs}
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")

    # ---------------------------------------------------------------- Markdown
    L = []
    m = meta
    title = "smoke run (numbers meaningless)" if m.get("smoke") else "results"
    L.append(f"# ntun benchmark {title}: {m['date']}")
    L.append("")
    L.append(f"- command: `{m['command']}` (benchmark as of commit {m.get('bench_commit')})")
    L.append(f"- ntun measured: {m.get('measured')}")
    if m.get("started"):
        L.append(f"- started {m['started']}, ended {m['date']}; time taken: {m.get('phases')}")
    L.append(f"- machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}; "
             f"RLIMIT_NOFILE {m['nofile']}")
    L.append(f"- load average at start {m.get('load_start')}, at end {m.get('load_end')}; "
             f"processes older than 10 s averaging above 5% CPU at start: {m.get('busy_start') or 'none'}, "
             f"at end: {m.get('busy_end') or 'none'}")
    ob = (m.get("other_benchmarks_start") or 0, m.get("other_benchmarks_end") or 0)
    if ob[0] or ob[1]:
        L.append(f"- **another tools/bench was running** at start ({ob[0]}) or at end ({ob[1]}): "
                 f"both compete for the CPUs; absolute numbers are lower, ratios less sure")
    v = m["versions"]
    L.append(f"- baselines: stunnel {v['stunnel']}, HAProxy {v.get('haproxy', '?')}, "
             f"{v['openssh']}, sshuttle {v.get('sshuttle', '?')}, OpenSSL {v['openssl']}; "
             "like-for-like rows run the suite ntun negotiates (stunnel `ciphersuites`, HAProxy "
             "`ssl-default-*-ciphersuites`, `ssh -c aes128-gcm@openssh.com`, sshuttle through "
             "that ssh), \"(defaults)\" rows each tool as installed")
    seen = m.get("seen", {})
    L.append("- negotiated, read off the wire (ServerHello; both SSH KEXINITs) hop by hop: " +
             "; ".join(f"**{NAMES[p]}**: {seen.get(p, '?')}" for p in paths))
    L.append(f"- sizes: {m['runs']} run(s) per figure; one stream {m['bulk1'] / GIB:g} GiB; "
             f"8 streams {m['bulk8'] / GIB:g} GiB in all; connection rate {m['rr_secs']} s at "
             f"concurrency 50; latency {m['lat_secs']} s at concurrency 1; "
             f"{m['hold']:,} idle connections held through ntun, {m.get('hold_base', 0):,} "
             f"through the other paths ({m.get('hold_runs', m['runs'])} run(s); "
             f"stunnel chain: {m.get('stunnel_hold', m['hold'])}, see figure 4); interactive "
             f"{m.get('iload_secs')} s; {m.get('flows', 0):,} flows for {m.get('flow_secs')} s; "
             f"churn {m.get('churn', 0):,} connections, at most {m.get('churn_secs')} s per path")
    L.append("- every value is the median over runs, with min–max; × columns are the median's "
             "ratio to the stunnel chain and to direct; \"per run\" is the ratio within each "
             "run (the paths of a run measured back to back, so drift of a shared machine "
             "cancels), median and min–max; \"exact\" counts runs in which every byte arrived, "
             "checked in place against the sent pattern")
    L.append("")

    # The per-daemon detail line under a CPU table.
    def detail(d, unit):
        return "; ".join(
            f"{NAMES[p]}: " + ", ".join(
                f"{labels.get(n, n)} {v['total']:.{unit}f} ({v['sys']:.{unit}f})"
                for n, v in d[p].items())
            for p in paths if d.get(p))

    def table(title, key, unit, fig_raw, better):
        L.append(f"### {title}")
        L.append("")
        L.append(f"| path | median {unit} | min–max | × stunnel | × stunnel per run | "
                 f"× HAProxy per run | × sshuttle per run | × direct | exact |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in paths:
            s = figs[key].get(p)
            ex = exact.get(fig_raw, {}).get(p, (0, 0))
            if not s:
                L.append(f"| {NAMES[p]} | — | — | — | — | — | — | — | {ex[0]}/{ex[1]} |")
                continue
            L.append(f"| {NAMES[p]} | {fmt(s['median'])} | {fmt(s['min'])}–{fmt(s['max'])} | "
                     f"{ratio(s.get('x_stunnel'))} | {run_ratio(s.get('x_stunnel_runs'))} | "
                     f"{run_ratio(s.get('x_haproxy_runs'))} | "
                     f"{run_ratio(s.get('x_sshuttle_runs'))} | "
                     f"{ratio(s.get('x_direct'))} | {ex[0]}/{ex[1]} |")
        L.append(f"\n{better}\n")

    L.append("## Figures")
    L.append("")
    table("1. One TCP stream, bulk throughput", "bulk1_gbps", "Gbit/s", "bulk1",
          "Higher is better.")
    table("2. 8 parallel streams, aggregate throughput", "bulk8_gbps", "Gbit/s", "bulk8",
          "Higher is better.")
    table("3a. New connections per second, concurrency 50 (1 KiB request, 1 KiB response, "
          "new TCP connection each)", "conn_per_s", "conn/s", "rr50", "Higher is better.")
    table("3b. Latency p50 of connect + 1 KiB request + 1 KiB response, concurrency 1",
          "lat_p50_us", "µs", "lat1", "Lower is better. Measured from before connect() to the "
          "last response byte; the close that follows is not included.")
    table("3c. Latency p99, same loop", "lat_p99_us", "µs", "lat1", "Lower is better.")
    table("3d. Connections per second of that loop (concurrency 1, close included)",
          "seq_conn_per_s", "conn/s", "lat1", "Higher is better. Far below 1e6 / p50 when a "
          "path is slow to carry the server's close back to the app.")

    L.append("### 4. Memory per idle tunneled connection (PSS, KiB)")
    L.append("")
    L.append("| path | connections | all relay daemons | min–max | × stunnel | per daemon "
             "(median PSS / RSS KiB per connection; PSS before) | exact |")
    L.append("|---|---:|---:|---:|---:|---|---:|")
    for p in paths:
        ex = exact.get("hold", {}).get(p, (0, 0))
        if p == "direct":
            L.append(f"| {NAMES[p]} | {mem.get(p, {}).get('conns', '—')} | no relay | | | | "
                     f"{ex[0]}/{ex[1]} |")
            continue
        if p not in mem:
            L.append(f"| {NAMES[p]} | — | — | — | — | — | {ex[0]}/{ex[1]} |")
            continue
        e = mem[p]
        t = mt.get(p, {})
        det = "; ".join(
            f"{labels.get(d, d)} {fmt(v['pss']['median'])} / {fmt(v['rss']['median'])} "
            f"({e['base_pss_kib'][d] / 1024:.1f} MiB)"
            for d, v in e["daemons"].items())
        L.append(f"| {NAMES[p]} | {e['conns']:,} | {fmt(t.get('median'))} | "
                 f"{fmt(t.get('min'))}–{fmt(t.get('max'))} | {ratio(t.get('x_stunnel'))} | "
                 f"{det} | {ex[0]}/{ex[1]} |")
    L.append("")
    if m.get("hold_asked", m["hold"]) > m["hold"] or \
            m.get("hold_base_asked", 0) > m.get("hold_base", 0):
        L.append(f"**Fewer connections than asked** ({m.get('hold_asked'):,} through ntun, "
                 f"{m.get('hold_base_asked'):,} through the others): RLIMIT_NOFILE is "
                 f"{m['nofile']:,} here and could not be raised (no CAP_SYS_RESOURCE), and "
                 "ntun-client, ntun-proxy and the load generator take a descriptor per "
                 "connection, HAProxy two.")
        L.append("")
    L.append(f"ntun holds {m['hold']:,} connections, the other paths {m.get('hold_base', m['hold']):,}: "
             "OpenSSH and stunnel take minutes per 10,000, and ssh -L, stunnel and HAProxy "
             "dial one fixed address and port from each hop, which 65,000 ephemeral ports "
             "bound. Per connection, the figure hardly depends on the count. The apps use four "
             "source addresses and the server four ports, and every namespace the whole "
             "ephemeral port range, so that no hop runs out of ports.")
    L.append("")
    L.append("Lower is better. Exact: all connections were open and echoed a token, stayed "
             "silent while idle, and echoed a second token afterwards. Kernel socket memory "
             "is not included (it is not in any process's PSS). Memory is read after the "
             "connections have carried their first echo and sat idle "
             "for a moment, from freshly started daemons (\"PSS before\" is their size then).")
    if m.get("stunnel_hold", m["hold"]) < m.get("hold_base", m["hold"]) and \
            any(p in mem for p in ("stunnel", "stunnel-def")):
        L.append("")
        hb = m.get("hold_base", m["hold"])
        L.append(f"The stunnel chain held {m['stunnel_hold']:,} connections, not {hb:,}: "
                 f"each of its four processes runs a thread per connection and every thread "
                 f"takes a PID, so 4 × {hb:,} would exhaust kernel.pid_max "
                 f"({m.get('pid_max')}) for the whole machine. Its share leaves 8,192 PIDs "
                 f"free, and stunnel enforces it itself (started with RLIMIT_NOFILE "
                 f"{m.get('stunnel_nofile')}, it admits NOFILE × 125 / 256 clients).")
    L.append("")
    table("5. Relay CPU seconds (user+sys, all relay processes) per GiB, one stream",
          "cpu_s_per_gib_1", "s/GiB", "bulk1", "Lower is better. Per daemon (median s/GiB, "
          "of which system): " + detail(cpu_detail, 2) + ".")
    table("5b. Relay CPU seconds per GiB, 8 streams", "cpu_s_per_gib_8", "s/GiB", "bulk8",
          "Lower is better.")
    table("5c. Relay CPU milliseconds per new connection (from 3a)", "cpu_ms_per_conn", "ms",
          "rr50", "Lower is better. Per daemon (median ms per connection, of which system): " +
          detail(conn_detail, 3) + ".")
    table("5d. Whole machine CPU seconds per GiB, one stream", "machine_s_per_gib_1", "s/GiB",
          "bulk1", "Lower is better. Busy time of every process and of the kernel "
          "(/proc/stat, over the transfer), the load generators included: on direct it is the "
          "cost of one plain TCP hop, sender and receiver together. ntun crosses four such hops "
          "and seals and opens its bytes twice; the stunnel chain five (its relay is two "
          "processes joined over loopback) and twice; ssh -L three and once.")
    table(f"5e. Share of the machine's CPU time busy during one stream ({m['nproc']} CPUs)",
          "machine_busy_pct_1", "%", "bulk1", "A path that is not limited by one "
          "process leaves CPUs idle only when its processes wait for each other (or run "
          "where another already does); throughput ≈ CPUs × busy share ÷ 5d.")
    table("5f. Whole machine CPU milliseconds per new connection (from 3a)",
          "machine_ms_per_conn", "ms", "rr50", "Lower is better. Busy time of every process "
          "and of the kernel over the 3a window, per connection made in it; the load "
          "generators at both ends took (median ms per connection) " + ", ".join(
              f"{NAMES[p]} {fmt(figs['ends_ms_per_conn'][p]['median'], 3)}"
              for p in paths if figs["ends_ms_per_conn"].get(p)) +
          ". Every path but direct has two plain TCP legs per connection besides its tunnel "
          "(app to first hop, last hop to the destination) whose set-up and close the kernel "
          "does in whichever process or interrupt touches them.")
    table(f"5g. Share of the machine's CPU time busy during 3a ({m['nproc']} CPUs)",
          "machine_busy_pct_rr50", "%", "rr50", "With every CPU busy, new connections/s ≈ "
          "CPUs × busy share ÷ 5f: the rate is then what a connection costs the whole "
          "machine, not how fast any one process is.")

    if any(figs.get("iopen_idle_p99_us", {}).get(p) for p in paths):
        L.append("### 6. Interactive under load: 1 KiB request, 1 KiB response, p50 / p99 µs")
        L.append("")
        L.append("| path | open conn., no load | open conn., 8 bulk streams | × own p99 | "
                 "p99 × stunnel under load | new conn., no load | new conn., 8 bulk streams | "
                 "× own p99 | bulk Gbit/s meanwhile | exact |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

        def pp(name, p):
            a, b = figs[name + "_p50_us"].get(p), figs[name + "_p99_us"].get(p)
            return f"{fmt(a['median'])} / {fmt(b['median'])}" if a and b else "—"

        for p in paths:
            ex = exact.get("iload", {}).get(p, (0, 0))
            ox = figs["iopen_p99_x_idle"].get(p)
            nx = figs["inew_p99_x_idle"].get(p)
            os_ = figs["iopen_load_p99_us"].get(p, {})
            bg = figs["iload_bulk_gbps"].get(p)
            L.append(f"| {NAMES[p]} | {pp('iopen_idle', p)} | {pp('iopen_load', p)} | "
                     f"{ratio(ox['median']) if ox else '—'} | "
                     f"{run_ratio(os_.get('x_stunnel_runs'))} | {pp('inew_idle', p)} | "
                     f"{pp('inew_load', p)} | {ratio(nx['median']) if nx else '—'} | "
                     f"{fmt(bg['median']) if bg else '—'} | {ex[0]}/{ex[1]} |")
        L.append("")
        L.append(f"Lower is better. For {m.get('iload_secs', '?')} s at a time, one connection "
                 "exchanges 1 KiB requests and responses back to back (open connection) while "
                 "another loop opens a new connection for each (connect included), first with "
                 "nothing else running, then while 8 bulk streams run through the same client "
                 "(for ntun: on the same client-server HTTP/2 connection). \"× own p99\" is the "
                 "loaded p99 over the unloaded one, within each run.")
        L.append("")
    if any(figs.get("flows_gbps", {}).get(p) for p in paths):
        table(f"7. {m.get('flows', 1000):,} concurrent flows, aggregate throughput",
              "flows_gbps", "Gbit/s", "flows", "Higher is better. Every flow receives the "
              "pattern, checked in place, for the measured seconds after every flow has received "
              "its first byte.")
        L.append("| path | Jain's index (median, min–max) | relay CPU s/GiB (set-up included) | "
                 "exact |")
        L.append("|---|---:|---:|---:|")
        for p in paths:
            j = figs["flows_jain"].get(p)
            c = figs["flows_cpu_s_per_gib"].get(p)
            ex = exact.get("flows", {}).get(p, (0, 0))
            js = f"{j['median']:.3f} ({j['min']:.3f}–{j['max']:.3f})" if j else "—"
            L.append(f"| {NAMES[p]} | {js} | "
                     f"{fmt(c['median']) if c else '—'} | {ex[0]}/{ex[1]} |")
        L.append("")
        L.append("Jain's index over the bytes each flow received: 1 when all got the same, "
                 "1/n when one got everything.")
        L.append("")
    if churn:
        L.append("### 8. Churn: short connections, then RSS and descriptors of each daemon")
        L.append("")
        L.append("| path | connections | conn/s | settled after | per daemon: RSS KiB before → "
                 "right after → settled; fds before → after → settled | exact |")
        L.append("|---|---:|---:|---:|---|---:|")
        for p in paths:
            c = churn.get(p)
            ex = exact.get("churn", {}).get(p, (0, 0))
            if not c:
                L.append(f"| {NAMES[p]} | — | — | — | — | {ex[0]}/{ex[1]} |")
                continue
            det = "; ".join(f"{labels.get(d, d)}: {v['rss0']:,} → {v['rss1']:,} → "
                            f"{v['rss2']:,}, {v['fds0']} → {v['fds1']} → {v['fds2']}"
                            for d, v in c["daemons"].items()) or "no relay"
            st = "never" if c["settle_ms"] is None or c["settle_ms"] < 0 else \
                f"{c['settle_ms'] / 1000:.1f} s"
            L.append(f"| {NAMES[p]} | {c['conns']:,} | {fmt(c['rate'])} | {st} | {det} | "
                     f"{ex[0]}/{ex[1]} |")
        L.append("")
        L.append(f"Asked for {m.get('churn', 0):,} connections at concurrency 50, at most "
                 f"{m.get('churn_secs', '?')} s per path (the count reached is given). "
                 f"\"Before\" follows a warm-up of {m.get('churn_warm', 1000):,} connections; \"settled\" is when every "
                 f"daemon's descriptors were back within 5% (at most {m.get('churn_settle', 60)} s), "
                 "RSS read then.")
        L.append("")

    if relays:
        L.append("### 9. The relay on one core and on two")
        L.append("")
        L.append("| ntun-server processes | 8 streams Gbit/s | min–max | relay CPU s/GiB per "
                 "daemon | machine busy | new conn/s (c=50) | min–max | relay CPU ms per "
                 "connection per daemon | machine busy | exact |")
        L.append("|---|---:|---:|---|---:|---:|---:|---|---:|---:|")
        for n in (1, 2):
            b, c = relays["relays_bulk8"][n], relays["relays_rr50"][n]
            bv, cv = b["value"] or {}, c["value"] or {}

            def det(e):
                return "; ".join(f"{labels.get(d, d)} {v:.2f}" for d, v in e["cpu"].items()) \
                    or "—"

            def pct(v):
                return "—" if v is None else f"{v:.0f}%"
            L.append(f"| {n} | {fmt(bv.get('median'))} | {fmt(bv.get('min'))}–"
                     f"{fmt(bv.get('max'))} | {det(b)} | {pct(b['busy_pct'])} | "
                     f"{fmt(cv.get('median'))} | {fmt(cv.get('min'))}–{fmt(cv.get('max'))} | "
                     f"{det(c)} | {pct(c['busy_pct'])} | "
                     f"{b['exact'][0] + c['exact'][0]}/{b['exact'][1] + c['exact'][1]} |")
        L.append("")
        L.append(f"Two ÷ one, within each run: 8 streams "
                 f"{run_ratio(relays['relays_bulk8']['two_over_one'])}, new connections "
                 f"{run_ratio(relays['relays_rr50']['two_over_one'])}.")
        L.append("")
        L.append("Two client hosts, each with its own ntun-client, 4 bulk streams and 25 "
                 "concurrent connections each, through one ntun-server (both clients on port "
                 "8443) or through two ntun-server processes on the same relay host (port 8443 "
                 "for one client, 8444 for the other; the proxy attached to both). A relay host "
                 "uses its cores by running one ntun-server per core: proxies attach to every "
                 "server they are given, clients keep one (README, \"More than one core at the "
                 "relay\"). The clients, the proxy and the load generators share the same CPUs: "
                 "the relay's second core shows in the aggregate only where the relay was the "
                 "limit.")
        L.append("")

    ti = [r for r in recs if r["fig"] == "tool_iperf3" and ok(r)]
    tw = [r for r in recs if r["fig"] == "tool_wrk" and ok(r)]
    if ti or tw:
        L.append("### Tool check on the direct path")
        L.append("")
        if ti:
            b = figs["bulk1_gbps"].get("direct", {}).get("median")
            L.append(f"- iperf3 -R, one stream: {ti[0]['result']['gbps']:.2f} Gbit/s "
                     f"(ntbench, figure 1: {fmt(b)} Gbit/s)")
        if tw:
            c = figs["conn_per_s"].get("direct", {}).get("median")
            L.append(f"- wrk -c50 against nginx, `Connection: close` (a new connection per "
                     f"request, 1 KiB body): {tw[0]['result']['rate']:,.0f} req/s "
                     f"(ntbench, figure 3a: {fmt(c)} conn/s)")
        L.append("")
        L.append("ntbench checks every byte and counts connect in its latency; these two "
                 "packaged tools do neither, so they only show that ntbench is not the limit. "
                 "They ran once, after the figures, with the other paths' daemons stopped.")
        L.append("")
    if "ntun" in paths and "ntun2" in paths:
        # --also: the working build against REV, paired within each run (both ran back to back),
        # which is what decides a before/after on a machine whose speed drifts between runs.
        L.append(f"## ntun against {NAMES['ntun2']}, per run")
        L.append("")
        L.append("| figure | ntun | ntun2 | ntun ÷ ntun2 per run | better |")
        L.append("|---|---:|---:|---:|---|")
        for key, title, better in (("bulk1_gbps", "one stream, Gbit/s", "higher"),
                                   ("bulk8_gbps", "8 streams, Gbit/s", "higher"),
                                   ("conn_per_s", "connections/s", "higher"),
                                   ("lat_p50_us", "latency p50, µs", "lower"),
                                   ("cpu_s_per_gib_1", "relay CPU s/GiB, one stream", "lower"),
                                   ("cpu_s_per_gib_8", "relay CPU s/GiB, 8 streams", "lower"),
                                   ("machine_s_per_gib_1", "machine CPU s/GiB, one stream",
                                    "lower"),
                                   ("machine_busy_pct_1", "machine busy %, one stream",
                                    "higher")):
            now, then = figs[key].get("ntun"), figs[key].get("ntun2")
            if not now or not then:
                continue
            rr = stats([now["by_run"][k] / then["by_run"][k] for k in now["by_run"]
                        if k in then["by_run"] and then["by_run"][k]])
            now["x_ntun2_runs"] = rr
            L.append(f"| {title} | {fmt(now['median'])} | {fmt(then['median'])} | "
                     f"{run_ratio(rr)} | {better} |")
        L.append("")
    L.append("## Issue 16 targets for ntun (like-for-like rows)")
    L.append("")
    L.append("| target | ntun | baseline | ratio of medians | per run | met |")
    L.append("|---|---:|---:|---:|---:|---|")
    for t in targets:
        mr = t.get("met_runs")
        rr = t.get("ratio_runs")
        if t["met"] is None:
            met = "—"
        else:
            # The verdict needs the ratio of medians and the median of per-run ratios to agree.
            lim = float(t["limit"].split()[1])
            per_ok = (None if not rr else
                      (rr["median"] >= lim if t["limit"].startswith(">=") else rr["median"] <= lim))
            if per_ok is None or per_ok == t["met"]:
                met = "**met**" if t["met"] else "**missed**"
            else:
                met = "**borderline**"
            t["verdict"] = met.strip("*")
        if mr and mr[1]:
            met += f" (met in {mr[0]} of {mr[1]} runs)"
        L.append(f"| {t['target']} | {fmt(t['ntun'])} {t['unit']} | "
                 f"{fmt(t['baseline'])} | {ratio(t['ratio'])} | "
                 f"{run_ratio(t.get('ratio_runs'))} | {met} |")
    L.append("")
    if failures:
        L.append("## Failed measurements (excluded from the figures above)")
        L.append("")
        for r in failures:
            L.append(f"- {r['path']} {r['fig']} run {r['run']}: `{json.dumps(r['result'])}`")
        L.append("")
    with open(a.md, "w") as f:
        f.write("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
