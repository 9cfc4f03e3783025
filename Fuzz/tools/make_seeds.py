#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into corpus/<target>/ (small valid inputs
in each target's input format; see the comment at the top of Sources/<target>/Fuzz.swift)."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

def put(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(bytes(data))

u8 = lambda v: struct.pack("<B", v)
u16 = lambda v: struct.pack("<H", v)
u32 = lambda v: struct.pack("<I", v)
u64 = lambda v: struct.pack("<Q", v)

# --- FuzzVirtqueue ---------------------------------------------------------------
def desc(address, length, flags, nxt):  # descriptorBytes(): addr u32, u16-length marker, length, flags, next
    return u32(address) + u8(0) + u16(length) + u8(flags) + u16(nxt)

NEXT, WRITE, INDIRECT = 1, 2, 4
def vq_config(size_log2, features, desc_table, avail, used):
    return u8(size_log2) + u8(8) + u8(features) + u32(desc_table) + u32(avail) + u32(used)

base = vq_config(3, 0b11, 0x0000, 0x0080, 0x0100)
direct = (b"\x00" + u16(0) + desc(0x1000, 16, NEXT, 1)
          + b"\x00" + u16(1) + desc(0x2_0000, 512, WRITE, 0)
          + b"\x02" + u16(0) + u16(0) + b"\x03\x01" + b"\x05\x00" + b"\x06" + u32(512) + b"\x07" + b"\x08\x00")
put("FuzzVirtqueue", "direct-chain", base + direct)
indirect = (b"\x00" + u16(2) + desc(0x2000, 32, INDIRECT, 0)
            + b"\x01" + u32(0x2000) + u8(0) + desc(0x1000, 16, NEXT, 1)
            + b"\x01" + u32(0x2000) + u8(1) + desc(0x2_fff0, 0x20, WRITE, 0)   # spans slot 1 into the read-only slot
            + b"\x02" + u16(0) + u16(2) + b"\x03\x01" + b"\x05\x00" + b"\x06" + u32(0))
put("FuzzVirtqueue", "indirect-chain", base + indirect)
# Rings in slot 1, a chain whose buffer lies in the hole, no EVENT_IDX.
put("FuzzVirtqueue", "hole-buffer", vq_config(4, 0b10, 0x2_0000, 0x2_0100, 0x2_0200)
    + b"\x00" + u16(0) + desc(0x1_8000, 64, 0, 0) + b"\x02" + u16(0) + u16(0) + b"\x03\x01" + b"\x05\x03" + b"\x06" + u32(0)
    + b"\x04\x01" + u16(1) + b"\x07")
# A loop: 0 -> 1 -> 0.
put("FuzzVirtqueue", "loop", base + b"\x00" + u16(0) + desc(0x1000, 8, NEXT, 1) + b"\x00" + u16(1) + desc(0x1000, 8, NEXT, 0)
    + b"\x02" + u16(0) + u16(0) + b"\x03\x01" + b"\x05\x01")

# --- FuzzBlockRequest -------------------------------------------------------------
def blk_limits(capacity_byte=1, flags=0b110):
    out = u8(capacity_byte) + u8(flags)
    if flags & 2: out += u32(0x3FFFFF) + u16(1)
    if flags & 4: out += u32(0x3FFFFF) + u16(1)
    return out

def tiny(n): return u8(n << 2)            # 0..63 bytes
def sectors(n): return u8(n << 2 | 1)     # n * 512 bytes
def poke(address, data): return u32(address) + u8(len(data)) + data
def header(kind, sector=0): return u32(kind) + u32(0) + u64(sector)

for mode in (0, 1):
    put("FuzzBlockRequest", f"read-{mode}", u8(mode) + blk_limits() + u8(3)
        + u32(0x1000) + tiny(16) + u8(0) + u32(0x2_0000) + sectors(1) + u8(1) + u32(0x1100) + tiny(1) + u8(1)
        + poke(0x1000, header(0, 7)))
    put("FuzzBlockRequest", f"write-split-header-{mode}", u8(mode) + blk_limits() + u8(4)
        + u32(0x1000) + tiny(5) + u8(0) + u32(0x2_fff5) + tiny(11) + u8(0) + u32(0x2_0000) + sectors(2) + u8(0)
        + u32(0x1100) + tiny(1) + u8(1)
        + poke(0x1000, header(1, 2)[:5]) + poke(0x2_fff5, header(1, 2)[5:]))
    put("FuzzBlockRequest", f"discard-{mode}", u8(mode) + blk_limits() + u8(3)
        + u32(0x1000) + tiny(16) + u8(0) + u32(0x1010) + tiny(16) + u8(0) + u32(0x1100) + tiny(1) + u8(1)
        + poke(0x1000, header(11) + u64(8) + u32(8) + u32(0)))
    put("FuzzBlockRequest", f"get-id-{mode}", u8(mode) + blk_limits(2) + u64(1 << 30) + u8(2)
        + u32(0x1000) + tiny(16) + u8(0) + u32(0x1100) + tiny(21) + u8(1) + poke(0x1000, header(8)))
put("FuzzBlockRequest", "flush-readonly", u8(0) + blk_limits(3, 1) + u8(2)
    + u32(0x1000) + tiny(16) + u8(0) + u32(0x1100) + tiny(1) + u8(1) + poke(0x1000, header(4)))

# --- FuzzNet ----------------------------------------------------------------------
def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

CLIENT = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
def dhcp_frame(kind, options=b"", ciaddr=b"\0" * 4):
    bootp = (bytes([1, 1, 6, 0]) + b"\x12\x34\x56\x78" + b"\0\0\x80\0" + ciaddr + b"\0" * 12 + CLIENT + b"\0" * 10
             + b"\0" * 192 + bytes([99, 130, 83, 99]) + bytes([53, 1, kind]) + options + b"\xff")
    bootp += b"\0" * max(0, 300 - len(bootp))
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + CLIENT + b"\x08\x00" + ip + udp

discover = dhcp_frame(1)
request = dhcp_frame(3, bytes([50, 4, 100, 64, 0, 3, 54, 4, 100, 64, 0, 2]))
renew = dhcp_frame(3, ciaddr=bytes([10, 0, 0, 9]))
net_header = bytes([1, 0]) + u16(0) + u16(0) + u16(34) + u16(6) + u16(0)   # NEEDS_CSUM at 34+6
put("FuzzNet", "header", u8(0) + u16(0x1801) + u8(1) + u16(1514) + net_header)
put("FuzzNet", "header-gso", u8(0) + u16(0x1801) + u8(1) + u16(9000) + bytes([1, 1]) + u16(54) + u16(1448) + u16(34) + u16(16) + u16(0))
put("FuzzNet", "dhcp-discover", u8(1) + u8(0) + discover)
put("FuzzNet", "dhcp-request", u8(0x81) + u8(0) + request)
put("FuzzNet", "dhcp-renew", u8(1) + u8(1) + renew)
plain = b"\0" * 12 + CLIENT + b"\x02\0\0\0\0\x01\x08\x00" + bytes(range(64))
put("FuzzNet", "tx-plain", u8(2) + u16(0x1801) + u8(1) + u8(0) + u32(0x1000) + u8(2) + u16(12) + u16(20) + u8(0) + plain)
put("FuzzNet", "tx-dhcp", u8(2) + u16(0) + u8(0) + u8(0) + u32(0x2_ff00) + u8(1) + u16(12) + u8(0) + b"\0" * 12 + discover)
rx_packet = b"\0" * 12 + plain
put("FuzzNet", "rx", u8(3) + u16(0x8000) + u8(0) + u8(1) + u8(3) + u8(2)
    + u8(0) + u32(0x1000) + u16(1526) + u8(1)
    + u8(1) + u32(0x2_0800) + u16(600) + u8(1) + u32(0x2_fc00) + u16(2000) + u8(1)
    + u8(1) + u16(len(discover)) + discover
    + u16(len(rx_packet)) + rx_packet)

# Control queue (mode bit 6): 4 pairs, MQ and CTRL_VQ, queue size 4; VQ_PAIRS_SET 3, then class 99.
put("FuzzNet", "control", u8(0x40) + u8(2) + u8(1) + u8(0) + u8(2) + u8(2)
    + u8(1) + u32(0x1000) + u8(0) + u8(4) + bytes([4, 0, 3, 0]) + u32(0x1100) + u8(1) + u8(1)
    + u8(1) + u32(0x1200) + u8(0) + u8(3) + bytes([99, 1, 0]) + u32(0x1300) + u8(1) + u8(1))

# --- FuzzIPC ----------------------------------------------------------------------
def frame(tag, payload, fds=0):
    return u32(0x3144_4D56) + u16(tag) + u16(fds) + u32(len(payload)) + payload
def s(text): return u32(len(text.encode())) + text.encode()

ipc = {
    "vmcommand-loglevel": (0, frame(8, s("debug"))),
    "vmcommand-sharememory": (0 | 2 << 3, frame(1, u32(2) + u64(0) + u64(1 << 20) + u8(3) + u64(1 << 32) + u64(1 << 20) + u8(1), 2)),
    "vmcommand-boot": (0 | 3 << 3 | 0x20, frame(2, s("g") + u32(2) + s("console=ttyS0"), 3)),
    "vmevent-failed": (1, frame(2, u8(5) + s("kvm says no"))),
    # Transport messages carry their request number first (Numbered).
    "transport-activate": (2, frame(4, u32(7) + u64(1 << 32) + u32(1) + u16(0) + u16(256) + u64(0x1000) + u64(0x2000) + u64(0x3000))),
    "transport-writeconfig": (2 | 0x20, frame(3, u32(8) + u32(4) + u32(2) + b"\x01\x02")),
    "transport-quiesce": (2, frame(6, u32(9))),
    "transport-description": (3, frame(1, u32(7) + u16(2) + u64(1 << 32) + u16(1) + u16(256) + u32(60))),
    "device-event": (4, frame(1, s("queue 0: avail.idx jumped"))),
    "setup-block": (5 | 3 << 3 | 0x20, frame(2, s("disk0") + u8(0) + s("serial") + u32(0) + u32(0), 3)),
    "setup-network": (5 | 3 << 3, frame(5, s("net0") + u32(6) + bytes([0xfe, 0, 0, 0, 0, 1]) + u32(0x64400003)
                                     + u32(0x64400002) + u32(1) + u32(0) + u32(0), 3)),
    "control-startconfig": (6, frame(2, s("vm g { boot k }") + s("/tmp/g.conf") + s("/tmp"))),
    "control-stop": (6 | 0x20, frame(3, u8(1) + s("web") + u8(1))),
    "control-status": (7, frame(4, u32(1) + u32(1) + struct.pack("<i", 42) + u32(2) + u64(1 << 30)
                                + s("running") + s("root") + s("g") + s(""))),
    "control-console": (7 | 1 << 3 | 0x20, frame(5, s("g"), 1)),
}
for name, (control, data) in ipc.items():
    put("FuzzIPC", name, u8(control) + data)

# --- FuzzConfig -------------------------------------------------------------------
put("FuzzConfig", "guest", u8(0) + b'''# a comment
ram = 64M
vm "guest-kit" {
    memory $ram
    cpus 2
    boot "../Guest/build/guest-kit.elf"
    cmdline "test=boot ticks=10 exit=0"
    disk "/var/vm/a.img"
    local interface tap4 { lladdr fe:00:00:00:00:01 }
    interface { }
    owner root
}
local prefix 100.64.0.0/10
vm web { boot k; memory 1G; disable }
''')
put("FuzzConfig", "includes", u8(1) + b'kernel = /boot/k.elf\ninclude "vm.d/1"\nvm last { boot $kernel; memory $mem }\n'
    + b"\0" + b'mem = 256M\nvm web { boot $kernel }\ninclude "../2"\n' + b"\0" + b"vm db { boot $kernel; cpus 4 }\n")
put("FuzzConfig", "include-loop", u8(1) + b'include "a0"\n' + b"\0" + b'include "./b0"\n')

# --- FuzzSnapshot -----------------------------------------------------------------
# SnapshotFormat version 1 for FuzzSnapshot's shape: 1 vCPU, one 256 KiB slot at 0, disk0.
# Checksums are XXH3-64, from Debian's libxxhash (libxxhash-dev, which scripts/setup installs).
import ctypes
_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
xxh3 = lambda data: _xxh.XXH3_64bits(bytes(data), len(data))
def snap_shape():
    return u32(1) + u8(0) + u32(1) + u64(0) + u64(256 * 1024) + u32(1) + u16(2) + u16(1) + u32(5) + b"disk0"
def snap_section(kind, index, payload):
    head = u32(kind) + u32(index) + u64(len(payload))
    return head + payload + u64(xxh3(head + payload))
def snap_fields(fields):
    return u32(len(fields)) + b"".join(u16(tag) + u32(len(data)) + data for tag, data in fields)
def snapshot(runs):
    shape = snap_shape()
    out = b"SVMDSNAP" + u32(1) + u32(len(shape)) + shape + u64(xxh3(shape))
    out += snap_section(1, 0, snap_fields([(1, u64(7)), (2, b"\x01\x02\x03")]))
    out += snap_section(2, 0, snap_fields([(1, bytes(144)), (6, bytes(1024))]))
    table = u64(4096) + u32(len(runs)) + b"".join(u64(first) + u64(count) for first, count in runs)
    pages = b"".join(bytes([(first + i) & 0xFF]) * 4096 for first, count in runs for i in range(count))
    head = u32(4) + u32(0) + u64(len(table) + len(pages))
    out += head + table + u64(xxh3(head + table)) + pages + u64(xxh3(pages))
    out += snap_section(3, 0, snap_fields([(1, bytes(256)), (5, u32(1) + u8(1) + u16(3) + u16(3))]))
    return out + snap_section(0xFFFFFFFF, 0, u32(4))
put("FuzzSnapshot", "empty-ram", snapshot([]))
put("FuzzSnapshot", "two-runs", snapshot([(0, 1), (10, 2)]))
