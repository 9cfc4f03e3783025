/// Rows of cells as aligned text columns, two spaces apart: the columns in `rightAligned`
/// (numbers) padded on the left, the others on the right, the last one never padded.
enum AlignedColumns {
    static func render(_ rows: [[String]], rightAligned: (Int) -> Bool) -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { column in
                let cell = row[column]
                if column == row.count - 1 && !rightAligned(column) { return cell }
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned(column) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
