extension GuestMemoryError {
    /// `GuestMemory` throws only `GuestMemoryError`; anything else is our bug.
    static func expected(_ error: any Error) -> GuestMemoryError {
        guard let memoryError = error as? GuestMemoryError else {
            preconditionFailure("GuestMemory threw \(error), not a GuestMemoryError")
        }
        return memoryError
    }
}
