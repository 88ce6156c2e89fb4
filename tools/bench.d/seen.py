#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# tools/bench's witness of what each hop negotiated, read off the wire rather than assumed from
# a configuration: run inside one of the benchmark's namespaces (a relay every hop crosses), it
# captures TCP on all that namespace's interfaces for a while (AF_PACKET) and prints one JSON
# line per hop and handshake it saw:
#   TLS: the ServerHello's cipher suite and selected version (TLS 1.3 sends both in clear);
#   SSH: the cipher both KEXINITs agree on, as RFC 4253 7.1 picks it (the client's first that
#        the server also lists), for each direction.
# Stops after --seconds or on SIGTERM. Needs CAP_NET_RAW (the benchmark runs as root).
import argparse, json, select, signal, socket, struct, sys, time

SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
          0x1303: "TLS_CHACHA20_POLY1305_SHA256", 0x1304: "TLS_AES_128_CCM_SHA256",
          0xc02f: "ECDHE-RSA-AES128-GCM-SHA256", 0xc030: "ECDHE-RSA-AES256-GCM-SHA384",
          0xc02b: "ECDHE-ECDSA-AES128-GCM-SHA256", 0xc02c: "ECDHE-ECDSA-AES256-GCM-SHA384"}
VERSIONS = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1", 0x0301: "TLSv1"}


def server_hello(p):
    """(version, suite) from a TLS record holding a ServerHello, or None."""
    if len(p) < 48 or p[0] != 0x16 or p[5] != 0x02:
        return None
    legacy = struct.unpack(">H", p[9:11])[0]
    i = 43
    i += 1 + p[i]  # session id
    if i + 3 > len(p):
        return None
    suite = struct.unpack(">H", p[i:i + 2])[0]
    i += 3  # suite, compression
    version = legacy
    if i + 2 <= len(p):
        end = min(len(p), i + 2 + struct.unpack(">H", p[i:i + 2])[0])
        i += 2
        while i + 4 <= end:
            t, n = struct.unpack(">HH", p[i:i + 4])
            if t == 0x002b and n == 2:  # supported_versions
                version = struct.unpack(">H", p[i + 4:i + 6])[0]
            i += 4 + n
    return VERSIONS.get(version, hex(version)), SUITES.get(suite, hex(suite))


def kexinit(stream):
    """The name-lists of the first SSH packet after the banner, if it is a KEXINIT."""
    nl = stream.find(b"\r\n")
    if not stream.startswith(b"SSH-") or nl < 0:
        return None
    p = stream[nl + 2:]
    if len(p) < 6:
        return None
    n, pad, kind = struct.unpack(">IBB", p[:6])
    if kind != 20 or len(p) < 4 + n:
        return None
    i, lists = 6 + 16, []
    for _ in range(10):
        m = struct.unpack(">I", p[i:i + 4])[0]
        lists.append(p[i + 4:i + 4 + m].decode().split(","))
        i += 4 + m
    return lists


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--ssh-port", type=int, default=22)
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    print("seen.py: capturing", file=sys.stderr, flush=True)
    printed = set()
    ssh = {}  # (client, server) -> {"c": {seq: bytes}, "s": {seq: bytes}}
    t_end = time.monotonic() + a.seconds
    while not stop and time.monotonic() < t_end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        f = s.recv(70000)
        if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        ihl = (f[14] & 15) * 4
        ip = f[14:]
        total = struct.unpack(">H", ip[2:4])[0] or len(ip)
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        pay = tcp[(tcp[12] >> 4) * 4:]
        if not pay:
            continue
        src = f"{socket.inet_ntoa(ip[12:16])}:{sport}"
        dst = f"{socket.inet_ntoa(ip[16:20])}:{dport}"
        sh = server_hello(pay)
        if sh:
            key = (dst.split(":")[0], src)
            if key not in printed:
                printed.add(key)
                print(json.dumps({"client": dst.split(":")[0], "server": src, "proto": sh[0],
                                  "suite": sh[1]}), flush=True)
            continue
        if a.ssh_port in (sport, dport):
            side = "s" if sport == a.ssh_port else "c"
            key = (dst, src) if side == "s" else (src, dst)
            if key in printed:
                continue
            e = ssh.setdefault(key, {"c": {}, "s": {}})
            e[side].setdefault(seq, pay)
            lists = {}
            for k in "cs":
                if e[k]:
                    segs = sorted(e[k].items())
                    buf, want = b"", segs[0][0]
                    for q, b in segs:
                        if q == want:
                            buf += b
                            want += len(b)
                    lists[k] = kexinit(buf)
            if lists.get("c") and lists.get("s"):
                c, sv = lists["c"], lists["s"]
                pick = [next((x for x in c[i] if x in sv[i]), "none") for i in (2, 3)]
                printed.add(key)
                print(json.dumps({"client": key[0].split(":")[0], "server": key[1],
                                  "proto": "SSH-2.0", "suite": pick[0] if pick[0] == pick[1]
                                  else f"{pick[0]} / {pick[1]}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
