#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks deploy/grafana/ntun.json against metrics scraped from running daemons.

1. The dashboard is one Grafana can import: a title and uid, unique panel ids, every panel on
   the 24-column grid, every query panel with a Prometheus target on the ${datasource} variable.
2. Every ntun_* name in an expression (panel targets and template variables) is exposed by at
   least one of the daemons scraped (a histogram's _bucket/_sum/_count count as its name).
3. Every label an expression groups by or a legend shows ({{label}}) exists on a metric the
   expression reads (job and instance are Prometheus's own).
4. The checker itself: a copy with a metric name no daemon has, and one grouping by a label
   the metric lacks, must each be rejected.

Usage: check_grafana.py DASHBOARD.json SCRAPE.txt... (Prometheus text of each daemon)
"""
import copy
import json
import re
import sys

METRIC = re.compile(r"\bntun_[a-zA-Z0-9_]+")
PROM_LABELS = {"job", "instance", "__name__"}


def scraped(paths):
    """{metric name: set of label names} from Prometheus text exposition files."""
    names = {}
    for p in paths:
        for line in open(p):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
            if not m:
                continue
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            name = m.group(1)
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix):
                    names.setdefault(name[: -len(suffix)], set()).update(labels - {"le"})
            names.setdefault(name, set()).update(labels)
    return names


def queries(dash):
    """(where, expr, legend) of every query in the dashboard."""
    out = []
    for p in dash.get("panels", []):
        for sub in [p] + p.get("panels", []):
            for t in sub.get("targets", []):
                out.append((f"panel {sub.get('id')} '{sub.get('title')}' {t.get('refId')}",
                            t.get("expr", ""), t.get("legendFormat", "")))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        if v.get("type") == "query":
            out.append((f"variable {v.get('name')}", q or "", ""))
    return out


def check(dash, have):
    errs = []
    if not dash.get("title") or not dash.get("uid"):
        errs.append("no title or uid")
    ids = set()
    for p in dash.get("panels", []):
        pid = p.get("id")
        if pid in ids:
            errs.append(f"panel id {pid} twice")
        ids.add(pid)
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
            errs.append(f"panel {pid}: gridPos {g} not on the 24-column grid")
        if p.get("type") != "row":
            if not p.get("targets"):
                errs.append(f"panel {pid} '{p.get('title')}': no query")
            ds = p.get("datasource", {})
            if ds.get("type") != "prometheus" or ds.get("uid") != "${datasource}":
                errs.append(f"panel {pid}: datasource {ds} is not the ${{datasource}} variable")
    names_used = set()
    for where, expr, legend in queries(dash):
        used = set(METRIC.findall(expr))
        if not used:
            errs.append(f"{where}: no ntun_* metric in '{expr}'")
        names_used |= used
        labels = set()
        for name in sorted(used):
            if name not in have:
                errs.append(f"{where}: {name} is exposed by no daemon")
            labels |= have.get(name, set())
        grouped = set()
        for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            grouped |= {x.strip() for x in m.group(1).split(",") if x.strip()}
        grouped |= set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
        for lab in sorted(grouped - PROM_LABELS - labels):
            errs.append(f"{where}: label '{lab}' is on none of {sorted(used)}")
    return errs, names_used


def main():
    dash = json.load(open(sys.argv[1]))
    have = scraped(sys.argv[2:])
    print(f"scraped {len(have)} metric names from {len(sys.argv) - 2} daemons")
    errs, used = check(dash, have)
    for e in errs:
        print("  " + e)
    print(f"dashboard: {len(dash['panels'])} panels, {len(queries(dash))} queries, "
          f"{len(used)} ntun_* metrics; exposed but not shown: "
          f"{sorted(n for n in have if n.startswith('ntun_') and n not in used) or 'none'}")

    # 4: the checker catches a wrong name and a wrong label.
    self_errs = []
    bad = copy.deepcopy(dash)
    t = next(p for p in bad["panels"] if p.get("targets"))["targets"][0]
    t["expr"] = t["expr"].replace("ntun_", "ntun_no_such_", 1)
    if not check(bad, have)[0]:
        self_errs.append("a metric no daemon exposes was accepted")
    bad = copy.deepcopy(dash)
    t = next(p for p in bad["panels"] if p.get("targets"))["targets"][0]
    t["expr"] = "sum by (no_such_label) (" + t["expr"] + ")"
    if not check(bad, have)[0]:
        self_errs.append("grouping by a label no metric has was accepted")
    for e in self_errs:
        print("  checker: " + e)
    ok = not errs and not self_errs
    print("PASS: grafana dashboard" if ok else "FAIL: grafana dashboard")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
