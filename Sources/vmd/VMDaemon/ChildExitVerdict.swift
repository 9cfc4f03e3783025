import LinuxSystem

/// What the death of one of a VM's processes means (design §1: any process gone takes the
/// VM down) and what it says about why the VM ended.
enum ChildExitVerdict: Equatable {
    /// Kill the others now; `reason` is why the VM ended, unless a report came first.
    case killTheRest(reason: VMOutcome?)
    /// A device left cleanly while its vm process still runs. A device exits 0 only because
    /// its vm closed their channel, so the vm is on its way out, and its report (why the
    /// guest ended) may still be unsent: it gets a moment to say so and exit by itself.
    case awaitVM

    static func of(role: String, isVM: Bool, _ termination: ChildProcess.Termination, vmReaped: Bool) -> Self {
        if isVM { return .killTheRest(reason: .vmProcessDied(termination)) }
        if termination == .exited(0) { return vmReaped ? .killTheRest(reason: nil) : .awaitVM }
        return .killTheRest(reason: .deviceProcessDied(role: role, termination))
    }
}
