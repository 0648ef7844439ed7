using System.Threading.Channels;

namespace MicroIo.Internal;

/// <summary>Presents a MicroIo channel as a <see cref="ChannelWriter{T}"/>, following that type's contract for late writes.</summary>
internal sealed class WriterAdapter<T>(ChannelCore<T> core) : ChannelWriter<T>
{
    public override bool TryComplete(Exception? error = null) => error is null ? core.Close() : core.Fail(error);

    public override bool TryWrite(T item) => core.TrySend(item) == ChannelCore<T>.SendOutcome.Queued;

    // False after a failure as after a close (the queue's wait never throws the failure): see AsChannelWriter.
    public override ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default) => core.WaitToWriteAsync(cancellationToken);

    public override async ValueTask WriteAsync(T item, CancellationToken cancellationToken = default)
    {
        if (!await core.SendAsync(item, byPolicy: false, cancellationToken).ConfigureAwait(false))
        {
            throw new ChannelClosedException(core.Failure);
        }
    }
}
