using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace MicroIo.Internal;

/// <summary>The state both endpoints of one channel share: the System.Threading.Channels channel, the close state and the counters.</summary>
/// <remarks>
/// <para>
/// Close is linearizable with sends because the underlying channel decides both under its own lock: a write it accepted
/// is read before the end, and a write after <c>TryComplete</c> is refused. The close state is published before
/// <c>TryComplete</c>, so a refused write that finds the channel closed is counted as dropped.
/// </para>
/// <para>
/// <c>Sent</c> is counted before the write and taken back if the write is refused, and <c>Received</c> after the read;
/// a snapshot reads <c>Received</c> first. So no snapshot ever shows an item received that was not sent, and
/// <c>Queued</c> is derived as <c>Sent - Received</c>, which makes <c>Sent == Received + Queued</c> hold in every snapshot.
/// A send on a closed channel is refused before it is counted, so it never shows in <c>Sent</c>; only a send that
/// finds a bounded channel full (or races the close itself) is counted for the moment of its write attempt.
/// </para>
/// </remarks>
internal sealed class ChannelCore<T> : IQueuedCount
{
    // The underlying channel's endpoints, read once: every send and receive goes through one, and Channel<T>'s properties are a
    // load more on each item.
    private readonly ChannelReader<T> _reader;
    private readonly ChannelWriter<T> _writer;
    private readonly CloseScope _state = new();
    private readonly LateSendPolicy _lateSend;
    private readonly bool _singleReceiver;
    private ExceptionDispatchInfo? _failure;

    // Senders write _sent and receivers _received, usually on different cores: each lives on a cache line of its own, so
    // a handoff does not bounce one line between the producer and the consumer on every item.
    private PaddedCounter _sent;
    private PaddedCounter _received;
    private long _dropped;
    private int _waitingReceivers;

    public ChannelCore(ObjectChannelOptions options)
    {
        _lateSend = options.LateSend;
        _singleReceiver = options.SingleReceiver;

        // Continuations never run inline on a sending thread: a reader thread must not be hijacked by its consumers.
        Channel<T> channel = options.Capacity is { } capacity
            ? Channel.CreateBounded<T>(new BoundedChannelOptions(capacity)
            {
                FullMode = BoundedChannelFullMode.Wait,
                SingleReader = options.SingleReceiver,
                AllowSynchronousContinuations = false,
            })
            : Channel.CreateUnbounded<T>(new UnboundedChannelOptions
            {
                SingleReader = options.SingleReceiver,
                AllowSynchronousContinuations = false,
            });
        _reader = channel.Reader;
        _writer = channel.Writer;
        ChannelMetrics.Track(this);
    }

    long IQueuedCount.QueuedCount => Stats.Queued;

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

    public ChannelReader<T> Reader => _reader;

    public ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken) => _writer.WaitToWriteAsync(cancellationToken);

    public ChannelStats Stats
    {
        get
        {
            var received = Interlocked.Read(ref _received.Value);
            var dropped = Interlocked.Read(ref _dropped);
            var sent = Interlocked.Read(ref _sent.Value);
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
        // Checked before counting, so that a send that is certain to be refused never shows in Sent, even for a moment.
        if (_state.IsClosed)
        {
            CountDropped();
            return SendOutcome.Refused;
        }

        Interlocked.Increment(ref _sent.Value);
        if (_writer.TryWrite(item))
        {
            ChannelMetrics.Count(ChannelMetrics.Sent);
            return SendOutcome.Queued;
        }

        Interlocked.Decrement(ref _sent.Value);

        // A full bounded channel refuses too; only the published close state tells the two apart.
        if (!_state.IsClosed)
        {
            return SendOutcome.Full;
        }

        CountDropped();
        return SendOutcome.Refused;
    }

    /// <summary>Queues an item, waiting for room on a bounded channel; a refused item is counted as dropped, then reported as false or, with <paramref name="byPolicy"/>, as the late-send policy says.</summary>
    /// <remarks>
    /// Pooled: a producer that outruns its receiver waits here often, and must not allocate each time. The policy is
    /// applied here rather than by a wrapper around this wait, so a send that waits runs one state machine, not two.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> SendAsync(T item, bool byPolicy, CancellationToken cancellationToken)
    {
        using var link = AmbientToken.Link(cancellationToken);
        while (true)
        {
            link.Token.ThrowIfCancellationRequested();
            switch (TrySend(item))
            {
                case SendOutcome.Queued:
                    return true;
                case SendOutcome.Refused:
                    return byPolicy && RefuseLateSend();
            }

            bool open;
            try
            {
                open = await _writer.WaitToWriteAsync(link.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
            {
                throw link.Cancelled(ex);
            }
            catch (Exception)
            {
                // A failed channel's wait throws its failure; for a sender that is a refusal like any other.
                open = false;
            }

            if (!open)
            {
                CountDropped();
                return byPolicy && RefuseLateSend();
            }
        }
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
        if (_reader.TryRead(out item))
        {
            Interlocked.Increment(ref _received.Value);
            ChannelMetrics.Count(ChannelMetrics.Received);
            return true;
        }

        return false;
    }

    /// <summary>Waits until an item can be received; returns false at the end of a closed channel and throws the failure of a failed one.</summary>
    /// <remarks>Pooled: an actor's loop waits here whenever its mailbox runs dry, and must not allocate each time.</remarks>
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
                more = await _reader.WaitToReadAsync(link.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
            {
                throw link.Cancelled(ex);
            }
            catch (Exception)
            {
                // A failed channel's wait throws its failure; ThrowIfFailed throws it from the one captured copy.
                more = false;
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

    /// <summary>Receives the next item when none was queued at the call: one pooled state machine over the channel's own read.</summary>
    /// <remarks>
    /// The pooled builder and System.Threading.Channels' reusable read make a receive that has to wait allocate nothing in
    /// steady state. A single-receiver channel keeps the path that checks for a second waiting receive.
    /// </remarks>
    public ValueTask<T> ReceiveSlowAsync(CancellationToken cancellationToken) =>
        _singleReceiver ? ReceiveSingleAsync(cancellationToken) : ReadAsync(cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> ReadAsync(CancellationToken cancellationToken)
    {
        using var link = AmbientToken.Link(cancellationToken);
        T item;
        try
        {
            item = await _reader.ReadAsync(link.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
        {
            throw link.Cancelled(ex);
        }
        catch (Exception) when (_state.IsClosed)
        {
            // The end of the stream (ChannelClosedException), or a failure: thrown as MicroIo throws them, the failure
            // from its one captured copy.
            ThrowIfFailed();
            throw new EndOfChannelException();
        }

        Interlocked.Increment(ref _received.Value);
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
        // Publish the close state first: a write refused from here on must be counted as a late send, not as "full".
        if (!(exception is null ? _state.Close() : _state.Fail(exception)))
        {
            return false;
        }

        if (exception is not null)
        {
            Volatile.Write(ref _failure, ExceptionDispatchInfo.Capture(exception));
        }

        _writer.TryComplete(exception);
        return true;
    }
}

/// <summary>A counter alone on its cache line (64 bytes of padding each side), so two counters never share one.</summary>
/// <remarks>Outside <see cref="ChannelCore{T}"/>: a type nested in a generic type is generic, and generic types cannot have explicit layout.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedCounter
{
    [FieldOffset(64)]
    public long Value;
}
