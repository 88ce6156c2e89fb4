#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Steady load for the several-proxies test: starts a GET (netapp protocol) every --every
# seconds for --seconds, each in its own thread, and writes one JSON line per connection to
# --out: start and end (CLOCK_MONOTONIC seconds, comparable with the test's own clock), and
# which of the --sites answered, judged by SHA-256 of the whole payload ("" = none: failed).
import argparse, hashlib, json, os, socket, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netapp  # noqa: E402


def one(a, i, want, out, lock):
    seed = a.seed + i
    t0 = time.monotonic()
    site, got, err = "", 0, ""
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s.sendall(f"GET {a.size} {seed}\n".encode())
        h = hashlib.sha256()
        got = netapp.recv_all(s, h)
        s.close()
        site = want[seed].get(h.hexdigest(), "") if got == a.size else ""
    except OSError as e:
        err = repr(e)
    r = {"i": i, "start": t0, "end": time.monotonic(), "site": site, "got": got, "err": err}
    with lock:
        out.write(json.dumps(r) + "\n")
        out.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--sites", required=True, help="comma-separated --site names")
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    n = int(a.seconds / a.every)
    want = {a.seed + i: {netapp.gen_hash(a.size, netapp.site_seed(s, a.seed + i)): s
                         for s in a.sites.split(",")} for i in range(n)}
    lock = threading.Lock()
    threads = []
    with open(a.out, "w") as out:
        print("started", flush=True)
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i * a.every - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=one, args=(a, i, want, out, lock))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    print("done", flush=True)


if __name__ == "__main__":
    main()
