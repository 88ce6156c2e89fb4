#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A hand-made peer that tries to act as a proxy with a certificate of another role. It tries
# both HTTP/2 sides a proxy could take and prints REJECTED only if the server refused both:
#  1) as a proxy does (HTTP/2 server on the connection it dialed): the server must close;
#  2) as an HTTP/2 client calling Connector/Control with a Registration: must get an error.
import argparse, socket, ssl, struct, sys, time

import h2.config, h2.connection, h2.events


def tls(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    s = socket.create_connection((args.server, args.port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost")


def as_h2_server(args):
    s = tls(args)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                return "server closed the connection"
    except (ssl.SSLError, ConnectionResetError) as e:
        return f"server ended the connection ({e})"
    except socket.timeout:
        return None
    return None


def registration(proxy_id, cidr):
    def field(n, b):
        return bytes([n << 3 | 2, len(b)]) + b
    reg = field(1, proxy_id.encode()) + field(2, cidr.encode())
    ev = field(1, reg)  # ProxyEvent.register
    return b"\0" + struct.pack(">I", len(ev)) + ev


def as_h2_client(args):
    s = tls(args)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", "ntun"),
                            (":path", "/ntun.v1.Connector/Control"),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    conn.send_data(sid, registration("client-1", "192.168.1.0/24"))
    s.sendall(conn.data_to_send())
    status = None
    deadline = time.monotonic() + 5
    while status is None and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            return "server closed the connection"
        for ev in conn.receive_data(d):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for k, v in ev.headers:
                    if k in (b"grpc-status", "grpc-status"):
                        status = int(v)
            if isinstance(ev, h2.events.StreamReset):
                return f"stream reset ({ev.error_code})"
        s.sendall(conn.data_to_send())
    if status is not None and status != 0:
        return f"grpc-status {status}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    args = ap.parse_args()
    r1 = as_h2_server(args)
    print(f"as HTTP/2 server: {r1 or 'NOT rejected'}")
    r2 = as_h2_client(args)
    print(f"as HTTP/2 client calling Connector/Control: {r2 or 'NOT rejected'}")
    print("REJECTED" if r1 and r2 else "ACCEPTED")
    sys.exit(0 if r1 and r2 else 1)


if __name__ == "__main__":
    main()
