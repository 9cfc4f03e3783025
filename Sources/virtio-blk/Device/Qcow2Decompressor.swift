import CZlib
import CZstd
import DiskFormats

/// Turns a qcow2 compressed cluster back into its bytes: raw deflate or one zstd frame, as
/// the image's header says. The input is every sector the descriptor names, so it may run
/// past the compressed data into the next cluster's: both decoders stop once a whole
/// cluster is out (qcow2.txt, "Compressed Clusters Descriptor"). Anything else (a stream
/// that ends short, errors, or would produce more than a cluster) is a corrupt cluster,
/// which fails its read only.
final class Qcow2Decompressor {
    let type: Qcow2Header.CompressionType
    /// zstd's context, made at the first zstd cluster and reused (it holds the window buffer).
    private var zstd: OpaquePointer?

    /// Frames may declare a window of at most 2^23 bytes: a cluster is at most 2 MiB, and a
    /// hostile frame's declared window is what zstd would otherwise allocate (up to 128 MiB).
    static let zstdWindowLogMax: Int32 = 23

    init(type: Qcow2Header.CompressionType) {
        self.type = type
    }

    deinit {
        if let zstd { ZSTD_freeDCtx(zstd) }
    }

    /// `clusterSize` bytes from `input`, or a reason in `Qcow2Error.corrupt` naming `host`.
    func decompress(_ input: [UInt8], clusterSize: Int, host: UInt64) throws -> [UInt8] {
        switch type {
        case .deflate: try inflate(input, clusterSize: clusterSize, host: host)
        case .zstd: try decompressZstd(input, clusterSize: clusterSize, host: host)
        }
    }

    private func inflate(_ input: [UInt8], clusterSize: Int, host: UInt64) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: clusterSize)
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Qcow2Error.corrupt("zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var source = input
        let status: Int32 = source.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                // SAFETY: both buffers outlive the inflate call; zlib writes at most avail_out bytes.
                stream.next_in = source.baseAddress
                stream.avail_in = UInt32(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = UInt32(target.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END || (stream.avail_out == 0 && (status == Z_OK || status == Z_BUF_ERROR)) else {
            throw Qcow2Error.corrupt("the compressed cluster at \(host) does not inflate (zlib \(status))")
        }
        guard stream.avail_out == 0 else { throw Qcow2Error.corrupt("the compressed cluster at \(host) inflates short") }
        return output
    }

    private func decompressZstd(_ input: [UInt8], clusterSize: Int, host: UInt64) throws -> [UInt8] {
        let context = try zstdContext()
        var output = [UInt8](repeating: 0, count: clusterSize)
        var frameLeft = 0
        let failure: String? = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { target in
                // SAFETY: both buffers outlive the loop; zstd reads at most source.count bytes
                // and writes at most target.count.
                var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
                var outBuffer = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
                repeat {
                    let before = (inBuffer.pos, outBuffer.pos)
                    let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    if ZSTD_isError(result) != 0 { return String(cString: ZSTD_getErrorName(result)) }
                    frameLeft = result
                    // The frame ended short (what follows is the next cluster's), or the input
                    // did, or the output is full and the rest of the frame (a checksum) is in.
                    if outBuffer.pos < outBuffer.size, result == 0 || before == (inBuffer.pos, outBuffer.pos) {
                        return "it ends after \(outBuffer.pos) bytes"
                    }
                    if outBuffer.pos == outBuffer.size, result == 0 || before == (inBuffer.pos, outBuffer.pos) { return nil }
                } while true
            }
        }
        if let failure {
            ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
            throw Qcow2Error.corrupt("the compressed cluster at \(host) does not decompress (zstd: \(failure))")
        }
        guard frameLeft == 0 else {
            // The frame holds more than a cluster: a damaged or hostile cluster.
            ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
            throw Qcow2Error.corrupt("the compressed cluster at \(host) decompresses to more than a cluster")
        }
        return output
    }

    private func zstdContext() throws -> OpaquePointer {
        if let zstd { return zstd }
        guard let context = ZSTD_createDCtx() else { throw Qcow2Error.corrupt("zstd could not start") }
        let limited = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Self.zstdWindowLogMax)
        guard ZSTD_isError(limited) == 0 else {
            ZSTD_freeDCtx(context)
            throw Qcow2Error.corrupt("zstd refused a window limit: \(String(cString: ZSTD_getErrorName(limited)))")
        }
        zstd = context
        return context
    }
}
