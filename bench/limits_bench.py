"""The `limits` section of bench/run: rate limits held by the device processes.

Each row runs the guest kit's benchmark against a limit and reports what it achieved
against the limit (the goal: within 5 %). The disk rows put QEMU's own block throttling
(`throttling.iops-total`, `throttling.bps-total`) beside it, like for like: same image,
same cache mode (writeback), same workload. QEMU's tap netdev has no rate limit of its
own, so the interface rows have no peer. Every limit keeps its default burst (a tenth of
a second of the rate), so a run of about five seconds is at most 2 % over the rate.
"""
import subprocess
import time

# (label, vm.conf statement, QEMU -drive option, bench=blk arguments, n, n quick, RESULT field,
#  the limit in that field's unit: IOPS, or MB/s as the kit counts it (10^6 bytes))
BLK_LIMITS = [
    ("disk `ops 2000`, raw writeback, 4 KiB randread QD32, IOPS", "ops 2000", "throttling.iops-total=2000",
     "rw=randread bs=4096 qd=32", 10000, 2000, "iops", 2000.0),
    ("disk `bandwidth 50M`, raw writeback, 128 KiB seq read QD8, MB/s", "bandwidth 50M", "throttling.bps-total=52428800",
     "rw=read bs=131072 qd=8", 2000, 400, "mbps", 50 * 1048576 / 1e6),
]
# (label, vm.conf statement, direction, UDP payload, n, n quick, limit in packets/s). A
# 1472-byte payload is a 1514-byte frame, which is what `bandwidth` counts.
NET_LIMITS = [
    ("interface `packets 20000`, tx 64 B, packets/s", "packets 20000", "tx", 64, 100000, 20000, 20000.0),
    ("interface `packets 20000`, rx 64 B (host offers 40 000/s), packets/s", "packets 20000", "rx", 64, 200000, 40000,
     20000.0),
    ("interface `bandwidth 10M`, tx 1472 B, packets/s (limit 10 MiB/s of 1514-byte frames)", "bandwidth 10M", "tx",
     1472, 35000, 7000, 10 * 1048576 / 1514),
]


def bench_limits(b, runs, quick, log, udp_bench, port, result_fields):
    if b.aio is None:
        b.pick_aio()
    for label, statement, throttle, args, n, nq, field, limit in BLK_LIMITS:
        cmd = "bench=blk %s n=%d" % (args, nq if quick else n)
        log("limits: %s (%s), %d runs each" % (label, cmd, runs))

        def one(who, r, label=label, statement=statement, throttle=throttle, cmd=cmd, field=field):
            g = b.vmd("bench-limit", cmd, disk="raw", deadline=300, disk_limits=statement) if who == "vmd" \
                else b.qemu(cmd, disk="raw", throttle=throttle)
            res = g.wait_for(r"^RESULT name=bench-blk ", 300)
            g.wait_exit(15)
            if not res or "status=pass" not in res[1]:
                return b.fail("limits %s %s run %d: %s (log %s)" % (label, who, r, res and res[1], g.logf.name))
            b.add("limit.%s" % label, who, float(result_fields(res[1])[field]))
        b.alternate(runs, one)

    b.netns()
    for label, statement, direction, size, n, nq, limit in NET_LIMITS:
        n = nq if quick else n
        log("limits: %s (n=%d), %d runs" % (label, n, runs))
        for r in range(runs):
            host = None
            if direction == "tx":
                cmd = "bench=net dir=tx size=%d n=%d peer=100.64.0.0:%d dhcp=1" % (size, n, port)
                host = subprocess.Popen(b.in_ns(["python3", udp_bench, "recv", str(port), "--max-seconds", "120"]),
                                        stdout=subprocess.PIPE, text=True)
                time.sleep(0.3)
            else:
                cmd = "bench=net dir=rx size=%d n=%d port=%d seconds=60 idle=2 dhcp=1" % (size, n, port)
            g = b.vmd("bench-limit-net", cmd, nic=True, deadline=300, nic_limits=statement)
            if direction == "rx":
                if g.wait_for(r"^READY-NET", 120) is None:
                    g.stop()
                    b.fail("limits %s run %d: no READY-NET (log %s)" % (label, r, g.logf.name))
                    continue
                time.sleep(0.2)
                host = subprocess.Popen(b.in_ns(["python3", udp_bench, "send", "100.64.0.1", str(port), str(size),
                                                 str(n), "--rate", str(2 * limit)]),
                                        stdout=subprocess.PIPE, text=True)
            res = g.wait_for(r"^RESULT name=bench-net ", 200)
            g.wait_exit(15)
            try:
                host.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                host.kill()
                host.communicate()
            if not res or "status=pass" not in res[1]:
                b.fail("limits %s run %d: %s (log %s)" % (label, r, res and res[1], g.logf.name))
                continue
            b.add("limit.%s" % label, "vmd", float(result_fields(res[1])["pps"]))


def limits_table(D, w, mmm, stats, fmt):
    rows = [(label, limit, True) for label, *_, limit in BLK_LIMITS] + \
           [(label, limit, False) for label, *_, limit in NET_LIMITS]
    if not any("limit.%s" % label in D for label, _, _ in rows):
        return
    w("")
    w("Rate limits (vm.conf `disk ... { }` / `interface { }`, default burst), what the guest kit achieved against "
      "the limit, min / median / max; QEMU with its block throttling at the same rate, no peer for the NIC:")
    w("")
    w("| limit, workload, unit | limit | swift-vmd | swift-vmd / limit | QEMU | QEMU / limit |")
    w("|---|---|---|---|---|---|")
    for label, limit, has_peer in rows:
        k = "limit.%s" % label
        if k not in D:
            continue
        per = lambda who: ("%.3f" % (stats(D[k][who])[1] / limit)) if D[k].get(who) else "—"
        w("| %s | %s | %s | %s | %s | %s |" % (label, fmt(limit, 1), mmm(D[k].get("vmd"), 1), per("vmd"),
                                             mmm(D[k].get("qemu"), 1) if has_peer else "— (no tap limit)",
                                             per("qemu") if has_peer else "—"))
