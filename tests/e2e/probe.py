#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Failover probe for ntun's end-to-end tests: opens a new connection every --every seconds
# (one at a time) until --duration has passed, each a netapp GET checked by SHA-256, and prints
# one JSON line per attempt: {"t0": start, "t1": end (wall clock, seconds), "ok": bool}.
# Wall clock, so that a test can compare the times with a `date +%s.%N` of its own.
import argparse, hashlib, json, os, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netapp import gen_hash, recv_all  # noqa: E402


def attempt(host, port, size, seed, timeout):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(f"GET {size} {seed}\n".encode())
        h = hashlib.sha256()
        n = recv_all(s, h)
        s.close()
        return n == size and h.hexdigest() == gen_hash(size, seed), ""
    except OSError as e:
        return False, type(e).__name__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--every", type=float, default=0.02)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=1.5)
    a = ap.parse_args()
    end = time.monotonic() + a.duration
    seed = 1
    while time.monotonic() < end:
        t0 = time.time()
        ok, err = attempt(a.host, a.port, a.size, seed, a.timeout)
        print(json.dumps({"t0": round(t0, 4), "t1": round(time.time(), 4), "ok": ok,
                          "error": err}), flush=True)
        seed += 1
        time.sleep(a.every)


if __name__ == "__main__":
    main()
