using Grpc.Core;

namespace Segmentation.Server.Interceptors;

/// <summary>
/// A read of the caller's request stream or a write to its response stream that the transport failed: the stream was
/// reset or the connection closed. Kestrel fails the read with an <see cref="IOException"/> before it cancels the call,
/// so without this the failure could not be told from a write the data directory refused.
/// </summary>
internal sealed class CallerStreamException(IOException inner) : Exception("the caller's stream was reset or its connection closed: " + inner.Message, inner);

/// <summary>
/// The caller's streams, their transport failures raised as <see cref="CallerStreamException"/>. A read or write that
/// completes at once costs no more than the stream's own; one that waits costs one continuation.
/// </summary>
internal static class CallerStreams
{
    public static IAsyncStreamReader<T> Reading<T>(IAsyncStreamReader<T> inner) => new Reader<T>(inner);

    public static IServerStreamWriter<T> Writing<T>(IServerStreamWriter<T> inner) => new Writer<T>(inner);

    // A task of the transport, its IOException raised as the caller's: as it is when it completed at once.
    private static Task<TResult> Watched<TResult>(Task<TResult> task) => task.IsCompletedSuccessfully ? task : Awaited(task);

    private static Task Watched(Task task) => task.IsCompletedSuccessfully ? task : Awaited(task);

    private static async Task<TResult> Awaited<TResult>(Task<TResult> task)
    {
        try
        {
            return await task.ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            throw new CallerStreamException(ex);
        }
    }

    private static async Task Awaited(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            throw new CallerStreamException(ex);
        }
    }

    private sealed class Reader<T>(IAsyncStreamReader<T> inner) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            try
            {
                return Watched(inner.MoveNext(cancellationToken));
            }
            catch (IOException ex)
            {
                throw new CallerStreamException(ex);
            }
        }
    }

    private sealed class Writer<T>(IServerStreamWriter<T> inner) : IServerStreamWriter<T>
    {
        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public Task WriteAsync(T message)
        {
            try
            {
                return Watched(inner.WriteAsync(message));
            }
            catch (IOException ex)
            {
                throw new CallerStreamException(ex);
            }
        }

        public Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            try
            {
                return Watched(inner.WriteAsync(message, cancellationToken));
            }
            catch (IOException ex)
            {
                throw new CallerStreamException(ex);
            }
        }
    }
}
