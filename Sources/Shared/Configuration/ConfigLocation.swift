/// A position in a configuration file, for error messages.
///
/// `line` and `column` are 1-based. Columns count Unicode scalars, not bytes
/// and not grapheme clusters; a tab counts as one column. Counting scalars keeps
/// positions exact for any UTF-8 input without depending on Unicode segmentation
/// rules, and for the ASCII text of a typical vm.conf it equals the byte column.
public struct ConfigLocation: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form compilers use so editors can jump to it.
    public var description: String { "\(file):\(line):\(column)" }
}
