import Glibc
import GuestRAM
import LinuxSystem

/// Gives guest RAM to a KVM VM on a thread of its own. A VM's first memory slot waits for
/// an SRCU grace period (5-8 ms on these hosts, whatever its size; later slots take 0.1 ms),
/// which nothing else in vm's setup needs to wait for: the vCPUs are made, the devices are
/// asked to describe themselves and a lazy restore's userfaultfd is registered meanwhile.
/// `wait()` before anything that needs the slots (vCPU state that points into RAM, such as
/// the PV EOI MSR; KVM_RUN) and before the sandbox is entered.
final class MemorySlotRegistration {
    private let vm: KVMVirtualMachine
    private let memory: GuestMemory
    private var thread: pthread_t?
    private var failure: Error?

    init(vm: KVMVirtualMachine, memory: GuestMemory) throws {
        self.vm = vm
        self.memory = memory
        // SAFETY: retained once for the new thread, which takes it back; released here if the thread is not created.
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { context in
            let registration = Unmanaged<MemorySlotRegistration>.fromOpaque(context!).takeRetainedValue()
            do { try registration.vm.register(registration.memory) } catch { registration.failure = error }
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<MemorySlotRegistration>.fromOpaque(context).release()
            throw SystemError("pthread_create", errno: result)
        }
        thread = handle
    }

    /// Returns once every slot is registered, or throws what registering one threw.
    func wait() throws {
        if let handle = thread {
            // After the join the thread's write of `failure` is visible here.
            pthread_join(handle, nil)
            thread = nil
        }
        if let failure { throw failure }
    }
}
