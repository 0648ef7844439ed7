using System.Threading.Channels;

namespace MicroIo.Internal;

/// <summary>Presents a MicroIo channel as a <see cref="ChannelWriter{T}"/>, following that type's contract for late writes.</summary>
internal sealed class WriterAdapter<T>(ChannelCore<T> core) : ChannelWriter<T>
{
    public override bool TryComplete(Exception? error = null) => error is null ? core.Close() : core.Fail(error);

    public override bool TryWrite(T item) => core.TrySend(item) == ChannelCore<T>.SendOutcome.Queued;

    public override async ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
    {
        // The underlying wait throws a failed channel's exception; a writer only needs to know it can write no more.
        try
        {
            return await core.WaitToWriteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    public override async ValueTask WriteAsync(T item, CancellationToken cancellationToken = default)
    {
        if (!await core.SendAsync(item, byPolicy: false, cancellationToken).ConfigureAwait(false))
        {
            throw new ChannelClosedException(core.Failure);
        }
    }
}
