using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace MicroIo.Internal;

/// <summary>The queue under a MicroIo channel: its items, its waits, its end, and the exact count of items sent and received.</summary>
/// <remarks>
/// <para>
/// Shaped like System.Threading.Channels' channels, which it replaced under <see cref="ChannelCore{T}"/>: a write takes
/// one lock; <see cref="TryRead"/> takes none (a concurrent queue), bounded or not, unless a write or a wait for room is
/// listed; every read that may wait takes the lock, because it may have to list itself. What a wrapper around those
/// channels could not do is count a write where it happens: <c>Sent</c> is added under the write's own lock, so the
/// exact count DESIGN asks for costs the sender no interlocked operation of its own, except when it hands its item to
/// a waiting read and counts that receive too (docs/benchmarks.md, family 1). An unbounded queue's reads count nothing:
/// what it has received is what was sent less what is still queued, read under the lock (<see cref="Counts"/>), which
/// spares every receive an interlocked operation. A bounded queue keeps no count of what is queued: its room is the
/// capacity less (<c>Sent</c> - <c>Received</c>), which counts an item a read has taken and not yet counted. So a bounded
/// write can find the queue full while it holds fewer items than its capacity, for as long as a read is between its take
/// and its count, or room a read made is owed to writes already waiting for it. A bounded write reads <c>Received</c>
/// only when the count of it last read shows no room: while the receivers keep up, once in about capacity items.
/// </para>
/// <para>
/// The end is decided under the same lock as every write, so a write is either accepted before the end, and read, or
/// refused. Bounded, <c>Sent</c> is added before the item becomes visible, and <c>Received</c> after it is taken, so a
/// snapshot that reads <c>Received</c> first never shows an item received that was not sent; unbounded, a snapshot is
/// taken under the lock, where no write can change it.
/// </para>
/// <para>
/// Three kinds of wait (<see cref="WaitKind"/>) list themselves under the lock when they cannot go on. Reads that take
/// an item and writes that wait for room are served first come, first served, as System.Threading.Channels serves
/// <c>ReadAsync</c> and <c>WriteAsync</c>: a write hands its item straight to the oldest waiting read, and a bounded
/// read that makes room moves the oldest waiting write's item in (to the oldest waiting read, if one is listed), so no
/// later caller can take the item or the room first. Waits for something to read are all woken by every write that
/// queues an item, and waits for room by every bounded read that leaves room once no write is waiting for it; they then
/// try again.
/// </para>
/// </remarks>
/// <typeparam name="T">The type of the items.</typeparam>
internal sealed class ItemQueue<T> : IWaiterOwner
{
    // Allocated in this order: the lock, whose state every write writes, after the completion source and its task, which
    // nothing touches per item, not just after the concurrent queue's object, whose head every read reads. Allocated
    // there, the lock's state and the queue's head likely shared a cache line in some placements, and such a channel ran
    // its handoff at about 1.6 times the time an item (docs/benchmarks.md, family 1, "The queue's lock apart from its
    // concurrent queue"). The channel allocates its close state next (ChannelCore). This lowers the chance of a shared
    // line; it does not rule it out.
    private readonly ConcurrentQueue<T> _items = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _sync = new();
    private readonly long _capacity;
    private readonly bool _bounded;

    // Written by the senders (under the lock) and, bounded only, by the receivers, usually on different cores: each on its
    // own cache line.
    private PaddedCounter _sent;
    private PaddedCounter _received;

    // Under the lock: the count of Received that HasRoomLocked last read (see there). A field of its own: beside Sent, on
    // the senders' line, the bounded handoff ran at about twice the time an item in a harness (docs/benchmarks.md, family
    // 1); why was not found.
    private long _receivedSeen;

    // Under the lock: the lists of waits. A read that takes without the lock looks at the two waits for room after it
    // counts its item (see TryRead).
    private WaitLine _takers;
    private WaitLine _putters;
    private ChannelWaiter? _readers;
    private ChannelWaiter? _writers;

    // A spare wait of each kind, two for the waits that return a bool: a sender and a receiver may wait at once.
    private ChannelWaiter<T>? _spareTaker;
    private ChannelPutter<T>? _sparePutter;
    private ChannelWaiter<bool>? _spareWait;
    private ChannelWaiter<bool>? _secondSpareWait;
    private volatile bool _done;
    private Exception? _error;

    /// <summary>Creates an unbounded queue, or a bounded one when <paramref name="capacity"/> is given.</summary>
    public ItemQueue(int? capacity)
    {
        _bounded = capacity.HasValue;
        _capacity = capacity ?? long.MaxValue;
    }

    /// <summary>What a write did.</summary>
    public enum WriteResult
    {
        Written,
        Full,
        Ended,
    }

    /// <summary>Gets the number of items sent (accepted).</summary>
    public long Sent => Volatile.Read(ref _sent.Value);

    /// <summary>Gets the number of items received, as <see cref="Counts"/> reads it.</summary>
    public long Received => Counts().Received;

    /// <summary>Gets the number of items queued now.</summary>
    public int Count => _items.Count;

    /// <summary>Gets a task that completes when the queue has ended and every item was taken (and counted, when bounded), as System.Threading.Channels' <c>Completion</c> does.</summary>
    /// <remarks>Faulted with the failure of a failed queue, or cancelled if that failure is an <see cref="OperationCanceledException"/>.</remarks>
    public Task Completion => _completion.Task;

    /// <summary>Gets or sets code that tests run in a wake that walks a list it took off, before each wait on it is woken.</summary>
    internal static Action<ChannelWaiter>? BeforeWakeForTests { get; set; }

    // Per queue, unlike the wake hook: hooks on the read path must not cost a static lookup of a generic type (for a
    // reference type T) on every item.

    /// <summary>Gets or sets code that tests run in a <see cref="TryRead"/> that has taken its item and not yet counted it (bounded) or looked for the end.</summary>
    internal Action? BeforeCountingForTests { get; set; }

    /// <summary>Gets or sets code that tests run in a bounded <see cref="TryRead"/> that has counted its item and not yet looked for waits for room.</summary>
    internal Action? BeforeLookingForWaitsForTests { get; set; }

    /// <summary>Gets or sets code that tests run under the lock when a write or a wait for room is about to list its wait: it found no room, or writes waiting for room ahead of it.</summary>
    internal Action? BeforeListingForRoomForTests { get; set; }

    /// <summary>Gets the number of waits listed now, for tests: a wait that ended must not stay listed.</summary>
    internal int ListedWaits
    {
        get
        {
            lock (_sync)
            {
                return Length(_takers.Head) + Length(_putters.Head) + Length(_readers) + Length(_writers);
            }
        }
    }

    // Bounded, every item sent was counted as received, not only taken, and unbounded an item counts as received once it is
    // taken (Counts): either way a snapshot read once Completion is done shows none queued.
    private bool IsDrained => _done && (_bounded ? Volatile.Read(ref _received.Value) == Volatile.Read(ref _sent.Value) : _items.IsEmpty);

    // Sent is written only under the lock, and Received is added only after an item is taken, so the difference never
    // counts fewer items than are queued: a write that sees room never takes the queue past its capacity.
    //
    // Received is read only when the count of it last read here shows no room, so that a write does not pull the line the
    // receivers write on every item back to its own core on every item (docs/benchmarks.md, family 1): while they keep
    // up, once in about capacity items (every item, at capacity 1). The count seen is one Received reached, and Received
    // only grows, so room it shows is there, and a fresh read would show it too. No room is always the answer of a read
    // made here, after MakeRoomAfterListing's fence when a wait for room has just listed itself, so a read without the
    // lock still either sees that wait or has its count seen (TryRead).
    private bool HasRoomLocked()
    {
        // Stryker disable once Arithmetic,Block,Statement : a fast path with the same answer as the fresh read below; only
        // cache traffic differs.
        if (_sent.Value - _receivedSeen < _capacity)
        {
            return true;
        }

        _receivedSeen = Volatile.Read(ref _received.Value);
        return _sent.Value - _receivedSeen < _capacity;
    }

    /// <summary>Gets the number of items sent and the number received, read together: their difference is never negative.</summary>
    /// <remarks>
    /// A bounded queue counts every item received, because its room depends on the count. An unbounded queue does not,
    /// so that a read costs one interlocked operation less (docs/benchmarks.md, family 1): what it has received is what was
    /// sent less what is still queued, both read under the lock, where no write can change them. An item is counted there
    /// from the moment a read took it.
    /// </remarks>
    public (long Sent, long Received) Counts()
    {
        if (_bounded)
        {
            // Received first: an item is sent before it is received, so the later read of Sent is never the smaller.
            var received = Volatile.Read(ref _received.Value);
            return (Volatile.Read(ref _sent.Value), received);
        }

        lock (_sync)
        {
            return (_sent.Value, _sent.Value - _items.Count);
        }
    }

    /// <summary>Queues an item, or hands it to the oldest waiting read, unless the queue has ended or, when bounded, is full or has writes waiting for room.</summary>
    public WriteResult TryWrite(T item)
    {
        ChannelWaiter<T>? taker;
        ChannelWaiter? readers;
        WriteResult result;
        lock (_sync)
        {
            result = WriteLocked(item, out taker, out readers);
        }

        AfterWrite(item, taker, readers);
        return result;
    }

    /// <summary>Writes an item, waiting for room when bounded: true once the item is queued (or handed to a read), false if the queue ended first.</summary>
    /// <remarks>Writes waiting for room are served first come, first served: a read that makes room moves the oldest one's item in.</remarks>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the item was written.</exception>
    public ValueTask<bool> WriteAsync(T item, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        ChannelWaiter<T>? taker;
        ChannelWaiter? readers;
        ChannelPutter<T>? putter = null;
        var freed = default(Freed);
        WriteResult result;
        lock (_sync)
        {
            result = WriteLocked(item, out taker, out readers);
            if (result == WriteResult.Full)
            {
                BeforeListingForRoomForTests?.Invoke();
                putter = Interlocked.Exchange(ref _sparePutter, null) ?? new ChannelPutter<T>(this);
                putter.Item = item;
                _putters.Add(putter);
                MakeRoomAfterListing(ref freed);
            }
        }

        if (putter is not null)
        {
            AfterFreed(freed);
            putter.Register(cancellationToken);
            return putter.AsValueTask();
        }

        AfterWrite(item, taker, readers);
        return new ValueTask<bool>(result == WriteResult.Written);
    }

    /// <summary>Takes the oldest item, if any.</summary>
    /// <remarks>
    /// Without the lock, bounded or not, so a receiver does not contend with its sender for the lock on every item. A
    /// bounded read then looks for waits for room, and takes the lock only when one is listed: the increment of
    /// <c>Received</c> is a full fence, and a wait for room lists itself under the lock, fences, and then looks for room
    /// again, so either this read sees the wait or the wait sees the room this read made (MakeRoomAfterListing).
    /// </remarks>
    public bool TryRead([MaybeNullWhen(false)] out T item)
    {
        if (!_items.TryDequeue(out item))
        {
            return false;
        }

        BeforeCountingForTests?.Invoke();

        // The end writes its flag and fences before it looks at the counts; a read fences after its take and then looks at
        // the flag, so either the read sees the end or the end sees the item taken (counted, when bounded), and whichever is
        // second completes Completion. Unbounded, the fence is the take's own compare-exchange, on which
        // System.Threading.Channels' unbounded reads rely in the same way; bounded, it is the increment.
        if (_bounded)
        {
            Interlocked.Increment(ref _received.Value);
            if (AnyWaitForRoom())
            {
                var freed = default(Freed);
                lock (_sync)
                {
                    MakeRoomLocked(ref freed);
                }

                AfterFreed(freed);
            }
        }

        if (IsDrained)
        {
            CompleteDrained();
        }

        return true;
    }

    /// <summary>Takes the oldest item, waiting for one; the oldest waiting read gets the next item written.</summary>
    /// <exception cref="EndOfChannelException">The queue has ended and is empty.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public ValueTask<T> ReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        // No lock-free try first: the channel's receive has just made one.
        ChannelWaiter<T>? taker = null;
        var freed = default(Freed);
        bool taken;
        T? item;
        lock (_sync)
        {
            taken = TakeLocked(out item, ref freed);
            if (!taken && !_done)
            {
                taker = Interlocked.Exchange(ref _spareTaker, null) ?? new ChannelWaiter<T>(this, WaitKind.Take);
                _takers.Add(taker);
            }
        }

        if (taker is not null)
        {
            taker.Register(cancellationToken);
            return taker.AsValueTask();
        }

        AfterFreed(freed);
        return taken ? new ValueTask<T>(item!) : ValueTask.FromException<T>(new EndOfChannelException());
    }

    /// <summary>Waits until an item is queued (true) or the queue has ended empty (false).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        if (!_items.IsEmpty)
        {
            return new ValueTask<bool>(true);
        }

        return Wait(forRoom: false, cancellationToken);
    }

    /// <summary>Waits until the queue has room (true) or has ended (false); an unbounded queue has room until it ends.</summary>
    /// <remarks>Always under the lock: only the <c>ChannelWriter</c> adapter waits this way; sends wait with <see cref="WriteAsync"/>.</remarks>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<bool>(cancellationToken) : Wait(forRoom: true, cancellationToken);

    /// <summary>Ends the queue: no write is accepted from now on; what is queued can still be read; every wait is woken.</summary>
    /// <param name="error">The failure of a failed queue, for <see cref="Completion"/>; null for a plain end.</param>
    public void Complete(Exception? error)
    {
        ChannelWaiter? takers;
        ChannelWaiter? putters;
        ChannelWaiter? readers;
        ChannelWaiter? writers;
        bool drained;
        lock (_sync)
        {
            if (_done)
            {
                return;
            }

            _error = error;
            _done = true;

            // Pairs with the fence after a read's take without the lock: see TryRead.
            // Stryker disable once Statement : a fence; its absence shows only as a rare reordering no test can provoke.
            Interlocked.MemoryBarrier();
            drained = IsDrained;
            takers = _takers.TakeAll();
            putters = _putters.TakeAll();

            // Cleared here, under the lock, so the refused writes below are woken like any other wait.
            for (var putter = putters; putter is not null; putter = putter.Next)
            {
                ((ChannelPutter<T>)putter).Item = default;
            }

            readers = TakeAll(ref _readers);
            writers = TakeAll(ref _writers);
        }

        // Reads listed only while nothing was queued, and nothing was queued since: they get the end.
        for (var taker = takers; taker is not null;)
        {
            var next = taker.Next;
            taker.Next = null;
            if (taker.Claim())
            {
                taker.Fail(new EndOfChannelException());
            }

            taker = next;
        }

        // Writes still waiting for room are refused: their items were never queued, and are not counted.
        WakeAll(putters, false);
        WakeAll(readers, !drained);
        WakeAll(writers, false);
        if (drained)
        {
            CompleteDrained();
        }
    }

    void IWaiterOwner.Unlist(ChannelWaiter waiter)
    {
        lock (_sync)
        {
            switch (waiter.Kind)
            {
                case WaitKind.Take:
                    _takers.Remove(waiter);
                    break;
                case WaitKind.Put:
                    // Cleared even if the wait is off the line already: a move-in that lost the claim took it off and left the item.
                    _putters.Remove(waiter);
                    ((ChannelPutter<T>)waiter).Item = default;
                    break;
                default:
                    // A spare serves both lists, so the wait does not know which one it is on.
                    Unlist(ref _readers, waiter);
                    Unlist(ref _writers, waiter);
                    break;
            }
        }
    }

    void IWaiterOwner.Return(ChannelWaiter waiter)
    {
        switch (waiter.Kind)
        {
            case WaitKind.Take:
                Volatile.Write(ref _spareTaker, (ChannelWaiter<T>)waiter);
                break;
            case WaitKind.Put:
                Volatile.Write(ref _sparePutter, (ChannelPutter<T>)waiter);
                break;
            default:
                if (Interlocked.CompareExchange(ref _spareWait, (ChannelWaiter<bool>)waiter, null) is not null)
                {
                    Volatile.Write(ref _secondSpareWait, (ChannelWaiter<bool>)waiter);
                }

                break;
        }
    }

    private static int Length(ChannelWaiter? waiter)
    {
        var length = 0;
        for (; waiter is not null; waiter = waiter.Next)
        {
            length++;
        }

        return length;
    }

    private static ChannelWaiter? TakeAll(ref ChannelWaiter? head)
    {
        var taken = head;
        if (taken is not null)
        {
            head = null;
        }

        return taken;
    }

    private static void Unlist(ref ChannelWaiter? head, ChannelWaiter waiter)
    {
        for (ref var link = ref head; link is not null; link = ref link.Next)
        {
            if (link == waiter)
            {
                link = waiter.Next;
                waiter.Next = null;
                return;
            }
        }
    }

    private static void WakeAll(ChannelWaiter? waiter, bool result)
    {
        while (waiter is not null)
        {
            BeforeWakeForTests?.Invoke(waiter);

            // Taken before the wake: a woken wait may be reused, and listed again, at once.
            var next = waiter.Next;
            waiter.Next = null;
            ((ChannelWaiter<bool>)waiter).Wake(result);
            waiter = next;
        }
    }

    /// <summary>Under the lock: writes an item unless the queue has ended or is full; says which waiting read takes it, or which waits to wake.</summary>
    private WriteResult WriteLocked(T item, out ChannelWaiter<T>? taker, out ChannelWaiter? readers)
    {
        taker = null;
        readers = null;
        if (_done)
        {
            return WriteResult.Ended;
        }

        // Writes waiting for room go first: this one goes after them, even if a read has made room and not yet moved their
        // items in, and even if a read is listed (one that listed itself on an empty queue while a read without the lock
        // had not yet made room for them, or not yet moved their items in; the oldest one's item goes to it then).
        if (_bounded && _putters.Head is not null)
        {
            return WriteResult.Full;
        }

        // A listed read means nothing is queued: it takes the item, room or not.
        taker = (ChannelWaiter<T>?)_takers.ClaimFirst();
        if (taker is null && _bounded && !HasRoomLocked())
        {
            return WriteResult.Full;
        }

        PutLocked(item, taker, ref readers);
        return WriteResult.Written;
    }

    /// <summary>Under the lock: counts an item sent, and either leaves it to <paramref name="taker"/> or queues it and takes the waits for something to read off their list.</summary>
    private void PutLocked(T item, ChannelWaiter<T>? taker, ref ChannelWaiter? readers)
    {
        Volatile.Write(ref _sent.Value, _sent.Value + 1);
        if (taker is not null)
        {
            // Interlocked, as every count of Received: bounded readers count without the lock. Unbounded, an item never
            // queued is counted as received already (Counts).
            if (_bounded)
            {
                Interlocked.Increment(ref _received.Value);
            }

            return;
        }

        _items.Enqueue(item);

        // Written only when a wait is listed: a store on every item would pull this object's cache line, which the
        // receivers read on every item, back to the sender's core each time.
        readers ??= TakeAll(ref _readers);
    }

    /// <summary>Outside the lock: hands the item to the read that takes it, or wakes the waits for something to read.</summary>
    private static void AfterWrite(T item, ChannelWaiter<T>? taker, ChannelWaiter? readers)
    {
        if (taker is not null)
        {
            taker.Complete(item);
        }
        else
        {
            WakeAll(readers, true);
        }
    }

    /// <summary>Under the lock: takes the oldest item, if any, and collects what taking it lets go on.</summary>
    private bool TakeLocked([MaybeNullWhen(false)] out T item, ref Freed freed)
    {
        if (!_items.TryDequeue(out item))
        {
            return false;
        }

        if (_bounded)
        {
            Interlocked.Increment(ref _received.Value);
            MakeRoomLocked(ref freed);
        }

        freed.Drained = IsDrained;
        return true;
    }

    /// <summary>
    /// Under the lock: gives the room there is to the writes waiting for it, oldest first, moving their items in, so no
    /// later write can take it first; the waits for room hear of it only when no such write is left.
    /// </summary>
    private void MakeRoomLocked(ref Freed freed)
    {
        // Once per Freed: the line below is the head of a chain, not added to one.
        Debug.Assert(freed.Putters is null && freed.Writers is null, "Room was made twice for one Freed.");
        ChannelWaiter? last = null;
        while (HasRoomLocked() && _putters.ClaimFirst() is ChannelPutter<T> putter)
        {
            // Moving a waiting write's item in is a write like any other. A read may be listed, or a wait for something to
            // read: one that found the queue empty while a read without the lock had taken the last item and not yet made
            // the room, or made it and not yet moved this item in.
            putter.Taker = (ChannelWaiter<T>?)_takers.ClaimFirst();
            PutLocked(putter.Item!, putter.Taker, ref freed.Readers);
            if (putter.Taker is null)
            {
                putter.Item = default;
            }

            // Linked in the order they were moved in, to complete them outside the lock; off the line, nothing else links them.
            if (last is null)
            {
                freed.Putters = putter;
            }
            else
            {
                last.Next = putter;
            }

            last = putter;
        }

        if (_putters.Head is null && HasRoomLocked())
        {
            freed.Writers = TakeAll(ref _writers);
        }
    }

    /// <summary>Without the lock, after a take's count: whether a write or a wait for room is listed.</summary>
    private bool AnyWaitForRoom()
    {
        BeforeLookingForWaitsForTests?.Invoke();
        return _putters.Head is not null || Volatile.Read(ref _writers) is not null;
    }

    /// <summary>Under the lock, after a wait for room was listed: makes room for it if a read took an item meanwhile without seeing it listed.</summary>
    private void MakeRoomAfterListing(ref Freed freed)
    {
        // Pairs with the increment in TryRead, which is then followed by a look at the lists: see there.
        // Stryker disable once Statement : a fence; its absence shows only as a rare reordering no test can provoke.
        Interlocked.MemoryBarrier();
        MakeRoomLocked(ref freed);
    }

    /// <summary>Outside the lock: hands over or completes the writes whose items were moved in, wakes the waits to read and for room, and completes <see cref="Completion"/> if a take drained an ended queue.</summary>
    private void AfterFreed(in Freed freed)
    {
        for (var waiter = freed.Putters; waiter is not null;)
        {
            // Taken before the completion: a completed write may be reused, and listed again, at once.
            var next = waiter.Next;
            waiter.Next = null;
            var putter = (ChannelPutter<T>)waiter;
            if (putter.Taker is { } taker)
            {
                var item = putter.Item!;
                putter.Taker = null;
                putter.Item = default;
                taker.Complete(item);
            }

            putter.Complete(true);
            waiter = next;
        }

        WakeAll(freed.Readers, true);
        WakeAll(freed.Writers, true);
        if (freed.Drained)
        {
            CompleteDrained();
        }
    }

    private ValueTask<bool> Wait(bool forRoom, CancellationToken cancellationToken)
    {
        ChannelWaiter<bool> waiter;
        var freed = default(Freed);
        lock (_sync)
        {
            bool? ready = forRoom
                ? _done ? false : _putters.Head is null && HasRoomLocked() ? true : null
                : !_items.IsEmpty ? true : _done ? false : null;
            if (ready is { } now)
            {
                return new ValueTask<bool>(now);
            }

            waiter = Interlocked.Exchange(ref _spareWait, null)
                ?? Interlocked.Exchange(ref _secondSpareWait, null)
                ?? new ChannelWaiter<bool>(this, WaitKind.Ready);
            if (forRoom)
            {
                BeforeListingForRoomForTests?.Invoke();
                waiter.Next = _writers;
                _writers = waiter;
                MakeRoomAfterListing(ref freed);
            }
            else
            {
                waiter.Next = _readers;
                _readers = waiter;
            }
        }

        AfterFreed(freed);
        waiter.Register(cancellationToken);
        return waiter.AsValueTask();
    }

    private void CompleteDrained()
    {
        switch (_error)
        {
            case null:
                _completion.TrySetResult();
                break;
            case OperationCanceledException cancelled:
                _completion.TrySetCanceled(cancelled.CancellationToken);
                break;
            default:
                // Marked observed at once: a failure nobody asked Completion about must not surface as an unobserved
                // task exception.
                _completion.TrySetException(_error);
                _ = _completion.Task.Exception;
                break;
        }
    }

    /// <summary>What a take, or a wait for room that found room once listed, let go on, to finish outside the lock.</summary>
    private struct Freed
    {
        public ChannelWaiter? Putters;
        public ChannelWaiter? Readers;
        public ChannelWaiter? Writers;
        public bool Drained;
    }
}
