/// A type that may be read from or written to guest memory as raw bytes: fixed-size,
/// every bit pattern a valid value, no pointers and no references (rust-vmm's
/// `ByteValued`). BitwiseCopyable alone is not enough: it admits pointer types, and a
/// pointer read out of guest RAM is a pointer the guest chose. Conform a type only if
/// all of that holds for it.
public protocol GuestPlainData: BitwiseCopyable {}

extension UInt8: GuestPlainData {}
extension UInt16: GuestPlainData {}
extension UInt32: GuestPlainData {}
extension UInt64: GuestPlainData {}
extension Int8: GuestPlainData {}
extension Int16: GuestPlainData {}
extension Int32: GuestPlainData {}
extension Int64: GuestPlainData {}
