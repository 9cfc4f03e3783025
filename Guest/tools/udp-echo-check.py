#!/usr/bin/env python3
"""UDP echo check against the guest kit's test=net (port 7).

usage: udp-echo-check.py IP PORT COUNT [--window W] [--timeout S] [--no-quit]

Sends COUNT datagrams with sizes cycling through 1..1472 bytes (mixed:
a stride walk plus the edges 1, 2, 1471, 1472), each with deterministic
pseudo-random content, keeping up to W (default 16) outstanding. Every
reply must equal one outstanding datagram byte for byte. A datagram
without a reply after S seconds (default 1) is sent again, at most 3
times. Then it sends "QUIT" (unless --no-quit) and waits briefly for its
echo. Prints one summary line; exit 0 only if every datagram came back
intact and nothing unexpected arrived.
"""
import argparse
import hashlib
import select
import socket
import sys
import time

MAX_PAYLOAD = 1472  # 1500 MTU - 20 IP - 8 UDP: never fragmented


def sizes(count):
    edges = [1, 2, 1471, 1472]
    for i in range(count):
        if i < len(edges):
            yield edges[i]
        else:
            yield 1 + (i * 613) % MAX_PAYLOAD  # 613 is coprime to 1472: visits every size


def payload(i, size):
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(b"kit-echo-%d-%d" % (i, block)).digest()
        block += 1
    return bytes(out[:size])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--no-quit", action="store_true")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect((a.ip, a.port))
    s.setblocking(False)

    todo = list(enumerate(sizes(a.count)))
    todo.reverse()
    pending = {}   # payload bytes -> [index, sent_at, tries]
    done = set()   # payloads already matched (late duplicates are not errors)
    ok = dup = bad = lost = resent = 0
    nbytes = 0
    t0 = time.monotonic()

    while todo or pending:
        while todo and len(pending) < a.window:
            i, n = todo.pop()
            p = payload(i, n)
            pending[p] = [i, time.monotonic(), 1]
            s.send(p)
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:  # ICMP port unreachable
                    break
                if data in pending:
                    del pending[data]
                    done.add(data)
                    ok += 1
                    nbytes += len(data)
                elif data in done:
                    dup += 1
                else:
                    bad += 1
                    if bad <= 5:
                        print("unexpected reply: %d bytes %r..." % (len(data), data[:16]), file=sys.stderr)
        now = time.monotonic()
        for p, st in list(pending.items()):
            if now - st[1] > a.timeout:
                if st[2] >= 4:
                    del pending[p]
                    lost += 1
                    if lost <= 5:
                        print("lost: index %d size %d" % (st[0], len(p)), file=sys.stderr)
                else:
                    st[1] = now
                    st[2] += 1
                    resent += 1
                    s.send(p)

    elapsed = time.monotonic() - t0
    quit_echo = "-"
    if not a.no_quit:
        s.send(b"QUIT")
        quit_echo = "no"
        end = time.monotonic() + 2
        while time.monotonic() < end:
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            try:
                data = s.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            if data == b"QUIT":
                quit_echo = "yes"
                break
    passed = ok == a.count and bad == 0 and lost == 0
    print("udp-echo-check %s sent=%d ok=%d lost=%d bad=%d dup=%d resent=%d bytes=%d seconds=%.3f rate=%.0f/s quit_echo=%s"
          % ("pass" if passed else "fail", a.count, ok, lost, bad, dup, resent, nbytes, elapsed,
             ok / elapsed if elapsed > 0 else 0, quit_echo))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
