#!/usr/bin/env python3
"""Host side of the guest kit's bench=net.

  udp-bench.py recv PORT [--idle S] [--max-seconds S] [--check SIZE:SEG]
      Count UDP datagrams on PORT (all addresses) until none arrived for
      S seconds (default 2) after the first one. Use with bench=net dir=tx.
      --check: each datagram must be one of the SEG-byte pieces of the
      guest kit's SIZE-byte payload ('a' + i % 26) as bench=net seg=SEG
      sends it: its length and bytes those of the piece at its place in
      the arrival order; the summary gains bad=N (pieces that were not).
  udp-bench.py send IP PORT SIZE COUNT [--rate PPS]
      Send COUNT datagrams of SIZE payload bytes to IP:PORT as fast as
      possible (or at PPS). Use with bench=net dir=rx.

Prints one summary line: count, bytes, pps and Mbit/s (payload, first to
last datagram).
"""
import argparse
import socket
import sys
import time


def pieces(check):
    """The datagrams of one send of bench=net size=SIZE seg=SEG, in order."""
    size, seg = (int(v) for v in check.split(":"))
    payload = bytes(ord("a") + i % 26 for i in range(size))
    return [payload[i:i + seg] for i in range(0, size, seg)]


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # root: past net.core.rmem_max, so a burst is not dropped here (SO_RCVBUFFORCE is 33 on Linux)
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
    except PermissionError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", a.port))
    s.settimeout(a.max_seconds)
    expected = pieces(a.check) if a.check else None
    n = nbytes = bad = 0
    t_first = t_last = None
    try:
        data = s.recv(65536)
        t_first = t_last = time.monotonic()
        s.settimeout(a.idle)
        while True:
            if expected is not None and data != expected[n % len(expected)]:
                bad += 1
            n += 1
            nbytes += len(data)
            data = s.recv(65536)
            t_last = time.monotonic()
    except socket.timeout:
        pass
    dt = (t_last - t_first) if n > 1 else 0
    print("udp-bench recv count=%d bytes=%d seconds=%.3f pps=%.0f mbps=%.2f%s"
          % (n, nbytes, dt, (n - 1) / dt if dt else 0, nbytes * 8 / dt / 1e6 if dt else 0,
             " bad=%d" % bad if expected is not None else ""))
    return 0 if n else 1


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.connect((a.ip, a.port))
    p = bytes((i * 7) & 0xff for i in range(a.size))
    gap = 1.0 / a.rate if a.rate else 0
    t0 = time.monotonic()
    errors = 0
    for i in range(a.count):
        try:
            s.send(p)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            errors += 1
        if gap:
            while time.monotonic() < t0 + (i + 1) * gap:
                pass
    dt = time.monotonic() - t0
    print("udp-bench send count=%d size=%d seconds=%.3f pps=%.0f mbps=%.2f errors=%d"
          % (a.count, a.size, dt, a.count / dt, a.count * a.size * 8 / dt / 1e6, errors))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("recv")
    r.add_argument("port", type=int)
    r.add_argument("--idle", type=float, default=2.0)
    r.add_argument("--max-seconds", type=float, default=60.0)
    r.add_argument("--check", metavar="SIZE:SEG")
    w = sub.add_parser("send")
    w.add_argument("ip")
    w.add_argument("port", type=int)
    w.add_argument("size", type=int)
    w.add_argument("count", type=int)
    w.add_argument("--rate", type=float, default=0)
    a = ap.parse_args()
    return recv(a) if a.mode == "recv" else send(a)


if __name__ == "__main__":
    sys.exit(main())
