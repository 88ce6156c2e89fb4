#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An independent gRPC peer for ntun's interop test: Debian's python3-grpcio calling
ntun.v1.Relay/Connect on ntun-server with a client certificate, tunnelling HTTP/1.0 through
Chunk messages cut in odd sizes. Also the tiny HTTP server on the far side.

Every subcommand prints one JSON line with what it saw (status code name, trailing metadata,
sha256 of the bytes that came back) and exits 0 if it ran; the shell test compares values.
It needs ntun_pb2.py / ntun_pb2_grpc.py from grpc_tools.protoc in --stubs.

  grpcio_client.py httpd --bind ADDR --port N --dir DIR
  grpcio_client.py get    --target H:P --certs D --dst IP:PORT --path /f [--gzip] [--count N]
  grpcio_client.py post   --target H:P --certs D --dst IP:PORT --file F [--gzip] [--pause S]
  grpcio_client.py status --target H:P --certs D [--dst IP:PORT | --no-dst] [--method /x.Y/Z]
  grpcio_client.py badca  --target H:P --certs D --other D2 --dst IP:PORT --path /f
"""
import argparse
import concurrent.futures
import hashlib
import http.server
import json
import os
import sys
import threading
import time

# Odd piece sizes for the request stream: message boundaries must carry no meaning.
SIZES = (1, 7, 3, 13, 5, 1021, 2, 65537, 11, 4099)


def load_stubs(path):
    sys.path.insert(0, path)
    global grpc, ntun_pb2, ntun_pb2_grpc
    import grpc
    import ntun_pb2
    import ntun_pb2_grpc


def out(**kw):
    print(json.dumps(kw, sort_keys=True), flush=True)


# ---- the web side -------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    root = "."

    def log_message(self, fmt, *args):
        sys.stderr.write("httpd: " + (fmt % args) + "\n")

    def do_GET(self):
        name = os.path.basename(self.path)
        try:
            with open(os.path.join(self.root, name), "rb") as f:
                body = f.read()
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        # Reads exactly Content-Length bytes and answers with their sha256.
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        left = n
        while left:
            b = self.rfile.read(min(left, 1 << 16))
            if not b:
                break
            h.update(b)
            left -= len(b)
        reply = ("%s %d\n" % (h.hexdigest(), n - left)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class Httpd(http.server.ThreadingHTTPServer):
    # The default backlog of 5 overflows under 20 concurrent calls on a slow (sanitizer) run,
    # and the web host then resets connections: that would be the test's fault, not ntun's.
    request_queue_size = 256


def cmd_httpd(a):
    Handler.root = a.dir
    srv = Httpd((a.bind, a.port), Handler)
    sys.stderr.write("httpd: listening on %s:%d\n" % (a.bind, a.port))
    sys.stderr.flush()
    srv.serve_forever()


# ---- gRPC side ----------------------------------------------------------------------------

def channel(a, certs=None):
    certs = certs or a.certs
    with open(os.path.join(a.certs, "ca", "cert.pem"), "rb") as f:
        ca = f.read()  # the server's CA, whatever client certificate we present
    with open(os.path.join(certs, "client", "key.pem"), "rb") as f:
        key = f.read()
    with open(os.path.join(certs, "client", "cert.pem"), "rb") as f:
        cert = f.read()
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    opts = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
    return grpc.secure_channel(a.target, creds, options=opts)


def pieces(data, pause=0.0):
    """data as Chunks of odd sizes; with pause, the second half follows after that many
    seconds of silence (the tunnel stays open and idle meanwhile)."""
    i = k = 0
    half = len(data) // 2 if pause else -1
    while i < len(data):
        if half >= 0 and i >= half:
            sys.stderr.write("pausing %.1f s\n" % pause)
            sys.stderr.flush()
            time.sleep(pause)
            half = -1
        n = SIZES[k % len(SIZES)]
        k += 1
        yield ntun_pb2.Chunk(data=data[i:i + n])
        i += n


def rpc_error(e):
    md = {k: v for k, v in (e.trailing_metadata() or ())}
    return {"code": e.code().name, "details": e.details(), "ntun_error": md.get("ntun-error")}


def http_parse(resp):
    head, sep, body = resp.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1") if head else ""
    return status, body, bool(sep)


def one_call(stub, dst, request, gzip, timeout, hold=None, pause=0.0):
    """Sends request in odd pieces, returns (response bytes, chunks, error dict or None).
    hold: an Event to wait on after the first response chunk (to overlap other calls)."""
    md = (("ntun-dst", dst),) if dst else ()
    comp = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
    got = bytearray()
    n = 0
    try:
        for c in stub.Connect(pieces(request, pause), metadata=md, compression=comp, timeout=timeout):
            got += c.data
            n += 1
            if hold is not None and n == 1:
                hold.wait(timeout)
    except grpc.RpcError as e:
        return bytes(got), n, rpc_error(e)
    return bytes(got), n, None


def get_request(a):
    host = a.dst.rsplit(":", 1)[0]
    return ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: grpcio-interop\r\n\r\n"
            % (a.path, host)).encode()


def cmd_get(a):
    ch = channel(a)
    stub = ntun_pb2_grpc.RelayStub(ch)
    req = get_request(a)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.count)) as ex:
        futs = [ex.submit(one_call, stub, a.dst, req, a.gzip, a.timeout) for _ in range(a.count)]
        for f in futs:
            resp, n, err = f.result()
            status, body, ok = http_parse(resp)
            results.append({"status": status, "sha256": hashlib.sha256(body).hexdigest(),
                            "bytes": len(body), "chunks": n, "error": err, "complete": ok})
    ch.close()
    shas = sorted({r["sha256"] for r in results})
    out(calls=len(results), sha256=shas[0] if len(shas) == 1 else shas,
        statuses=sorted({r["status"] for r in results}),
        errors=[r["error"] for r in results if r["error"]],
        bytes=results[0]["bytes"], chunks=results[0]["chunks"])


def cmd_post(a):
    with open(a.file, "rb") as f:
        body = f.read()
    host = a.dst.rsplit(":", 1)[0]
    req = ("POST /sha256 HTTP/1.0\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
           % (host, len(body))).encode() + body
    ch = channel(a)
    resp, n, err = one_call(ntun_pb2_grpc.RelayStub(ch), a.dst, req, a.gzip, a.timeout,
                            pause=a.pause)
    ch.close()
    status, reply, _ = http_parse(resp)
    parts = reply.decode("latin-1").split()
    out(status=status, server_sha256=parts[0] if parts else None,
        server_bytes=int(parts[1]) if len(parts) > 1 else None,
        sent_sha256=hashlib.sha256(body).hexdigest(), error=err, chunks=n)


def cmd_status(a):
    ch = channel(a)
    md = () if a.no_dst else (("ntun-dst", a.dst),)
    call = ch.stream_stream(a.method, request_serializer=ntun_pb2.Chunk.SerializeToString,
                            response_deserializer=ntun_pb2.Chunk.FromString)
    got = bytearray()
    res = {"code": "OK", "details": None, "ntun_error": None}
    try:
        for c in call(pieces(b"GET / HTTP/1.0\r\n\r\n"), metadata=md, timeout=a.timeout):
            got += c.data
    except grpc.RpcError as e:
        res = rpc_error(e)
    ch.close()
    out(received=len(got), **res)


def cmd_badca(a):
    """A good call is mid-transfer (held after its first response chunk) while a client with a
    certificate from another CA tries the same method; then the good call finishes."""
    good_ch = channel(a)
    stub = ntun_pb2_grpc.RelayStub(good_ch)
    hold = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(one_call, stub, a.dst, get_request(a), False, a.timeout, hold)
        bad_ch = channel(a, certs=a.other)
        try:
            resp, n, err = one_call(ntun_pb2_grpc.RelayStub(bad_ch), a.dst, get_request(a),
                                    False, a.timeout)
            bad = err or {"code": "OK", "bytes": len(resp)}
        finally:
            bad_ch.close()
            hold.set()
        resp, n, err = fut.result()
    good_ch.close()
    status, body, _ = http_parse(resp)
    out(bad=bad, good_status=status, good_sha256=hashlib.sha256(body).hexdigest(),
        good_error=err, good_bytes=len(body))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("httpd")
    h.add_argument("--bind", required=True)
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--dir", required=True)
    for name in ("get", "post", "status", "badca"):
        s = sub.add_parser(name)
        s.add_argument("--stubs", required=True, help="directory with ntun_pb2*.py")
        s.add_argument("--target", required=True)
        s.add_argument("--certs", required=True, help="ntun-gencerts output (ca/, client/)")
        s.add_argument("--dst")
        s.add_argument("--timeout", type=float, default=60)
        if name in ("get", "badca"):
            s.add_argument("--path", default="/")
        if name in ("get", "post"):
            s.add_argument("--gzip", action="store_true")
        if name == "get":
            s.add_argument("--count", type=int, default=1)
        if name == "post":
            s.add_argument("--file", required=True)
            s.add_argument("--pause", type=float, default=0.0,
                           help="seconds of silence after half of the request")
        if name == "status":
            s.add_argument("--no-dst", action="store_true")
            s.add_argument("--method", default="/ntun.v1.Relay/Connect")
        if name == "badca":
            s.add_argument("--other", required=True, help="gencerts output of another CA")
    a = p.parse_args()
    if a.cmd == "httpd":
        cmd_httpd(a)
        return
    load_stubs(a.stubs)
    {"get": cmd_get, "post": cmd_post, "status": cmd_status, "badca": cmd_badca}[a.cmd](a)


if __name__ == "__main__":
    main()
