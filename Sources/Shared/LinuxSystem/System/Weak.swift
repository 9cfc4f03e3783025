/// A reference that does not keep its object alive.
public final class Weak<Object: AnyObject> {
    public weak var value: Object?
    public init(_ value: Object) { self.value = value }
}
