#!/usr/bin/env python3
"""UDP ping-pong against the guest kit's echo server (port 7 in test=net).

  udp-pingpong.py IP [--port 7] [--count N] [--size 64] [--warmup W] [--quit]

Sends one datagram, waits for its echo, and repeats: N sequential round trips
after W warm-up ones (ARP, caches). A round trip whose echo does not come back
within --timeout is counted as lost and retried with a new datagram. Prints one
line: `udp-pingpong n=.. size=.. lost=.. min_us=.. p10_us=.. median_us=..
p90_us=.. max_us=..`. With --quit, sends `QUIT` at the end (ends test=net).
"""
import argparse
import socket
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--quit", action="store_true")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.ip, a.port))
    s.settimeout(a.timeout)
    samples = []
    lost = 0
    seq = 0
    clock = time.perf_counter_ns
    while len(samples) < a.count:
        seq += 1
        payload = seq.to_bytes(8, "little") * (a.size // 8) + b"x" * (a.size % 8)
        t0 = clock()
        s.send(payload)
        try:
            while True:
                data = s.recv(65536)
                if data == payload:
                    break  # a late echo of an earlier (lost) round is skipped
        except socket.timeout:
            lost += 1
            if lost > 50:
                print("udp-pingpong fail lost=%d" % lost)
                return 1
            continue
        dt = (clock() - t0) / 1000.0
        if seq > a.warmup:
            samples.append(dt)
    if a.quit:
        s.send(b"QUIT")
    samples.sort()
    q = lambda f: samples[min(len(samples) - 1, int(f * len(samples)))]
    print("udp-pingpong n=%d size=%d lost=%d min_us=%.1f p10_us=%.1f median_us=%.1f p90_us=%.1f max_us=%.1f"
          % (len(samples), a.size, lost, samples[0], q(0.1), statistics.median(samples), q(0.9), samples[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
