import Glibc
import IPC
import LinuxSystem
import Synchronization

/// The thread that runs one vCPU: KVM_RUN, handle the exit, repeat (design §3).
final class VcpuThread: @unchecked Sendable {
    let vcpu: Vcpu
    private let buses: Buses
    private let log: UnassignedAccessLog
    private let onEnd: @Sendable (GuestEnd) -> Void
    private let gate: PauseGate
    /// Exits by kind, in this vCPU's region (vmctl stats).
    private let counters: CounterPage?
    private let stopRequested = Atomic<Bool>(false)
    private var thread: pthread_t?

    /// The signal that kicks a vCPU thread out of KVM_RUN. Its handler does nothing:
    /// the point is that the ioctl returns EINTR.
    static let kickSignal = SIGUSR1

    static func installKickHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: KVM_RUN must return
        sigaction(kickSignal, &action, nil)
    }

    init(vcpu: Vcpu, buses: Buses, log: UnassignedAccessLog, gate: PauseGate, counters: CounterPage? = nil,
         onEnd: @escaping @Sendable (GuestEnd) -> Void) {
        self.vcpu = vcpu
        self.counters = counters
        self.gate = gate
        self.buses = buses
        self.log = log
        self.onEnd = onEnd
    }

    func start() throws {
        // SAFETY: retained once for the new thread, which takes it back; released here if the thread is not created.
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { context in
            let thread = Unmanaged<VcpuThread>.fromOpaque(context!).takeRetainedValue()
            thread.loop()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<VcpuThread>.fromOpaque(context).release()
            throw SystemError("pthread_create", errno: result)
        }
        thread = handle
    }

    private func loop() {
        while !stopRequested.load(ordering: .acquiring) {
            gate.waitWhilePaused()
            if stopRequested.load(ordering: .acquiring) { return }
            let exit: VcpuExit
            do {
                exit = try vcpu.runOnce()
            } catch {
                onEnd(.failed("vCPU \(vcpu.index): \(error)"))
                return
            }
            counters?.add(exit.counter.slot(vcpu: vcpu.index), 1)
            switch handleExit(exit, buses: buses, log: log) {
            case .resume:
                continue
            case .completeRead(let data):
                vcpu.completeRead(data)
            case .stop(let end):
                if case .failed(let why) = end, let regs = try? vcpu.registers(), let sregs = try? vcpu.specialRegisters() {
                    // Where the guest was, for whoever reads the failure.
                    onEnd(.failed("\(why) (vCPU \(vcpu.index) rip 0x\(String(regs.rip, radix: 16)) cs 0x\(String(sregs.cs.selector, radix: 16)) cr3 0x\(String(sregs.cr3, radix: 16)))"))
                } else {
                    onEnd(end)
                }
                return
            }
        }
    }

    /// Makes the thread leave KVM_RUN now (for a pause); it carries on unless asked to stop.
    func kick() {
        vcpu.requestImmediateExit()
        if let thread { pthread_kill(thread, VcpuThread.kickSignal) }
    }

    /// Asks the thread to leave KVM_RUN and end; returns at once.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        vcpu.requestImmediateExit()
        if let thread { pthread_kill(thread, VcpuThread.kickSignal) }
    }

    func join() {
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }
}
