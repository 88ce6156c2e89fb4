#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A hand-made ntun-server for one client (TLS server with the server certificate, HTTP/2
# server) that drains the way a loaded server may: GOAWAY first, its Drain notice (deadline
# --deadline-ms) on the client's Attach call only once --go-file exists (the test creates it
# when the client has moved to its other server), and the one tunnel's bytes (--size, a
# fixed pattern) in two halves around --hold seconds. A client that keeps the draining
# connection for the announced deadline delivers all of them; one that lost the notice
# closes it at its own drain timeout and the app sees a reset. One JSON line at the end says
# what was sent and when.
import argparse, json, os, socket, ssl, sys, time

import h2.config, h2.connection, h2.events, h2.exceptions, hyperframe.frame

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2peer import chunk, listen, server_tls, varint  # noqa: E402


def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


def drain_msg(deadline_ms, reason):
    """A gRPC message carrying ServerEvent{drain: Drain{deadline_ms, reason}}."""
    r = reason.encode()
    drain = b"\x08" + varint(deadline_ms) + b"\x12" + varint(len(r)) + r
    ev = b"\x1a" + varint(len(drain)) + drain
    return b"\x00" + len(ev).to_bytes(4, "big") + ev


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--size", type=int, default=100000)
    ap.add_argument("--deadline-ms", type=int, default=20000)
    ap.add_argument("--hold", type=float, default=8)
    ap.add_argument("--go-file", required=True)
    a = ap.parse_args()
    ctx = server_tls(a.certs)
    ls = listen(a.bind, a.port)
    c = ctx.wrap_socket(ls.accept()[0], server_side=True)
    ls.close()  # nothing else connects here: the client moves to its other server
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    c.sendall(conn.data_to_send())
    data = pattern(a.size)
    half = a.size // 2
    attach = tunnel = None
    res = {"attached": False, "tunnel": False, "goaway_s": None, "drain_s": None,
           "rest_s": None, "sent": 0, "reset_by_client": False}
    t0 = time.monotonic()
    state = "wait"  # wait -> goaway -> drained -> done
    c.settimeout(0.05)
    end = t0 + a.hold + 30
    while time.monotonic() < end and state != "done":
        try:
            d = c.recv(65536)
            if not d:
                break
        except socket.timeout:
            d = b""
        except (OSError, ssl.SSLError):
            break
        try:
            evs = conn.receive_data(d) if d else []
        except h2.exceptions.ProtocolError as e:  # e.g. a reset of a call already ended
            res.setdefault("protocol_errors", []).append(repr(e)[:120])
            evs = []
        for ev in evs:
            if isinstance(ev, h2.events.RequestReceived):
                path = dict((k.decode() if isinstance(k, bytes) else k,
                             v.decode() if isinstance(v, bytes) else v)
                            for k, v in ev.headers).get(":path")
                conn.send_headers(ev.stream_id, [(":status", "200"),
                                                 ("content-type", "application/grpc")])
                if path == "/ntun.v1.Relay/Attach":
                    attach = ev.stream_id
                    res["attached"] = True
                elif path == "/ntun.v1.Relay/Connect" and tunnel is None:
                    tunnel = ev.stream_id
                    res["tunnel"] = True
                    conn.send_data(tunnel, chunk(data[:half]))
                    res["sent"] = half
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == tunnel:
                res["reset_by_client"] = True
                state = "done"
        now = time.monotonic() - t0
        if state == "wait" and tunnel is not None and attach is not None:
            # GOAWAY, and nothing yet on the Attach call: the Drain comes later. Written
            # past h2's state machine, which would refuse to send anything after it.
            out = conn.data_to_send()
            g = hyperframe.frame.GoAwayFrame(0)
            g.last_stream_id, g.error_code = tunnel, 0
            c.sendall(out + g.serialize())
            res["goaway_s"] = round(now, 3)
            state = "goaway"
        elif state == "goaway" and os.path.exists(a.go_file):
            try:
                conn.send_data(attach, drain_msg(a.deadline_ms, "late drain"))
                conn.send_headers(attach, [("grpc-status", "0")], end_stream=True)
            except h2.exceptions.H2Error as e:  # the client reset the Attach call already
                res["drain_not_sent"] = repr(e)[:120]
            res["drain_s"] = round(now, 3)
            state = "drained"
        elif state == "drained" and now - res["goaway_s"] >= a.hold:
            try:
                conn.send_data(tunnel, chunk(data[half:]))
                conn.send_headers(tunnel, [("grpc-status", "0")], end_stream=True)
                res["sent"] = a.size
            except h2.exceptions.H2Error as e:
                res["rest_not_sent"] = repr(e)[:120]
            res["rest_s"] = round(now, 3)
            state = "done"
        out = conn.data_to_send()
        if out:
            try:
                c.sendall(out)
            except (OSError, ssl.SSLError):
                break
    time.sleep(0.5)  # let the last bytes go before the socket closes
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
