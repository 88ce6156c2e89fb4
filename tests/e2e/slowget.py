#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A GET that stops after 64 KiB until a file appears, then reads on, and says how it ended.

Usage: slowget.py GO_FILE CONN_TAG SIZE TIMEOUT
Asks the echo server at 100.64.1.5:80 (netapp.py serve) for SIZE bytes as connection CONN_TAG,
prints "reading" once 64 KiB arrived, waits for GO_FILE, then reads to the end and prints
"eof after N bytes" or "<exception name> after N bytes" (what the app saw).
"""
import os
import socket
import sys
import time

go, tag, size, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection(("100.64.1.5", 80), timeout=timeout)
s.sendall(b"%s get 0 %d 5\n" % (tag.encode(), size))
n = 0
while n < 65536:
    n += len(s.recv(65536))
print("reading", flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
try:
    while True:
        d = s.recv(65536)
        if not d:
            print(f"eof after {n} bytes", flush=True)
            break
        n += len(d)
except OSError as e:
    print(f"{type(e).__name__} after {n} bytes", flush=True)
