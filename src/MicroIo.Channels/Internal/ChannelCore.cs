using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace MicroIo.Internal;

/// <summary>The state both endpoints of one channel share: the queue, the close state, the dropped count and the receives' pause.</summary>
/// <remarks>
/// <para>
/// Close is linearizable with sends because the queue decides both under its own lock: a write it accepted is read before
/// the end, and a write after the end is refused and counted as dropped. The close state and the failure are published
/// before the queue ends, so whoever meets the end can read them.
/// </para>
/// <para>
/// The queue counts <c>Sent</c> when it accepts an item, and reads the two counts together so that no snapshot ever
/// shows an item received that was not sent (<see cref="ItemQueue{T}.Counts"/>). <c>Queued</c> is derived as
/// <c>Sent - Received</c>, so <c>Sent == Received + Queued</c> holds in every snapshot. A refused send never shows in
/// <c>Sent</c>.
/// </para>
/// </remarks>
internal sealed class ChannelCore<T> : IQueuedCount
{
    // Three times the actor's pause, as measured in docs/benchmarks.md, family 1 (at 1 µs one row was slower than with no
    // pause). Likely because a bare receive loop does nothing between items, so it catches a streaming producer up again
    // sooner than an actor's run, which handles each message; not established.
    private static readonly long s_pauseTicks = 3 * Spinning.DefaultTicks(Environment.ProcessorCount, Stopwatch.Frequency);

    private readonly ItemQueue<T> _queue;
    private readonly CloseScope _state;
    private readonly LateSendPolicy _lateSend;
    private readonly bool _singleReceiver;
    private ExceptionDispatchInfo? _failure;
    private long _dropped;
    private int _waitingReceivers;

    // Shared by the channel's receivers without a lock: receives that race here only blur when the next pause is due.
    private DryPause _pause = new(s_pauseTicks);

    public ChannelCore(ObjectChannelOptions options)
    {
        _lateSend = options.LateSend;
        _singleReceiver = options.SingleReceiver;
        _queue = new ItemQueue<T>(options.Capacity);

        // After the queue, whose lock it allocates last: the close state and what it holds, which nothing touches per item,
        // then lie between that lock and the endpoints allocated next, whose receive endpoint every receive reads
        // (docs/benchmarks.md, family 1, "The queue's lock apart from its concurrent queue").
        _state = new CloseScope();
        ChannelMetrics.Track(this);
    }

    // The queue's own count, which takes no lock: the gauge reads every live channel at each collection. It can differ from
    // Stats.Queued only while a bounded read is between its take and its count.
    long IQueuedCount.QueuedCount => _queue.Count;

    private void CountDropped()
    {
        Interlocked.Increment(ref _dropped);
        ChannelMetrics.Count(ChannelMetrics.Dropped);
    }

    public enum SendOutcome
    {
        Queued,
        Full,
        Refused,
    }

    public bool IsClosed => _state.IsClosed;

    /// <summary>Gets the queue, for tests.</summary>
    internal ItemQueue<T> Queue => _queue;

    /// <summary>Gets or sets how long a receive that finds the channel empty after a burst pauses, in ticks of <see cref="Stopwatch"/>, for tests; set before the first receive.</summary>
    internal long PauseTicks
    {
        get => _pause.Ticks;
        set => _pause = new DryPause(value);
    }

    /// <summary>Gets or sets code that tests run in a receive's pause, when its length has passed and it has not yet taken again.</summary>
    internal Action? InPauseForTests { get; set; }

    /// <summary>Gets the number of items queued now.</summary>
    public int Count => _queue.Count;

    /// <summary>Gets a task that completes when the channel is closed and empty; see <see cref="ItemQueue{T}.Completion"/> for a failed channel.</summary>
    public Task Completion => _queue.Completion;

    public ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken) => _queue.WaitToWriteAsync(cancellationToken);

    public ChannelStats Stats
    {
        get
        {
            var (sent, received) = _queue.Counts();
            var dropped = Interlocked.Read(ref _dropped);
            return new ChannelStats(sent, received, dropped, sent - received, _state.IsClosed);
        }
    }

    public bool Close() => Complete(null);

    public bool Fail(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return Complete(exception);
    }

    /// <summary>Tries to queue an item without waiting; a refused (late) send is counted as dropped.</summary>
    public SendOutcome TrySend(T item)
    {
        switch (_queue.TryWrite(item))
        {
            case ItemQueue<T>.WriteResult.Written:
                ChannelMetrics.Count(ChannelMetrics.Sent);
                return SendOutcome.Queued;
            case ItemQueue<T>.WriteResult.Full:
                return SendOutcome.Full;
            default:
                CountDropped();
                return SendOutcome.Refused;
        }
    }

    /// <summary>Queues an item, waiting for room on a bounded channel; a refused item is counted as dropped, then reported as false or, with <paramref name="byPolicy"/>, as the late-send policy says.</summary>
    /// <remarks>
    /// Sends waiting for room are served first come, first served (see <see cref="ItemQueue{T}.WriteAsync"/>). Pooled: a
    /// producer that outruns its receiver waits here often, and must not allocate each time. The policy is applied here
    /// rather than by a wrapper around this wait, so a send that waits runs one state machine, not two.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> SendAsync(T item, bool byPolicy, CancellationToken cancellationToken)
    {
        using var link = AmbientToken.Link(cancellationToken);
        bool written;
        try
        {
            written = await _queue.WriteAsync(item, link.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
        {
            throw link.Cancelled(ex);
        }

        if (written)
        {
            ChannelMetrics.Count(ChannelMetrics.Sent);
            return true;
        }

        CountDropped();
        return byPolicy && RefuseLateSend();
    }

    /// <summary>Refuses a late send as the policy says: throws, or returns false.</summary>
    public bool RefuseLateSend()
    {
        if (_lateSend == LateSendPolicy.Drop)
        {
            return false;
        }

        throw _state.Exception is { } failure
            ? new ClosedResourceException("The channel has failed; the item was not sent.", failure)
            : new ClosedResourceException("The channel is closed; the item was not sent.");
    }

    public bool TryReceive([MaybeNullWhen(false)] out T item)
    {
        if (_queue.TryRead(out item))
        {
            ChannelMetrics.Count(ChannelMetrics.Received);
            return true;
        }

        return false;
    }

    /// <summary>Waits until an item can be received; returns false at the end of a closed channel and throws the failure of a failed one.</summary>
    /// <remarks>
    /// Pooled: an actor's loop waits here whenever its mailbox runs dry, and must not allocate each time. It never pauses
    /// (<see cref="TryReceiveAfterPause"/>): its caller takes the items, and pauses when it should, as the actor's run does.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> WaitToReceiveAsync(CancellationToken cancellationToken)
    {
        Checkpoint.ThrowIfCancelled(cancellationToken);
        if (_singleReceiver && Interlocked.Exchange(ref _waitingReceivers, 1) != 0)
        {
            throw new InvalidOperationException("The channel was created with SingleReceiver = true, but a second receive is waiting while another one is.");
        }

        try
        {
            using var link = AmbientToken.Link(cancellationToken);
            bool more;
            try
            {
                more = await _queue.WaitToReadAsync(link.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
            {
                throw link.Cancelled(ex);
            }

            if (!more)
            {
                ThrowIfFailed();
            }

            return more;
        }
        finally
        {
            if (_singleReceiver)
            {
                Volatile.Write(ref _waitingReceivers, 0);
            }
        }
    }

    /// <summary>Receives the next item when none was queued at the call: from a pause when one is due and catches it, else by one pooled state machine over the queue's reusable wait.</summary>
    /// <remarks>
    /// The pooled builder and the queue's reused waits make a receive that has to wait allocate nothing in steady state.
    /// Waiting receives are served first come, first served: the queue hands each new item to the oldest one. A
    /// single-receiver channel keeps the path that checks for a second waiting receive.
    /// </remarks>
    public ValueTask<T> ReceiveSlowAsync(CancellationToken cancellationToken)
    {
        if (TryReceiveAfterPause(cancellationToken, out var item))
        {
            return new ValueTask<T>(item);
        }

        return _singleReceiver ? ReceiveSingleAsync(cancellationToken) : ReadAsync(cancellationToken);
    }

    /// <summary>Pauses if a pause is due, then tries once more to take an item; called by a receive that has just found the channel empty.</summary>
    /// <remarks>
    /// <para>
    /// See <see cref="DryPause"/>. The channel's items are counted by <c>Sent</c>: a receive finds the channel empty only
    /// when every item sent was taken. Nothing can arrive in a closed channel, so a receive at its end does not pause, nor
    /// does one on a synchronization context or task scheduler of its own (<see cref="Spinning.HasNoContextOfItsOwn"/>),
    /// which the pause would hold; such a receive still marks the run-dry, as it empties the channel as much as any.
    /// </para>
    /// <para>
    /// A single-receiver channel with a receive already waiting does not pause either: the second receive must fail at
    /// once, not take an item that arrived during its pause. A receive cancelled during the pause takes nothing: the wait
    /// after it throws the cancellation.
    /// </para>
    /// </remarks>
    public bool TryReceiveAfterPause(CancellationToken cancellationToken, [MaybeNullWhen(false)] out T item)
    {
        if (_state.IsClosed
            || (_singleReceiver && Volatile.Read(ref _waitingReceivers) != 0)
            || !_pause.RunsDry(_queue.Sent)
            || !Spinning.HasNoContextOfItsOwn())
        {
            item = default;
            return false;
        }

        _pause.Pause();
        InPauseForTests?.Invoke();
        if (Checkpoint.IsCancelled(cancellationToken))
        {
            item = default;
            return false;
        }

        var caught = TryReceive(out item);
        _pause.Caught(caught);
        return caught;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> ReadAsync(CancellationToken cancellationToken)
    {
        using var link = AmbientToken.Link(cancellationToken);
        T item;
        try
        {
            item = await _queue.ReadAsync(link.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
        {
            throw link.Cancelled(ex);
        }
        catch (EndOfChannelException)
        {
            // The end of a failed channel throws the failure itself, from its one captured copy.
            ThrowIfFailed();
            throw;
        }

        ChannelMetrics.Count(ChannelMetrics.Received);
        return item;
    }

    private async ValueTask<T> ReceiveSingleAsync(CancellationToken cancellationToken)
    {
        while (await WaitToReceiveAsync(cancellationToken).ConfigureAwait(false))
        {
            if (TryReceive(out var item))
            {
                return item;
            }
        }

        throw new EndOfChannelException();
    }

    public IReadOnlyList<T> DrainNowait(int maxItems)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxItems);
        if (maxItems == 0 || !TryReceive(out var first))
        {
            return [];
        }

        var items = new List<T> { first };
        while (items.Count < maxItems && TryReceive(out var item))
        {
            items.Add(item);
        }

        return items;
    }

    /// <summary>Throws the original failure (not a wrapper) if the channel failed and no item is left.</summary>
    /// <remarks>
    /// Thrown from the copy captured once when the channel failed: throwing the shared exception object afresh on every
    /// receive would append one more stack trace to it each time.
    /// </remarks>
    public void ThrowIfFailed() => Volatile.Read(ref _failure)?.Throw();

    public Exception? Failure => _state.Exception;

    private bool Complete(Exception? exception)
    {
        // The close state and the captured failure first: a sender refused by the ended queue reads the failure
        // (RefuseLateSend), and a receiver that reaches the end throws it (ThrowIfFailed).
        if (!(exception is null ? _state.Close() : _state.Fail(exception)))
        {
            return false;
        }

        if (exception is not null)
        {
            Volatile.Write(ref _failure, ExceptionDispatchInfo.Capture(exception));
        }

        _queue.Complete(exception);
        return true;
    }
}
