#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# The attacker of test_attack_handshake.sh: many TCP connections that start a request and never
# finish it, from one or several local addresses, watched from this side.
#
#   tls   COUNT connections to a TLS port, spread over --sources round robin; each sends the
#         first byte of a ClientHello record, then (--interval > 0, slowloris) one more byte
#         every interval seconds, for --duration seconds. Records when the server closes each.
#   http  COUNT connections to an HTTP port, each sending a request line and headers one byte
#         every --interval seconds and never the blank line; a connection the server closes is
#         opened again on the next tick (as slowloris tools do). For --duration seconds.
#
# --ready FILE is written once every connection of the first round is open (or failed). The
# summary is one JSON line on stdout.
import argparse, errno, json, os, selectors, socket, time

HELLO = bytes.fromhex("160301020001" "0001fc0303") + os.urandom(1024)
HTTP = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 4000


class Conn:
    def __init__(self, src, stream):
        self.src = src
        self.stream = stream
        self.sent = 0
        self.opened = None  # monotonic time the connection was established
        self.closed = None  # monotonic time we saw the server close it
        self.next_send = 0.0
        self.sock = None


def start(sel, args, c):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    if c.src:
        s.bind((c.src, 0))
    c.sock = s
    c.sent = 0
    c.opened = c.closed = None
    s.connect_ex((args.host, args.port))
    sel.register(s, selectors.EVENT_WRITE, c)


def send_next(c, now, interval):
    try:
        c.sock.send(c.stream[c.sent : c.sent + 1])
        c.sent += 1
    except (BrokenPipeError, ConnectionResetError):
        return False
    c.next_send = now + interval if interval > 0 else float("inf")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tls", "http"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sources", default="", help="comma-separated local addresses")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--ready")
    ap.add_argument("--early", type=float, default=1.5,
                    help="report how many were still open this long after all were open")
    args = ap.parse_args()
    srcs = [s for s in args.sources.split(",") if s] or [None]
    stream = HELLO if args.mode == "tls" else HTTP
    sel = selectors.DefaultSelector()
    conns = [Conn(srcs[i % len(srcs)], stream) for i in range(args.count)]
    failed = {}  # errno name -> count of connects that failed with it
    reopened = 0
    t0 = time.monotonic()
    for c in conns:
        start(sel, args, c)
    ready_at = None
    open_early = None
    deadline = t0 + args.duration
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        pending = [c for c in conns if c.opened is None and c.closed is None]
        if ready_at is None and not pending:
            ready_at = now
            if args.ready:
                with open(args.ready, "w") as f:
                    f.write("%d\n" % sum(1 for c in conns if c.opened is not None))
        if ready_at is not None and open_early is None and now >= ready_at + args.early:
            open_early = sum(1 for c in conns if c.opened is not None and c.closed is None)
        nexts = [c.next_send for c in conns
                 if (c.opened is not None and c.closed is None) or c.sock is None]
        wait = min([deadline - now, 0.2] + [max(0, t - now) for t in nexts])
        for key, ev in sel.select(wait):
            c = key.data
            now = time.monotonic()
            if c.opened is None:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(c.sock)
                if err:
                    # ECONNRESET: the server accepted, then reset it before we looked.
                    name = errno.errorcode.get(err, str(err))
                    failed[name] = failed.get(name, 0) + 1
                    c.closed = now
                    c.sock.close()
                    continue
                c.opened = now
                sel.register(c.sock, selectors.EVENT_READ, c)
                if not send_next(c, now, args.interval):
                    c.closed = now
                continue
            try:
                data = c.sock.recv(4096)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                c.closed = now
        now = time.monotonic()
        for c in conns:
            if c.closed is not None and c.sock is not None:
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
                c.sock.close()
                c.sock = None
                c.next_send = now + args.interval  # when to open it again (http)
                continue
            if c.sock is None:
                if args.mode == "http" and now >= c.next_send:
                    reopened += 1
                    start(sel, args, c)
                continue
            if c.opened is not None and c.closed is None and now >= c.next_send:
                if c.sent >= len(c.stream) or not send_next(c, now, args.interval):
                    c.closed = now
    still = [c for c in conns if c.opened is not None and c.closed is None]
    ages = sorted(round(c.closed - c.opened, 2) for c in conns
                  if c.opened is not None and c.closed is not None)
    print(json.dumps({
        "mode": args.mode,
        "count": args.count,
        "opened": sum(1 for c in conns if c.opened is not None) + reopened,
        "connect_failed": sum(failed.values()),
        "reset_at_connect": failed.get("ECONNRESET", 0),
        "failed_by": failed,
        "ready_after": round(ready_at - t0, 2) if ready_at else None,
        "open_early": open_early,
        "open_at_end": len(still),
        "closed": len(ages),
        "closed_after_1s": sum(1 for a in ages if a >= 1.0),
        "close_age_min_late": min([a for a in ages if a >= 1.0], default=None),
        "close_age_max": ages[-1] if ages else None,
        "reopened": reopened,
    }), flush=True)


if __name__ == "__main__":
    main()
