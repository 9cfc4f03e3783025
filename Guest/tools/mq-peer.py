#!/usr/bin/env python3
"""The host side of the guest kit's test=net-mq, run inside the test's network
namespace: echoes every UDP datagram back to its sender, and answers "QUEUES"
with "QUEUES n", n being the transmit queues the namespace's tap has (the
kernel lists one per attached queue of a multi-queue tap). Stops after
--seconds or a "QUIT"; prints "echoed=N queries=N" at the end.

    mq-peer.py PORT [--seconds S]
"""
import argparse
import glob
import os
import socket
import time


def tap_queues():
    """Transmit queues of the namespace's tap (the one interface with tun_flags)."""
    taps = [os.path.dirname(p) for p in glob.glob("/sys/class/net/*/tun_flags")]
    if len(taps) != 1:
        return -len(taps)
    return len(glob.glob(os.path.join(taps[0], "queues", "tx-*")))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", args.port))
    deadline = time.monotonic() + args.seconds
    echoed = queries = 0
    print("listening", flush=True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, sender = sock.recvfrom(2048)
        except socket.timeout:
            break
        if data == b"QUIT":
            break
        if data == b"QUEUES":
            queries += 1
            sock.sendto(b"QUEUES %d" % tap_queues(), sender)
        else:
            echoed += 1
            sock.sendto(data, sender)
    print("echoed=%d queries=%d" % (echoed, queries), flush=True)


if __name__ == "__main__":
    main()
