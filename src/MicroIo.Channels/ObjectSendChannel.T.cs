using System.Threading.Channels;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>Sends items into a channel made by <see cref="ObjectChannel.Create{T}(ObjectChannelOptions?)"/>, and closes or fails it.</summary>
/// <typeparam name="T">The type of the items.</typeparam>
/// <remarks>Every member may be called from any thread; sends never run a receiver's continuation inline.</remarks>
public sealed class ObjectSendChannel<T>
{
    private readonly ChannelCore<T> _core;

    internal ObjectSendChannel(ChannelCore<T> core)
    {
        _core = core;
    }

    /// <summary>Gets a value indicating whether the channel was closed or failed (by either endpoint).</summary>
    public bool IsClosed => _core.IsClosed;

    /// <summary>Gets a consistent snapshot of the channel's counters.</summary>
    public ChannelStats Stats => _core.Stats;

    /// <summary>Queues an item without waiting.</summary>
    /// <param name="item">The item; any value, an <see cref="Exception"/> included, is delivered as an item.</param>
    /// <returns>
    /// <see langword="true"/> if the item was queued; <see langword="false"/> if a bounded channel is full (the item is
    /// not counted anywhere: the caller still holds it) or, under <see cref="LateSendPolicy.Drop"/>, if the channel is
    /// closed (the item is counted as dropped). To tell the two apart, check <see cref="IsClosed"/> after a
    /// <see langword="false"/>: a close is final, so <see langword="false"/> there means the channel was full.
    /// </returns>
    /// <remarks>
    /// A bounded channel can be full for a moment while it holds fewer items than its capacity. An item that a receive
    /// has taken keeps its place until the receive has counted it. Room that a receive has just made goes first to
    /// sends already waiting for it in <see cref="SendAsync"/>.
    /// </remarks>
    /// <exception cref="ClosedResourceException">The channel is closed or failed, under <see cref="LateSendPolicy.Throw"/>; the item is counted as dropped.</exception>
    public bool Send(T item) => _core.TrySend(item) switch
    {
        ChannelCore<T>.SendOutcome.Queued => true,
        ChannelCore<T>.SendOutcome.Full => false,
        _ => _core.RefuseLateSend(),
    };

    /// <summary>Queues an item, waiting for room on a bounded channel.</summary>
    /// <param name="item">The item.</param>
    /// <param name="cancellationToken">A token that stops the wait; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns><see langword="true"/> if the item was queued; <see langword="false"/> if the channel is closed, under <see cref="LateSendPolicy.Drop"/> (counted as dropped).</returns>
    /// <exception cref="ClosedResourceException">The channel is closed or failed, under <see cref="LateSendPolicy.Throw"/>; the item is counted as dropped.</exception>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled before the item was queued.</exception>
    public ValueTask<bool> SendAsync(T item, CancellationToken cancellationToken = default)
    {
        if (Checkpoint.IsCancelled(cancellationToken) && CheckpointFault.Take(cancellationToken) is { } cancelled)
        {
            return ValueTask.FromException<bool>(cancelled);
        }

        return _core.TrySend(item) switch
        {
            ChannelCore<T>.SendOutcome.Queued => new ValueTask<bool>(true),
            ChannelCore<T>.SendOutcome.Full => _core.SendAsync(item, byPolicy: true, cancellationToken),
            _ => RefuseLateSendAsync(),
        };
    }

    /// <summary>Closes the channel: receivers take what was sent before, then the stream ends.</summary>
    /// <returns><see langword="true"/> for the call that closed the channel; otherwise, <see langword="false"/>.</returns>
    public bool Close() => _core.Close();

    /// <summary>Fails the channel: receivers take what was sent before, then every receive throws <paramref name="exception"/> itself.</summary>
    /// <param name="exception">The failure to deliver.</param>
    /// <returns><see langword="true"/> for the call that closed the channel; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    public bool Fail(Exception exception) => _core.Fail(exception);

    /// <summary>Returns a <see cref="ChannelWriter{T}"/> that feeds this channel, for code written for System.Threading.Channels.</summary>
    /// <returns>A writer whose writes are counted in <see cref="Stats"/>; <c>TryComplete</c> closes or fails the channel.</returns>
    /// <remarks>
    /// The writer follows System.Threading.Channels' contract rather than the late-send policy: <c>TryWrite</c> returns
    /// <see langword="false"/> and <c>WriteAsync</c> throws <see cref="ChannelClosedException"/> after a close (the item is
    /// counted as dropped). One difference: <c>WaitToWriteAsync</c> returns <see langword="false"/> after a failure too,
    /// where System.Threading.Channels throws the failure; a writer only needs to know that it can write no more. On a
    /// bounded channel, <c>TryWrite</c> can find it full for a moment with fewer items than its capacity, as
    /// <see cref="Send"/> can.
    /// </remarks>
    public ChannelWriter<T> AsChannelWriter() => new WriterAdapter<T>(_core);

    // Out of the fast path: the late send's exception (under LateSendPolicy.Throw) is a faulted task, as from any async method.
    private ValueTask<bool> RefuseLateSendAsync()
    {
        try
        {
            return new ValueTask<bool>(_core.RefuseLateSend());
        }
        catch (ClosedResourceException ex)
        {
            return ValueTask.FromException<bool>(ex);
        }
    }
}
