#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# An app that moves bytes in steps and waits between them with its connection open, so a test
# can read live counters at known points: against netapp.py's ECHO server it sends --step bytes,
# reads the same bytes back (checked by SHA-256), writes "STEP i SENT s RECV r" to --status
# (s counts the "ECHO\n" header too: what the tunnel carried up), then waits for the file
# --go.i before the next step. At the end it half-closes and prints one JSON line:
# {"ok": 1, "sent": s, "recv": r} or {"ok": 0, "error": "..."} ("reset" if the connection was
# reset, e.g. closed by an operator).
import argparse, hashlib, json, os, random, socket, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--step", type=int, default=100000)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--status", required=True)
    ap.add_argument("--go", required=True, help="prefix of the files that release each step")
    ap.add_argument("--wait", type=float, default=60, help="longest wait for a go file")
    a = ap.parse_args()
    rnd = random.Random(7)
    sent = recv = 0
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.wait)
        s.sendall(b"ECHO\n")
        sent = 5
        with open(a.status, "a") as st:
            st.write(f"PORT {s.getsockname()[1]}\n")
        for i in range(1, a.steps + 1):
            data = rnd.randbytes(a.step)
            s.sendall(data)
            sent += len(data)
            got = b""
            while len(got) < len(data):
                d = s.recv(len(data) - len(got))
                if not d:
                    raise ConnectionError("EOF before the echo was whole")
                got += d
            if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
                raise ValueError(f"step {i}: echo differs")
            recv += len(got)
            with open(a.status, "a") as st:
                st.write(f"STEP {i} SENT {sent} RECV {recv}\n")
            deadline = time.monotonic() + a.wait
            while not os.path.exists(f"{a.go}.{i}"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {a.go}.{i}")
                time.sleep(0.05)
        s.shutdown(socket.SHUT_WR)
        if s.recv(1):
            raise ValueError("bytes after the last echo")
        print(json.dumps({"ok": 1, "sent": sent, "recv": recv}))
    except (ConnectionResetError, BrokenPipeError):
        print(json.dumps({"ok": 0, "error": "reset", "sent": sent, "recv": recv}))
    except Exception as e:
        print(json.dumps({"ok": 0, "error": f"{type(e).__name__}: {e}", "sent": sent,
                          "recv": recv}))
    sys.exit(0)


if __name__ == "__main__":
    main()
