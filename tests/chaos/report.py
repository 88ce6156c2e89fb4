#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# The chaos test's verdict and summary: faults per kind, transfers by outcome, bytes, recovery
# times, reordering seen, leak figures. Exits 1 if anything was lost, corrupted or hung, if a
# recovery took longer than --recovery-max seconds (or never came), or if nothing completed.
import argparse, collections, json, os, statistics, sys


def rows(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--faults", required=True)
    ap.add_argument("--dest", action="append", default=[])
    ap.add_argument("--recovery-max", type=float, required=True)
    ap.add_argument("--reorder")
    ap.add_argument("--leaks")
    a = ap.parse_args()

    load = rows(a.load)
    faults = rows(a.faults)
    dest = [r for p in a.dest for r in rows(p)]
    fail = []

    out = collections.Counter(r["outcome"] for r in load)
    errs = collections.Counter(r["detail"] for r in load if r["outcome"] == "error")
    ok_bytes = sum(r["up"] + r["down"] for r in load if r["outcome"] == "ok")
    moved = sum(r["bytes"] for r in load)
    halfc = sum(1 for r in load if r["outcome"] == "ok" and r["mode"] in ("put", "half", "echo"))
    by_mode = collections.Counter(r["mode"] for r in load if r["outcome"] == "ok")
    dtrunc = [r for r in dest if r.get("dest_trunc")]
    print("== chaos summary")
    kinds = collections.Counter(f["kind"] for f in faults)
    print(f"faults injected: {len(faults)} ("
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
    print(f"transfers: started {len(load)}, completed byte-exact {out['ok']}, failed with an "
          f"error the app saw {out['error']} ({', '.join(f'{k} {n}' for k, n in errs.most_common())})")
    print(f"  completed by mode: {dict(sorted(by_mode.items()))}; {halfc} of them half-closed "
          f"the upload and then received the answer")
    print(f"bytes: {ok_bytes / 1e6:.1f} MB verified in completed transfers, "
          f"{moved / 1e6:.1f} MB moved in all")
    print(f"corrupted {out['corrupt']}, truncated {out['trunc']}, hung {out['hang']}, "
          f"silently truncated at a destination {len(dtrunc)}")
    for k in ("corrupt", "trunc", "hang"):
        bad = [r for r in load if r["outcome"] == k]
        if bad:
            fail.append(f"{len(bad)} {k}")
            for r in bad[:5]:
                print(f"  {k}: {json.dumps(r)}")
    if dtrunc:
        fail.append(f"{len(dtrunc)} silently truncated at a destination")
        for r in dtrunc[:5]:
            print(f"  dest_trunc: {json.dumps(r)}")
    if not out["ok"]:
        fail.append("no transfer completed")

    rec = collections.defaultdict(list)
    allrec = []
    for f in faults:
        if f["ok"] is None:
            fail.append(f"no recovery after {f['kind']}")
            print(f"  no recovery: {json.dumps(f)}")
            continue
        t = f["ok"] - f["end"]
        rec[f["kind"]].append(t)
        allrec.append(t)
        if t > a.recovery_max:
            fail.append(f"recovery {t:.2f} s after {f['kind']}")
    if allrec:
        print(f"recovery (fault end -> first new hash-checked connection to both "
              f"destinations): median {statistics.median(allrec):.2f} s, "
              f"max {max(allrec):.2f} s over {len(allrec)} faults")
        for k, ts in sorted(rec.items()):
            print(f"  {k}: n {len(ts)}, median {statistics.median(ts):.2f} s, "
                  f"max {max(ts):.2f} s")
    notes = collections.Counter((f["kind"], f["note"]) for f in faults if f.get("note"))
    for (k, n), c in sorted(notes.items()):
        print(f"  {k}: {n} ({c}x)")
    if a.reorder and os.path.exists(a.reorder):
        slow = collections.Counter()
        print("reordering (packets held in the slow class, then the kernel's counters):")
        for l in open(a.reorder):
            w = l.split()
            if "slow" in w:
                slow[w[0]] += int(w[5])
            else:
                print("  " + l.rstrip())
        print("  slow class: " + ", ".join(f"{d} {n} packets" for d, n in sorted(slow.items())))
    if a.leaks and os.path.exists(a.leaks):
        print("leak checks (fds start end, rss KiB start end limit):")
        for l in open(a.leaks):
            print("  " + l.rstrip())
    print("verdict: " + ("PASS" if not fail else "FAIL: " + "; ".join(fail)))
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
