#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# tools/bench's report: medians, spreads and ratios from the raw per-run records, as Markdown
# and JSON, plus issue 3's targets for ntun. Only runs whose every byte was exact count; failed
# runs are listed, never averaged in.
import argparse, json, statistics, sys

PATHS = ["direct", "stunnel", "ssh", "ntun", "ntunipt", "ntun2"]
NAMES = {"direct": "direct", "stunnel": "stunnel chain", "ssh": "ssh -L", "ntun": "ntun (BPF)",
         "ntunipt": "ntun (iptables)", "ntun2": "ntun2 (BPF)"}
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
        for base, key in (("stunnel", "x_stunnel"), ("direct", "x_direct")):
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
        m = r.get("machine")
        if not m or m["busy_s"] + m["idle_s"] <= 0:
            return None
        if per_gib:
            return m["busy_s"] / (r["result"]["bytes"] / GIB)
        return 100.0 * m["busy_s"] / (m["busy_s"] + m["idle_s"])

    fig_stats("machine_s_per_gib_1", "bulk1", lambda r: machine(r, True))
    fig_stats("machine_busy_pct_1", "bulk1", lambda r: machine(r, False))
    fig_stats("cpu_ms_per_conn", "rr50",
              lambda r: sum(r["cpu_s"].values()) / r["result"]["conns"] * 1e3
              if r.get("cpu_s") else None)

    # Per daemon CPU s/GiB (one stream), for the detail column of figure 5.
    cpu_detail = {}
    for p in paths:
        rs = [r for r in runs(p, "bulk1") if ok(r) and r.get("cpu_s")]
        ds = {}
        for r in rs:
            g = r["result"]["bytes"] / GIB
            for d, v in r["cpu_s"].items():
                ds.setdefault(d, {"total": [], "sys": []})
                ds[d]["total"].append(v / g)
                ds[d]["sys"].append(r.get("cpu_sys_s", {}).get(d, 0) / g)
        cpu_detail[p] = {d: {k: statistics.median(v) for k, v in e.items()} for d, e in ds.items()}

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

    # Issue 3's targets for ntun.
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

    target("one stream ≥ 1.5 × stunnel chain", "bulk1_gbps", "stunnel", 1.5, ">=", "Gbit/s")
    target("new connections/s ≥ 1 × ssh -L", "conn_per_s", "ssh", 1.0, ">=", "conn/s")
    target("latency p50 ≤ 0.25 × stunnel chain", "lat_p50_us", "stunnel", 0.25, "<=", "µs")
    worst = None
    if "ntun" in mem:
        worst = max(v["pss"]["median"] for v in mem["ntun"]["daemons"].values())
    met_runs = None
    if "ntun" in mem:
        per = [v["pss"]["runs"] for v in mem["ntun"]["daemons"].values()]
        met_runs = [sum(max(col) <= 2.0 for col in zip(*per)), len(per[0])]
    targets.append({"target": "≤ 2 KiB per idle connection in each daemon", "ntun": worst,
                    "baseline": None, "ratio": None, "limit": "<= 2 KiB", "met_runs": met_runs,
                    "met": None if worst is None else worst <= 2.0, "unit": "KiB (worst daemon)"})
    target("CPU s/GiB ≤ 0.7 × stunnel chain", "cpu_s_per_gib_1", "stunnel", 0.7, "<=", "s/GiB")

    doc = {"meta": meta, "figures": figs, "memory": mem, "cpu_per_daemon_s_per_gib": cpu_detail, "exact": exact, "targets": targets,
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
    L.append(f"- machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}; "
             f"RLIMIT_NOFILE {m['nofile']}")
    L.append(f"- load average at start {m.get('load_start')}, at end {m.get('load_end')}; "
             f"processes older than 10 s averaging above 5% CPU at start: {m.get('busy_start') or 'none'}, "
             f"at end: {m.get('busy_end') or 'none'}")
    ob = (m.get("other_benchmarks_start") or 0, m.get("other_benchmarks_end") or 0)
    if ob[0] or ob[1]:
        L.append(f"- **another tools/bench was running** at start ({ob[0]}) or at end ({ob[1]}): "
                 f"both compete for the CPUs; absolute numbers are lower, ratios less sure")
    L.append(f"- baselines: stunnel {m['versions']['stunnel']}, {m['versions']['openssh']}, "
             f"OpenSSL {m['versions']['openssl']}")
    seen = m.get("seen", {})
    L.append("- negotiated: " + "; ".join(f"{NAMES[p]}: {seen.get(p, '?')}" for p in paths))
    L.append(f"- sizes: {m['runs']} run(s) per figure; one stream {m['bulk1'] / GIB:g} GiB; "
             f"8 streams {m['bulk8'] / GIB:g} GiB in all; connection rate {m['rr_secs']} s at "
             f"concurrency 50; latency {m['lat_secs']} s at concurrency 1; "
             f"{m['hold']} idle connections held ({m.get('hold_runs', m['runs'])} run(s); "
             f"stunnel chain: {m.get('stunnel_hold', m['hold'])}, see figure 4)")
    L.append("- every value is the median over runs, with min–max; × columns are the median's "
             "ratio to the stunnel chain and to direct; \"per run\" is the ratio within each "
             "run (the paths of a run measured back to back, so drift of a shared machine "
             "cancels), median and min–max; \"exact\" counts runs in which every byte arrived, "
             "checked in place against the sent pattern")
    L.append("")

    def table(title, key, unit, fig_raw, better):
        L.append(f"### {title}")
        L.append("")
        L.append(f"| path | median {unit} | min–max | × stunnel | × stunnel per run | "
                 f"× direct | exact |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for p in paths:
            s = figs[key].get(p)
            ex = exact.get(fig_raw, {}).get(p, (0, 0))
            if not s:
                L.append(f"| {NAMES[p]} | — | — | — | — | — | {ex[0]}/{ex[1]} |")
                continue
            L.append(f"| {NAMES[p]} | {fmt(s['median'])} | {fmt(s['min'])}–{fmt(s['max'])} | "
                     f"{ratio(s.get('x_stunnel'))} | {run_ratio(s.get('x_stunnel_runs'))} | "
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
    L.append("Lower is better. Exact: all connections were open and echoed a token, stayed "
             "silent while idle, and echoed a second token afterwards. Kernel socket memory "
             "is not included (it is not in any process's PSS). Memory is read after the "
             "connections have carried their first echo and sat idle "
             "for a moment, from freshly started daemons (\"PSS before\" is their size then).")
    if m.get("stunnel_hold", m["hold"]) < m["hold"]:
        L.append("")
        L.append(f"The stunnel chain held {m['stunnel_hold']:,} connections, not {m['hold']:,}: "
                 f"each of its four processes runs a thread per connection and every thread "
                 f"takes a PID, so 4 × {m['hold']:,} would exhaust kernel.pid_max "
                 f"({m.get('pid_max')}) for the whole machine. Its share leaves 8,192 PIDs "
                 f"free, and stunnel enforces it itself (started with RLIMIT_NOFILE "
                 f"{m.get('stunnel_nofile')}, it admits NOFILE × 125 / 256 clients).")
    L.append("")
    table("5. Relay CPU seconds (user+sys, all relay processes) per GiB, one stream",
          "cpu_s_per_gib_1", "s/GiB", "bulk1", "Lower is better. Per daemon (median s/GiB, "
          "of which system): " + "; ".join(
              f"{NAMES[p]}: " + ", ".join(
                  f"{labels.get(d, d)} {v['total']:.2f} ({v['sys']:.2f})"
                  for d, v in cpu_detail[p].items())
              for p in paths if cpu_detail.get(p)) + ".")
    table("5b. Relay CPU seconds per GiB, 8 streams", "cpu_s_per_gib_8", "s/GiB", "bulk8",
          "Lower is better.")
    table("5c. Relay CPU milliseconds per new connection (from 3a)", "cpu_ms_per_conn", "ms",
          "rr50", "Lower is better.")
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
    L.append("## Issue 3 targets for ntun")
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
