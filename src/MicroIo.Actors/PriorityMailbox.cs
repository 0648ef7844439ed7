using System.Diagnostics.CodeAnalysis;
using System.Runtime.ExceptionServices;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Queues messages and delivers the one with the highest key first (first in, first out among equal keys), holding back
/// messages whose key is at or below a <see cref="Floor"/>.
/// </summary>
/// <typeparam name="T">The type of the messages.</typeparam>
/// <remarks>
/// <para>
/// Every member may be called from any thread. Changing <see cref="Floor"/> wakes waiting consumers, so lowering or
/// lifting it releases held messages at once. <see cref="DrainNowait"/> ignores the floor.
/// </para>
/// <para>
/// Once the mailbox is closed or failed, the floor holds nothing back any more: consumers take every message that was
/// submitted before the close, highest key first, and only then see the end, which is final. So an
/// <see cref="ActorCore{T}"/> over it handles everything and returns only when the mailbox is closed and empty.
/// </para>
/// </remarks>
public sealed class PriorityMailbox<T> : IMailbox<T>
{
    private readonly Lock _lock = new();
    private readonly PriorityQueue<T, (int Key, long Sequence)> _queue = new(Comparer<(int Key, long Sequence)>.Create(
        static (a, b) => a.Key != b.Key ? b.Key.CompareTo(a.Key) : a.Sequence.CompareTo(b.Sequence)));

    private readonly Func<T, int> _keySelector;
    private readonly LateSendPolicy _lateSend;
    // Created by the first waiter and completed (then dropped) by the next change, so a submit with no one waiting allocates nothing.
    private TaskCompletionSource? _changed;
    private long _sequence;
    private long _sent;
    private long _received;
    private long _dropped;
    private int? _floor;
    private bool _closed;
    private Exception? _failure;
    private ExceptionDispatchInfo? _failureInfo;

    /// <summary>Initializes a new, open mailbox ordered by the given key.</summary>
    /// <param name="keySelector">Returns a message's key; higher keys are delivered first.</param>
    /// <param name="lateSend">What <see cref="Submit"/> does after a close; by default, <see cref="LateSendPolicy.Drop"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="keySelector"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="lateSend"/> is not a defined policy.</exception>
    public PriorityMailbox(Func<T, int> keySelector, LateSendPolicy lateSend = LateSendPolicy.Drop)
    {
        ArgumentNullException.ThrowIfNull(keySelector);
        if (lateSend is not (LateSendPolicy.Throw or LateSendPolicy.Drop))
        {
            throw new ArgumentOutOfRangeException(nameof(lateSend), lateSend, "Unknown late-send policy.");
        }

        _keySelector = keySelector;
        _lateSend = lateSend;
    }

    /// <summary>Gets or sets the key at or below which messages are held back from consumers; <see langword="null"/> (the default) holds nothing back.</summary>
    /// <remarks>It holds nothing back once the mailbox is closed or failed.</remarks>
    public int? Floor
    {
        get
        {
            lock (_lock)
            {
                return _floor;
            }
        }

        set
        {
            TaskCompletionSource? changed;
            lock (_lock)
            {
                _floor = value;
                changed = TakeChangedLocked();
            }

            changed?.TrySetResult();
        }
    }

    /// <inheritdoc/>
    public bool IsClosed
    {
        get
        {
            lock (_lock)
            {
                return _closed;
            }
        }
    }

    /// <inheritdoc/>
    public ChannelStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new ChannelStats(_sent, _received, _dropped, _queue.Count, _closed);
            }
        }
    }

    /// <inheritdoc/>
    /// <exception cref="Exception">The key selector threw; the message was not queued.</exception>
    public bool Submit(T item)
    {
        var key = _keySelector(item);
        TaskCompletionSource? changed;
        lock (_lock)
        {
            if (_closed)
            {
                _dropped++;
                if (_lateSend == LateSendPolicy.Drop)
                {
                    return false;
                }

                throw _failure is null
                    ? new ClosedResourceException("The mailbox is closed; the message was not queued.")
                    : new ClosedResourceException("The mailbox has failed; the message was not queued.", _failure);
            }

            _queue.Enqueue(item, (key, _sequence++));
            _sent++;
            changed = TakeChangedLocked();
        }

        changed?.TrySetResult();
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask<T> GetAsync(CancellationToken cancellationToken = default)
    {
        while (await WaitToGetAsync(cancellationToken).ConfigureAwait(false))
        {
            if (TryGet(out var item))
            {
                return item;
            }
        }

        throw new EndOfChannelException("The mailbox is closed and has no message left to deliver.");
    }

    /// <inheritdoc/>
    public bool TryGet([MaybeNullWhen(false)] out T item)
    {
        lock (_lock)
        {
            if (HasDeliverableLocked())
            {
                item = _queue.Dequeue();
                _received++;
                return true;
            }
        }

        item = default;
        return false;
    }

    /// <inheritdoc/>
    /// <exception cref="Exception">The mailbox failed and has nothing left to deliver: the exception given to <see cref="Fail"/>, itself.</exception>
    public async ValueTask<bool> WaitToGetAsync(CancellationToken cancellationToken = default)
    {
        Checkpoint.ThrowIfCancelled(cancellationToken);
        using var link = AmbientToken.Link(cancellationToken);
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (HasDeliverableLocked())
                {
                    return true;
                }

                if (_closed)
                {
                    // Thrown from the copy captured at Fail: rethrowing the shared object would grow its stack trace each time.
                    _failureInfo?.Throw();
                    return false;
                }

                _changed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(link.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (link.Token.IsCancellationRequested)
            {
                throw link.Cancelled(ex);
            }
        }
    }

    /// <inheritdoc/>
    public bool Close() => Complete(null);

    /// <inheritdoc/>
    public bool Fail(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return Complete(exception);
    }

    /// <inheritdoc/>
    /// <remarks>Ignores the floor: held messages are taken too, highest key first.</remarks>
    public IReadOnlyList<T> DrainNowait(int maxItems = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxItems);
        lock (_lock)
        {
            var count = Math.Min(maxItems, _queue.Count);
            if (count == 0)
            {
                return [];
            }

            var items = new T[count];
            for (var i = 0; i < count; i++)
            {
                items[i] = _queue.Dequeue();
            }

            _received += count;
            return items;
        }
    }

    /// <inheritdoc/>
    public async IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        while (await WaitToGetAsync(cancellationToken).ConfigureAwait(false))
        {
            while (TryGet(out var item))
            {
                yield return item;
                Checkpoint.ThrowIfCancelled(cancellationToken);
            }
        }
    }

    private bool HasDeliverableLocked() =>
        _queue.TryPeek(out _, out var priority) && (_closed || _floor is not { } floor || priority.Key > floor);

    /// <summary>Takes the change signal, if anyone waits on it; the caller completes it outside the lock, waking every waiter to look again.</summary>
    private TaskCompletionSource? TakeChangedLocked()
    {
        var changed = _changed;
        _changed = null;
        return changed;
    }

    private bool Complete(Exception? exception)
    {
        TaskCompletionSource? changed;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _closed = true;
            _failure = exception;
            _failureInfo = exception is null ? null : ExceptionDispatchInfo.Capture(exception);
            changed = TakeChangedLocked();
        }

        changed?.TrySetResult();
        return true;
    }
}
