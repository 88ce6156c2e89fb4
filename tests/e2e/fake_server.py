#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A hand-made ntun-server for one proxy (TLS server with the server certificate, HTTP/2
# client on the connection the proxy dialed). It opens Connector/Control, waits for the
# registration, then sends GOAWAY and keeps its side open, as a server that refuses further
# streams would. It reports, as one JSON line, whether and when the proxy dialed a new
# connection and when it closed the old one (a connection left half-closed never closes).
# With --dial DST,... it asks instead, after the registration, for one Connector/Dial per
# destination ("GET 100 1" of netapp) and reports how each ended: grpc-status, ntun-error and
# the bytes that came back (a proxy must refuse what lies outside its managed CIDRs).
import argparse, json, os, select, socket, ssl, sys, time

import h2.config, h2.connection, h2.events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--wait", type=float, default=8)
    ap.add_argument("--dial", default="", help="destinations to ask the proxy for")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from h2peer import listen, server_tls

    ctx = server_tls(a.certs)
    ls = listen(a.bind, a.port)
    c1 = ctx.wrap_socket(ls.accept()[0], server_side=True)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", "ntun"),
                            (":path", "/ntun.v1.Connector/Control"),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    c1.sendall(conn.data_to_send())
    registered = False
    end = time.monotonic() + 10
    while not registered and time.monotonic() < end:
        d = c1.recv(65536)
        if not d:
            break
        for ev in conn.receive_data(d):
            if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                registered = True
        c1.sendall(conn.data_to_send())
    if a.dial:
        return dial(a, c1, conn, registered)
    conn.close_connection()  # GOAWAY(NO_ERROR); our side stays open
    c1.sendall(conn.data_to_send())
    t0 = time.monotonic()
    res = {"registered": registered, "new_connection_ms": None, "old_closed_ms": None}
    end = t0 + a.wait
    c2 = None
    while time.monotonic() < end and (res["new_connection_ms"] is None or
                                       res["old_closed_ms"] is None):
        socks = [ls] if c2 is None else []
        if res["old_closed_ms"] is None:
            socks.append(c1)
        r, _, _ = select.select(socks, [], [], 0.05)
        now_ms = round((time.monotonic() - t0) * 1000)
        if ls in r:
            c2, _ = ls.accept()
            res["new_connection_ms"] = now_ms
        if c1 in r:
            try:
                d = c1.recv(65536)
            except (OSError, ssl.SSLError):
                d = b""
            if not d:
                res["old_closed_ms"] = now_ms
    print(json.dumps(res), flush=True)


def dial(a, c, conn, registered):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from h2peer import Deframer, chunk

    calls = {}
    for dst in a.dial.split(","):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                (":authority", "ntun"), (":path", "/ntun.v1.Connector/Dial"),
                                ("content-type", "application/grpc"), ("te", "trailers"),
                                ("ntun-dst", dst)])
        conn.send_data(sid, chunk(b"GET 100 1\n"))
        calls[sid] = {"dst": dst, "status": None, "error": None, "bytes": 0, "df": Deframer()}
    c.sendall(conn.data_to_send())
    end = time.monotonic() + a.wait
    c.settimeout(0.2)
    while time.monotonic() < end and any(v["status"] is None for v in calls.values()):
        try:
            d = c.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        for ev in conn.receive_data(d):
            v = calls.get(getattr(ev, "stream_id", None))
            if v is None:
                continue
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                v["bytes"] += sum(len(p) for p in v["df"].feed(ev.data))
            elif isinstance(ev, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                for k, val in ev.headers:
                    k = k.decode() if isinstance(k, bytes) else k
                    val = val.decode() if isinstance(val, bytes) else val
                    if k == "grpc-status":
                        v["status"] = int(val)
                    elif k == "ntun-error":
                        v["error"] = val
            elif isinstance(ev, h2.events.StreamReset):
                v["status"] = "rst"
        c.sendall(conn.data_to_send())
    out = [{k: v[k] for k in ("dst", "status", "error", "bytes")} for v in calls.values()]
    print(json.dumps({"registered": registered, "dials": out}), flush=True)


if __name__ == "__main__":
    main()
