#!/usr/bin/env python3
"""bench/idle_conns.py - broker memory per idle connection.

Opens N connections (guest/guest, each with one open channel), then reads
the broker's RSS from /proc before and after and prints bytes per
connection.  Usage: idle_conns.py HOST:PORT BROKER_PID [N=2000]
Raw sockets and hand-built frames: no client library, so the number is the
broker's alone.  Not a test; nothing here runs under make check.
"""
import socket
import struct
import sys
import time


def frame(ftype, ch, payload):
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def method(ch, cls, mth, args=b""):
    return frame(1, ch, struct.pack(">HH", cls, mth) + args)


def shortstr(s):
    return bytes([len(s)]) + s


def longstr(s):
    return struct.pack(">I", len(s)) + s


def read_frame(s, buf):
    while True:
        if len(buf) >= 7:
            size = struct.unpack(">I", buf[3:7])[0]
            if len(buf) >= 8 + size:
                f = bytes(buf[: 8 + size])
                del buf[: 8 + size]
                return f
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d


def open_conn(host, port):
    s = socket.create_connection((host, port))
    buf = bytearray()
    s.sendall(b"AMQP\x00\x00\x09\x01")
    read_frame(s, buf)  # start
    resp = b"\x00guest\x00guest"
    s.sendall(method(0, 10, 11, longstr(b"") + shortstr(b"PLAIN") + longstr(resp) + shortstr(b"en_US")))
    read_frame(s, buf)  # tune
    s.sendall(method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0)))
    s.sendall(method(0, 10, 40, shortstr(b"/") + shortstr(b"") + b"\x00"))
    read_frame(s, buf)  # open-ok
    s.sendall(method(1, 20, 10, shortstr(b"")))
    read_frame(s, buf)  # channel.open-ok
    return s


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    pid = int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    warm = [open_conn(host, int(port)) for _ in range(50)]  # allocator warm-up
    for s in warm:
        s.close()
    time.sleep(0.5)
    before = rss(pid)
    conns = [open_conn(host, int(port)) for _ in range(n)]
    time.sleep(0.5)
    after = rss(pid)
    print(f"{n} idle connections (one channel each): {(after - before) / n:.0f} bytes each "
          f"(RSS {before} -> {after})")
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
