using System.IO.Compression;
using Grpc.Core;
using Grpc.Net.Compression;

namespace Segmentation.Server.Security;

/// <summary>
/// The gzip and deflate request encodings, held to the request size limit once decompressed. The framework checks a
/// compressed message's own length against the limit and then inflates it whole into memory: a few kilobytes of
/// compressed zeros are gigabytes, and the health service answers callers without a key. Here decompression stops with
/// <c>RESOURCE_EXHAUSTED</c> at the limit, and bytes that do not decompress are <c>INVALID_ARGUMENT</c> (not an
/// unknown error logged with its stack at every such request). Responses are compressed as the framework's own
/// providers compress them.
/// </summary>
internal sealed class BoundedDecompression : ICompressionProvider
{
    private readonly int _maxBytes;
    private readonly bool _gzip;

    private BoundedDecompression(string encoding, int maxBytes)
    {
        EncodingName = encoding;
        _gzip = encoding == "gzip";
        _maxBytes = maxBytes;
    }

    /// <summary>The gzip and deflate providers, each refusing a message larger than <paramref name="maxBytes"/> once decompressed.</summary>
    public static IEnumerable<ICompressionProvider> For(int maxBytes) => [new BoundedDecompression("gzip", maxBytes), new BoundedDecompression("deflate", maxBytes)];

    /// <inheritdoc />
    public string EncodingName { get; }

    /// <inheritdoc />
    public Stream CreateCompressionStream(Stream stream, CompressionLevel? compressionLevel) => _gzip
        ? new GZipStream(stream, compressionLevel ?? CompressionLevel.Fastest, leaveOpen: true)
        : new DeflateStream(stream, compressionLevel ?? CompressionLevel.Fastest, leaveOpen: true);

    /// <inheritdoc />
    public Stream CreateDecompressionStream(Stream stream) =>
        new Bounded(_gzip ? new GZipStream(stream, CompressionMode.Decompress) : new DeflateStream(stream, CompressionMode.Decompress), _maxBytes, EncodingName);

    // Reads through the decompressor, counting: past the limit, or on bytes that are not the encoding, the call's status.
    private sealed class Bounded(Stream inner, int maxBytes, string encoding) : Stream
    {
        private long _read;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => _read;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n;
            try
            {
                n = inner.Read(buffer);
            }
            catch (InvalidDataException)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"the request's message is flagged as {encoding}-compressed but does not decompress"));
            }

            _read += n;
            if (_read > maxBytes)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"the request is larger than the limit of {maxBytes:N0} bytes once decompressed"));
            }

            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
