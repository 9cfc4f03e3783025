"""bench/run --only snapshot: vmctl send/receive (eager and lazy) against QEMU's
migrate "exec:cat > FILE" and -incoming "exec:cat FILE", on the same guest kit run
(test=migrate: a memory pattern, blk I/O in flight, a MIGRATE line every 10 ms).

For each guest size (64 MiB as booted; 1 GiB with touch_mib=900, most of its RAM
written) and each VMM:
  size     the snapshot file's bytes
  save     command → file complete and the VM stopped (vmctl send returns; QEMU:
           stop + migrate until `info migrate` says completed)
  restore  command → the guest runs again (vmctl receive returns, which it does once
           vm reports running; QEMU: spawn with -incoming until `cont` is answered)
  next     command → the guest's next MIGRATE line on its console
  own      (swift-vmd) the vm process's part of a restore, from its log: the rest is
           vmctl, vmd and starting the VM's processes
Nothing is asserted: a benchmark is never a test.
"""
import os
import re
import socket
import subprocess
import time

SIZES = [("64 MiB", "64M", 0), ("1 GiB, 900 MiB written", "1024M", 900)]
KIT_ARGS = "test=migrate ticks=1000000 tick_ms=10 qd=4 seed=9"


class Monitor:
    """QEMU's human monitor on a unix socket: one command, its output."""

    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)
        self.sock.settimeout(timeout)
        self._until_prompt()

    def _until_prompt(self):
        data = b""
        while not data.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\n")
        return self._until_prompt()

    def close(self):
        self.sock.close()


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def bench_snapshot(b, runs, quick, Guest, log, QEMU, VMD, KIT):
    vmctl = os.path.join(os.path.dirname(VMD), "vmctl")
    sock = os.path.join(b.work, "snap-vmd.sock")
    conf = os.path.join(b.work, "snap-vmd.conf")
    open(conf, "w").close()
    daemon = Guest([VMD, "-d", "-f", conf, "-s", sock], b.logpath("snap-vmd"))
    env = dict(os.environ, VMD_SOCKET=sock)
    for _ in range(200):
        if subprocess.run([vmctl, "status"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    disk = os.path.join(b.work, "snap-disk.img")
    try:
        for label, memory, touch in SIZES[:1] if quick else SIZES:
            log("snapshot %s (%s touch_mib=%d), %d runs each" % (label, KIT_ARGS, touch, runs))
            cmdline = KIT_ARGS + " touch_mib=%d" % touch

            def one(who, run):
                with open(disk, "wb") as f:
                    f.truncate(8 << 20)
                snap = os.path.join(b.work, "snap-%s.bin" % who)
                if os.path.exists(snap):
                    os.unlink(snap)
                if who == "vmd":
                    vmd_round(b, env, vmctl, Guest, log, label, memory, cmdline, disk, snap, KIT, daemon.logf.name)
                else:
                    qemu_round(b, Guest, log, label, memory, cmdline, disk, snap, QEMU, KIT)
                if os.path.exists(snap):
                    os.unlink(snap)
            b.alternate(runs, one)
    finally:
        daemon.stop()


def first_line_after(guest, pattern, timeout):
    r = guest.wait_for(pattern, timeout)
    return None if r is None else guest.t0 + r[0]


def vm_restore_ms(path):
    """The last "restored from the snapshot in N ms" of vm in vmd's log: its own part."""
    found = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(r"restored from the snapshot in ([0-9.]+) ms", line)
            if m:
                found = float(m.group(1))
    return found


def vmd_round(b, env, vmctl, Guest, log, label, memory, cmdline, disk, snap, KIT, daemon_log):
    conf = os.path.join(b.work, "snap.conf")
    with open(conf, "w") as f:
        f.write('vm "snap" {\n    memory %s\n    boot "%s"\n    cmdline "%s"\n    disk "%s"\n}\n' % (memory, KIT, cmdline, disk))
    run = lambda *a, **kw: subprocess.run([vmctl] + list(a), env=env, capture_output=True, **kw)
    if run("start", conf).returncode != 0:
        return b.fail("snapshot %s: vmctl start" % label)
    console = Guest(["env", "VMD_SOCKET=" + env["VMD_SOCKET"], vmctl, "console", "snap"], b.logpath("snap-console"))
    if console.wait_for(r"^MIGRATE tick=20 ", 120) is None:
        console.stop()
        run("stop", "-f", "-w", "snap")
        return b.fail("snapshot %s: swift-vmd guest did not count (%s)" % (label, console.logf.name))
    t0 = time.monotonic()
    with open(snap, "wb") as out:
        sent = subprocess.run([vmctl, "send", "snap"], env=env, stdout=out, stderr=subprocess.PIPE)
    t1 = time.monotonic()
    console.stop()
    if sent.returncode != 0:
        return b.fail("snapshot %s: vmctl send: %s" % (label, sent.stderr.decode()))
    b.add("snap.%s.size" % label, "vmd", file_size(snap) / 2**20)
    b.add("snap.%s.save" % label, "vmd", (t1 - t0) * 1000)
    for mode, options in (("eager", []), ("lazy", ["-l"])):
        t2 = time.monotonic()
        with open(snap, "rb") as src:
            received = subprocess.run([vmctl, "receive"] + options + ["snap"], env=env, stdin=src, capture_output=True)
        t3 = time.monotonic()
        if received.returncode != 0:
            b.fail("snapshot %s: vmctl receive %s: %s" % (label, mode, received.stderr.decode()))
            continue
        console = Guest(["env", "VMD_SOCKET=" + env["VMD_SOCKET"], vmctl, "console", "snap"], b.logpath("snap-console-" + mode))
        seen = first_line_after(console, r"^MIGRATE tick=", 30)
        ok = console.wait_for(r"^MIGRATE tick=\d+ ", 30)
        console.stop()
        run("stop", "-f", "-w", "snap")
        b.add("snap.%s.restore.%s" % (label, mode), "vmd", (t3 - t2) * 1000)
        own = vm_restore_ms(daemon_log)
        if own is not None:
            b.add("snap.%s.own.%s" % (label, mode), "vmd", own)
        if seen is None or ok is None:
            b.fail("snapshot %s: swift-vmd %s restore: no MIGRATE line" % (label, mode))
            continue
        b.add("snap.%s.next.%s" % (label, mode), "vmd", (seen - t2) * 1000)


def qemu_argv(memory, cmdline, disk, monitor, QEMU, KIT, incoming=None):
    argv = [QEMU, "-M", "q35", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", memory,
            "-nodefaults", "-kernel", KIT, "-append", cmdline,
            "-serial", "stdio", "-display", "none", "-monitor", "unix:%s,server,nowait" % monitor, "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive", "file=%s,if=none,id=d0,format=raw,cache=writeback" % disk,
            "-device", "virtio-blk-pci,drive=d0,disable-legacy=on,disable-modern=off"]
    if incoming:
        argv += ["-incoming", incoming]
    return argv


def wait_migration(monitor, side, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = monitor.cmd("info migrate" if side == "out" else "info status")
        if side == "out" and "Migration status: completed" in text:
            return True
        if side == "out" and ("failed" in text or "cancelled" in text):
            return False
        if side == "in" and "inmigrate" not in text and "restore-vm" not in text:
            return True
        time.sleep(0.002)
    return False


def qemu_round(b, Guest, log, label, memory, cmdline, disk, snap, QEMU, KIT):
    mon = os.path.join(b.work, "qemu-mon.sock")
    if os.path.exists(mon):
        os.unlink(mon)
    g = Guest(qemu_argv(memory, cmdline, disk, mon, QEMU, KIT), b.logpath("snap-qemu"))
    if g.wait_for(r"^MIGRATE tick=20 ", 120) is None:
        g.stop()
        return b.fail("snapshot %s: QEMU guest did not count (%s)" % (label, g.logf.name))
    m = Monitor(mon)
    m.cmd("migrate_set_parameter max-bandwidth 100G")  # unthrottled, as vmctl send (QEMU's default is 32 MiB/s)
    t0 = time.monotonic()
    m.cmd("stop")
    m.cmd('migrate -d "exec:cat > %s"' % snap)  # -d: HMP's own migrate waits in 1 s steps
    done = wait_migration(m, "out")
    t1 = time.monotonic()
    m.cmd("quit")
    m.close()
    g.stop()
    if not done:
        return b.fail("snapshot %s: QEMU migrate to file did not complete" % label)
    b.add("snap.%s.size" % label, "qemu", file_size(snap) / 2**20)
    b.add("snap.%s.save" % label, "qemu", (t1 - t0) * 1000)
    # QEMU has one restore, which reads the whole file before the guest runs: the eager row.
    if os.path.exists(mon):
        os.unlink(mon)
    t2 = time.monotonic()
    g = Guest(qemu_argv(memory, cmdline, disk, mon, QEMU, KIT, incoming='exec:cat %s' % snap), b.logpath("snap-qemu-in"))
    m = Monitor(mon)
    loaded = wait_migration(m, "in")
    m.cmd("cont")
    t3 = time.monotonic()
    seen = first_line_after(g, r"^MIGRATE tick=", 30)
    m.cmd("quit")
    m.close()
    g.stop()
    if not loaded or seen is None:
        return b.fail("snapshot %s: QEMU restore did not run on" % label)
    b.add("snap.%s.restore.eager" % label, "qemu", (t3 - t2) * 1000)
    b.add("snap.%s.next.eager" % label, "qemu", (seen - t2) * 1000)


def snapshot_rows(D, row):
    for label, *_ in SIZES:
        if "snap.%s.size" % label not in D:
            continue
        row("snapshot %s: file size, MiB ↓" % label, "snap.%s.size" % label, 1)
        row("snapshot %s: save (send), ms ↓" % label, "snap.%s.save" % label, 1)
        for mode, what in (("eager", "eager (all RAM read first)"), ("lazy", "lazy (receive -l; QEMU has none: its eager figure)")):
            key = "snap.%s.restore.%s" % (label, mode)
            if key in D:
                if mode == "lazy" and "qemu" not in D[key]:
                    D[key]["qemu"] = D.get("snap.%s.restore.eager" % label, {}).get("qemu", [])
                row("snapshot %s: restore %s → running, ms ↓" % (label, what), key, 1)
            key = "snap.%s.own.%s" % (label, mode)
            if key in D:
                row("snapshot %s: restore %s, vm's own part (state set%s), ms ↓"
                    % (label, mode, ", RAM read" if mode == "eager" else ""), key, 2)
            key = "snap.%s.next.%s" % (label, mode)
            if key in D:
                if mode == "lazy" and "qemu" not in D[key]:
                    D[key]["qemu"] = D.get("snap.%s.next.eager" % label, {}).get("qemu", [])
                row("snapshot %s: restore %s → next guest line, ms ↓" % (label, mode), key, 1)


# ---- live migration: two vmd daemons on this host (a unix socket between them) against
# two QEMUs (-incoming unix:...). total: command → the sender's VM is gone and the receiver's
# runs (vmctl migrate returns; QEMU: `info migrate` says completed). Downtime four ways:
#   gap       the guest's: the longest time its TSC saw between two MIGRATE lines 10 ms
#             apart (max_gap_us), so the interval is in it, and a timer tick lost across
#             the move adds another 10 ms. Over the whole run: on this host, freeing the
#             sender's 1 GiB of huge-page RAM makes a running guest's ticks late by 20-40 ms
#             in bursts 2-10 s later (reproduced without any migration: another process
#             freeing 900 MiB of huge-page shmem does it), so the longest gap of the 1 GiB
#             guest is mostly that
#   switch    the guest's: the gap its TSC saw before the receiver's first line (it prints
#             each gap over gap_report_us), the interval included; only the switchover
#   stall     the guest's: the longest time its TSC saw between two passes of its loop
#             (max_stall_us, tens of µs each), without the interval; it includes the host
#             preempting the vCPU, which on two cores is a few ms without any migration
#   reported  the VMM's own figure: swift-vmd's vmctl migrate prints "down for N ms" (the
#             sender's pause until the receiver confirms its VM runs); QEMU's `info migrate`
#             prints "downtime: N ms" (its stop until the source has sent everything, the
#             destination's start not included)
# The guest's figures are read from its RESULT on the receiver.
MIGRATION_TICKS = 900
GAP_REPORT_US = 10500  # the guest prints every gap between lines longer than this


def switchover_gap_ms(sender_lines, receiver_lines):
    """The gap the guest reported for the line that first ran on the receiver, in ms; the
    reporting threshold if it reported none (the gap was shorter); None if the two consoles
    do not meet (a line lost between them). That line is the sender's last complete one
    plus one; when the switch came while a line was being printed, the sender's console
    holds its start (complete or not), the receiver's its end, and the guest reports the
    gap with that line's tick: either way one of the sender's last tick and the next."""
    ticks = lambda lines: [int(m.group(1)) for _, l in lines for m in [re.match(r"MIGRATE tick=(\d+) ", l)] if m]
    sent, received = ticks(sender_lines), ticks(receiver_lines)
    if not sent or not received or received[0] not in (sent[-1] + 1, sent[-1] + 2):
        return None
    for _, line in receiver_lines[:8]:
        m = re.match(r"info migrate gap tick=(\d+) .*us=(\d+)", line)
        if m and int(m.group(1)) in (sent[-1], sent[-1] + 1):
            return int(m.group(2)) / 1000
    return GAP_REPORT_US / 1000


def bench_migration(b, runs, quick, Guest, log, QEMU, VMD, KIT):
    vmctl = os.path.join(os.path.dirname(VMD), "vmctl")
    disk = os.path.join(b.work, "mig-disk.img")
    endpoint = os.path.join(b.work, "mig-rx.endpoint")
    defs = []
    for label, memory, touch in SIZES[:1] if quick else SIZES:
        name = "mig%d" % len(defs)
        cmdline = "test=migrate ticks=%d tick_ms=10 qd=4 seed=5 touch_mib=%d gap_report_us=%d" % (MIGRATION_TICKS, touch,
                                                                                                  GAP_REPORT_US)
        defs.append((label, name, memory, cmdline,
                     'vm "%s" {\n    memory %s\n    boot "%s"\n    cmdline "%s"\n    disk "%s"\n' % (name, memory, KIT, cmdline, disk)))
    rx_conf, tx_conf = os.path.join(b.work, "mig-rx.conf"), os.path.join(b.work, "mig-tx.conf")
    with open(rx_conf, "w") as f:
        f.write("".join(text + "    disable\n}\n" for *_, text in defs))
    open(tx_conf, "w").close()
    sockets = {side: os.path.join(b.work, "mig-%s.sock" % side) for side in ("tx", "rx")}
    daemons = [Guest([VMD, "-d", "-f", tx_conf, "-s", sockets["tx"]], b.logpath("mig-vmd-tx")),
               Guest([VMD, "-d", "-f", rx_conf, "-s", sockets["rx"], "-m", endpoint], b.logpath("mig-vmd-rx"))]
    env = {side: dict(os.environ, VMD_SOCKET=path) for side, path in sockets.items()}
    for side in env:
        for _ in range(200):
            if subprocess.run([vmctl, "status"], env=env[side], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
    try:
        for label, name, memory, cmdline, text in defs:
            log("live migration %s (%s), %d runs each" % (label, cmdline, runs))
            conf = os.path.join(b.work, name + ".conf")
            with open(conf, "w") as f:
                f.write(text + "}\n")

            def one(who, run):
                with open(disk, "wb") as f:
                    f.truncate(8 << 20)
                if who == "vmd":
                    vmd_migration(b, env, vmctl, Guest, label, name, conf, endpoint)
                else:
                    qemu_migration(b, Guest, label, memory, cmdline, disk, QEMU, KIT)
            b.alternate(runs, one)
    finally:
        for daemon in daemons:
            daemon.stop()


def guest_downtimes(guest, timeout):
    """(max_gap_ms, max_stall_ms) from the guest's passing RESULT, None if it did not pass."""
    r = guest.wait_for(r"^RESULT name=migrate ", timeout)
    if r is None or "status=pass" not in r[1]:
        return None
    gap, stall = (re.search(r"%s=(\d+)" % key, r[1]) for key in ("max_gap_us", "max_stall_us"))
    if gap is None or stall is None:
        return None
    return int(gap.group(1)) / 1000, int(stall.group(1)) / 1000


def add_downtimes(b, label, who, guest_seen, reported, switch):
    b.add("mig.%s.downtime" % label, who, guest_seen[0])
    if switch is not None:
        b.add("mig.%s.switch" % label, who, switch)
    b.add("mig.%s.stall" % label, who, guest_seen[1])
    if reported is not None:
        b.add("mig.%s.reported" % label, who, reported)


def vmd_migration(b, env, vmctl, Guest, label, name, conf, endpoint):
    if subprocess.run([vmctl, "start", conf], env=env["tx"], capture_output=True).returncode != 0:
        return b.fail("migration %s: vmctl start" % label)
    console = Guest(["env", "VMD_SOCKET=" + env["tx"]["VMD_SOCKET"], vmctl, "console", name], b.logpath("mig-console-tx"))
    if console.wait_for(r"^MIGRATE tick=20 ", 120) is None:
        console.stop()
        subprocess.run([vmctl, "stop", "-f", "-w", name], env=env["tx"], capture_output=True)
        return b.fail("migration %s: swift-vmd guest did not count" % label)
    t0 = time.monotonic()
    moved = subprocess.run([vmctl, "migrate", name, endpoint], env=env["tx"], capture_output=True)
    t1 = time.monotonic()
    console.stop()
    if moved.returncode != 0:
        subprocess.run([vmctl, "stop", "-f", "-w", name], env=env["tx"], capture_output=True)
        return b.fail("migration %s: vmctl migrate: %s" % (label, moved.stderr.decode().strip()))
    b.add("mig.%s.total" % label, "vmd", (t1 - t0) * 1000)
    after = Guest(["env", "VMD_SOCKET=" + env["rx"]["VMD_SOCKET"], vmctl, "console", name], b.logpath("mig-console-rx"))
    seen = guest_downtimes(after, MIGRATION_TICKS / 100 + 60)
    after.stop()
    switch = switchover_gap_ms(console.lines, after.lines)
    subprocess.run([vmctl, "stop", "-f", "-w", name], env=env["rx"], capture_output=True)
    if seen is None:
        return b.fail("migration %s: swift-vmd guest did not finish on the receiver (%s)" % (label, after.logf.name))
    reported = re.search(r"down for ([0-9.]+) ms", moved.stdout.decode())
    add_downtimes(b, label, "vmd", seen, float(reported.group(1)) if reported else None, switch)


def qemu_migration(b, Guest, label, memory, cmdline, disk, QEMU, KIT):
    mons = [os.path.join(b.work, "qmig-%s.mon" % side) for side in ("tx", "rx")]
    channel = os.path.join(b.work, "qmig.sock")
    for path in mons + [channel]:
        if os.path.exists(path):
            os.unlink(path)
    rx = Guest(qemu_argv(memory, cmdline, disk, mons[1], QEMU, KIT, incoming="unix:%s" % channel), b.logpath("qmig-rx"))
    tx = Guest(qemu_argv(memory, cmdline, disk, mons[0], QEMU, KIT), b.logpath("qmig-tx"))
    try:
        if tx.wait_for(r"^MIGRATE tick=20 ", 120) is None:
            return b.fail("migration %s: QEMU guest did not count" % label)
        m = Monitor(mons[0])
        m.cmd("migrate_set_parameter max-bandwidth 100G")  # unthrottled, as vmctl migrate
        t0 = time.monotonic()
        m.cmd("migrate -d unix:%s" % channel)
        done = wait_migration(m, "out")
        t1 = time.monotonic()
        reported = re.search(r"downtime: (\d+) ms", m.cmd("info migrate"))
        # The source ends now, as a vmd sender's VM does once the receiver confirms: both
        # free the sender's RAM at the same point of the guest's run (see "gap" above).
        m.cmd("quit")
        m.close()
        if not done:
            return b.fail("migration %s: QEMU migration did not complete" % label)
        b.add("mig.%s.total" % label, "qemu", (t1 - t0) * 1000)
        seen = guest_downtimes(rx, MIGRATION_TICKS / 100 + 60)
        if seen is None:
            return b.fail("migration %s: QEMU guest did not finish on the receiver (%s)" % (label, rx.logf.name))
        add_downtimes(b, label, "qemu", seen, float(reported.group(1)) if reported else None,
                      switchover_gap_ms(tx.lines, rx.lines))
    finally:
        tx.stop()
        rx.stop()


def migration_rows(D, row):
    for label, *_ in SIZES:
        if "mig.%s.total" % label in D:
            row("live migration %s: total, ms ↓" % label, "mig.%s.total" % label, 1)
            row("live migration %s: downtime as the guest saw it (longest gap between 10 ms lines), ms ↓" % label,
                "mig.%s.downtime" % label, 1)
            if "mig.%s.switch" % label in D:
                row("live migration %s: downtime as the guest saw it (the gap at the switchover, the 10 ms interval included), ms ↓"
                    % label, "mig.%s.switch" % label, 1)
            row("live migration %s: downtime as the guest saw it (longest stall between passes of its loop), ms ↓" % label,
                "mig.%s.stall" % label, 1)
            if "mig.%s.reported" % label in D:
                row("live migration %s: downtime as the VMM reports it (see above for what each counts), ms ↓" % label,
                    "mig.%s.reported" % label, 1)
