#!/usr/bin/env python3
"""Check a disk image written by the guest kit's `test=blk seed=N`.

Every 8-byte little-endian word at byte offset `off` (a multiple of 8)
must hold  off ^ (seed * 0x9E3779B97F4A7C15 mod 2**64),  except:
  sectors  8-15 (bytes 4096..8191)  must be zero (WRITE_ZEROES),
  sectors 16-23 (bytes 8192..12287) are unspecified (DISCARD).

    check-blk-pattern.py IMAGE [SEED]      (SEED defaults to 1)

Exit status 0 if the image matches, 1 if not, 2 on usage errors.
"""
import struct
import sys

K = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1
ZERO = range(8 * 512, 16 * 512)
SKIP = range(16 * 512, 24 * 512)


def expected_word(off: int, seed: int) -> int:
    return (off ^ (seed * K)) & MASK


def check(path: str, seed: int) -> int:
    bad = 0
    first = None
    key = (seed * K) & MASK
    with open(path, "rb") as f:
        data = f.read()
    if len(data) % 512 or len(data) < 24 * 512:
        print(f"check-blk-pattern: {path}: size {len(data)} is not a multiple of 512 or < 24 sectors")
        return 1
    words = struct.unpack(f"<{len(data) // 8}Q", data)
    for i, w in enumerate(words):
        off = i * 8
        if off in SKIP:
            continue
        want = 0 if off in ZERO else off ^ key
        if w != want:
            bad += 1
            if first is None:
                first = (off, w, want)
    if bad:
        off, got, want = first
        print(f"check-blk-pattern: {path}: {bad} bad words; first at 0x{off:x}: got 0x{got:016x} want 0x{want:016x}")
        return 1
    print(f"check-blk-pattern: {path}: ok ({len(data)} bytes, seed {seed})")
    return 0


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    seed = int(sys.argv[2], 0) if len(sys.argv) == 3 else 1
    return check(sys.argv[1], seed)


if __name__ == "__main__":
    sys.exit(main())
