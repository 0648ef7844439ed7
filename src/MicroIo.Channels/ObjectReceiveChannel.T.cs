using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>Receives items from a channel made by <see cref="ObjectChannel.Create{T}(ObjectChannelOptions?)"/>, and closes or fails it.</summary>
/// <typeparam name="T">The type of the items.</typeparam>
/// <remarks>
/// Every member may be called from any thread. Unless the channel was made with
/// <see cref="ObjectChannelOptions.SingleReceiver"/>, several receivers may read at once; each item goes to exactly one.
/// <c>await foreach</c> over the receiver ends quietly at a close and throws the failure of a failed channel.
/// On more than one processor, <see cref="ReceiveAsync"/> and <c>await foreach</c>, finding the channel empty after a
/// burst of items, spin for about 3 µs before they wait, so that a producer streaming items runs ahead and they take the
/// next items in a burst; they do so only when not running on a synchronization context or task scheduler of their own.
/// </remarks>
public sealed class ObjectReceiveChannel<T> : IAsyncEnumerable<T>
{
    private readonly ChannelCore<T> _core;

    internal ObjectReceiveChannel(ChannelCore<T> core)
    {
        _core = core;
    }

    /// <summary>Gets the state the endpoints share, for tests.</summary>
    internal ChannelCore<T> Core => _core;

    /// <summary>Gets a value indicating whether the channel was closed or failed (it may still hold items).</summary>
    public bool IsClosed => _core.IsClosed;

    /// <summary>Gets a consistent snapshot of the channel's counters.</summary>
    public ChannelStats Stats => _core.Stats;

    /// <summary>Receives the next item, waiting for one.</summary>
    /// <param name="cancellationToken">A token that stops the wait; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns>The next item.</returns>
    /// <exception cref="EndOfChannelException">The channel is closed and every item sent before the close was received.</exception>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled.</exception>
    /// <exception cref="Exception">The channel failed and every item sent before was received: the exception given to <c>Fail</c>, itself.</exception>
    /// <exception cref="InvalidOperationException">The channel has a single receiver and another receive is already waiting.</exception>
    /// <remarks>
    /// A receive that finds the channel empty after a burst of items may spin on the calling thread for about 3 µs before
    /// it returns (see the type's remarks); a receive that has to wait then returns a pending task.
    /// </remarks>
    public ValueTask<T> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        // Level-triggered: a receive in a cancelled scope throws even when an item is waiting.
        if (Checkpoint.IsCancelled(cancellationToken) && CheckpointFault.Take(cancellationToken) is { } cancelled)
        {
            return ValueTask.FromException<T>(cancelled);
        }

        return _core.TryReceive(out var item) ? new ValueTask<T>(item) : _core.ReceiveSlowAsync(cancellationToken);
    }

    /// <summary>Takes the next item if one is queued, without waiting.</summary>
    /// <param name="item">The item taken, or the default value.</param>
    /// <returns><see langword="true"/> if an item was taken; otherwise, <see langword="false"/>.</returns>
    public bool TryReceive([MaybeNullWhen(false)] out T item) => _core.TryReceive(out item);

    /// <summary>Waits until an item can be received, or the stream ends.</summary>
    /// <param name="cancellationToken">A token that stops the wait; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns><see langword="true"/> if an item is queued; <see langword="false"/> if the channel is closed and empty.</returns>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled.</exception>
    /// <exception cref="Exception">The channel failed and is empty: the exception given to <c>Fail</c>, itself.</exception>
    /// <remarks>Never pauses as <see cref="ReceiveAsync"/> does: a caller that takes with <see cref="TryReceive"/> decides for itself, as an actor's serial run does.</remarks>
    public ValueTask<bool> WaitToReceiveAsync(CancellationToken cancellationToken = default) => _core.WaitToReceiveAsync(cancellationToken);

    /// <summary>Takes the items queued now, up to a limit, without waiting; never consumes the end of the channel or its failure.</summary>
    /// <param name="maxItems">The most items to take; by default, all.</param>
    /// <returns>The items taken, oldest first; empty when none is queued.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxItems"/> is negative.</exception>
    public IReadOnlyList<T> DrainNowait(int maxItems = int.MaxValue) => _core.DrainNowait(maxItems);

    /// <summary>Closes the channel from the receiving side: what was sent before can still be received.</summary>
    /// <returns><see langword="true"/> for the call that closed the channel; otherwise, <see langword="false"/>.</returns>
    public bool Close() => _core.Close();

    /// <summary>Fails the channel from the receiving side: what was sent before can still be received, then <paramref name="exception"/> is thrown.</summary>
    /// <param name="exception">The failure to deliver.</param>
    /// <returns><see langword="true"/> for the call that closed the channel; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    public bool Fail(Exception exception) => _core.Fail(exception);

    /// <summary>Returns an enumerator that receives items until the channel ends.</summary>
    /// <param name="cancellationToken">A token that stops the enumeration; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns>An async enumerator that ends quietly at a close and throws the failure of a failed channel.</returns>
    public async IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        while (await _core.WaitToReceiveAsync(cancellationToken).ConfigureAwait(false))
        {
            while (_core.TryReceive(out var item) || _core.TryReceiveAfterPause(cancellationToken, out item))
            {
                yield return item;
                Checkpoint.ThrowIfCancelled(cancellationToken);
            }
        }
    }

    /// <summary>Returns a <see cref="ChannelReader{T}"/> that reads this channel, for code written for System.Threading.Channels.</summary>
    /// <returns>A reader whose reads are counted in <see cref="Stats"/>; its <c>Completion</c> completes when the channel ends.</returns>
    /// <remarks>The reader's <c>ReadAsync</c> and <c>ReadAllAsync</c> are System.Threading.Channels' own, over <see cref="WaitToReceiveAsync"/>: they never pause as <see cref="ReceiveAsync"/> does.</remarks>
    public ChannelReader<T> AsChannelReader() => new ReaderAdapter<T>(_core);
}
