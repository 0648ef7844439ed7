using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MicroIo.Internal;

/// <summary>
/// A single-threaded <see cref="SynchronizationContext"/>: a queue of callbacks that the thread which calls
/// <see cref="Run{TTask}(Func{TTask})"/> runs one at a time until the main task and every <c>async void</c> method
/// started on it have completed.
/// </summary>
/// <remarks>
/// <para>
/// Callers offer work without a lock: each item is pushed with one compare-and-swap onto a stack of offered items, which
/// the loop takes whole with one exchange and runs oldest first. A hand-over then moves only the stack's head and the
/// item between the two threads' caches, not a lock, a queue and its array as well.
/// </para>
/// <para>
/// The loop's end is decided in two steps. Once the main task and every <c>async void</c> method have completed, the loop
/// refuses work offered through the service's API (<c>external</c>), so a caller that keeps offering work cannot keep it
/// alive; it still accepts continuations posted by work already on it. It ends only by swapping an empty stack for an end
/// marker, in one compare-and-swap that fails if anything was pushed, and a push fails once it finds the marker. So a
/// callback is either accepted and run by the loop, or refused (and the caller told); none is accepted and then lost.
/// </para>
/// <para>
/// A callback that throws goes to the error handler (a service records it as its failure and keeps the loop running so
/// its task group can wind down); without a handler the exception ends the loop and is thrown from <c>Run</c>, as
/// Nito.AsyncEx's <c>AsyncContext</c> does.
/// </para>
/// </remarks>
internal sealed class LoopSynchronizationContext : SynchronizationContext
{
    // SpinWait.SpinOnce rounds the loop spends looking for work before it sleeps: work offered right after the last item
    // (the next call of a caller that just got its answer) is then taken without waking a sleeping thread.
    private const int Spins = 35;

    // Monitor (not System.Threading.Lock) because the loop thread sleeps with Monitor.Wait until work arrives.
    private readonly object _lock = new();
    private readonly Action<Exception>? _onError;
    private int _threadId;
    private int _operations;

    // Written for every item, so kept apart from _threadId and _externalClosed, which callers read on every call.
    private QueueFields _queue;

    // Set once the loop has nothing left to wait for: work offered through the service's API is refused from then on.
    private volatile bool _externalClosed;

    /// <summary>Initializes a loop; <paramref name="onError"/> receives every exception a callback throws, or, when null, such an exception ends the loop.</summary>
    public LoopSynchronizationContext(Action<Exception>? onError)
    {
        _onError = onError;
    }

    /// <summary>Gets a value indicating whether the calling thread is the one running the loop.</summary>
    public bool IsLoopThread
    {
        get
        {
            var id = Volatile.Read(ref _threadId);
            return id != 0 && id == Environment.CurrentManagedThreadId;
        }
    }

    /// <summary>Gets a value indicating whether a thread has begun to run the loop (it may have ended since).</summary>
    public bool HasStarted => Volatile.Read(ref _threadId) != 0;

    /// <summary>Gets a value indicating whether the loop thread is spinning for work, so that work offered now is taken at once.</summary>
    /// <remarks>A hint, read without the lock: a caller may use it to decide whether waiting briefly for a quick answer is worth it.</remarks>
    public bool IsLookingForWork => Volatile.Read(ref _queue.Looking);

    /// <summary>Gets a value indicating whether the loop has ended and accepts no more callbacks.</summary>
    public bool IsClosed => Volatile.Read(ref _queue.Pushed) == EndMarker.Instance;

    /// <inheritdoc/>
    /// <remarks>
    /// After the loop has ended the callback runs on the thread pool: an await continuation cannot be refused, and running
    /// it elsewhere is better than stranding the code that awaits.
    /// </remarks>
    public override void Post(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        var item = new PostedCallback(d, state);
        if (!TryEnqueue(item, external: false))
        {
            item.RunElsewhere();
        }
    }

    /// <inheritdoc/>
    /// <remarks>On the loop thread the callback runs inline; from another thread the caller blocks until the loop has run it.</remarks>
    /// <exception cref="ClosedResourceException">The loop has ended.</exception>
    public override void Send(SendOrPostCallback d, object? state)
    {
        ArgumentNullException.ThrowIfNull(d);
        if (IsLoopThread)
        {
            d(state);
            return;
        }

        var call = new BlockingLoopCall<object?>(
            () =>
            {
                d(state);
                return null;
            },
            ExecutionContext.Capture());
        if (!TryEnqueue(call, external: false))
        {
            throw new ClosedResourceException("The event loop has ended; it cannot run the callback.");
        }

        call.Wait(Timeout.InfiniteTimeSpan, TimeProvider.System);
        call.GetResult();
    }

    /// <inheritdoc/>
    public override SynchronizationContext CreateCopy() => this;

    /// <inheritdoc/>
    public override void OperationStarted()
    {
        lock (_lock)
        {
            _operations++;
        }
    }

    /// <inheritdoc/>
    public override void OperationCompleted()
    {
        lock (_lock)
        {
            _operations--;
            WakeLocked();
        }
    }

    /// <summary>Queues an item unless the loop is ending; returns whether it was accepted (and so will run).</summary>
    /// <param name="item">The callback.</param>
    /// <param name="external">
    /// True for work offered through the service's API, refused as soon as the loop has nothing left to wait for; false for
    /// continuations of work already on the loop, accepted until the loop has ended.
    /// </param>
    public bool TryEnqueue(LoopItem item, bool external)
    {
        // A caller that read the flag just before the loop set it may still push: the loop takes and runs that item, as
        // it does everything pushed before its end marker.
        if (external && _externalClosed)
        {
            return false;
        }

        Debug.Assert(item.Next is null && item is not EndMarker, "An item is offered once: the stack has no ABA problem only because no item is pushed twice.");
        // The first compare-and-swap guesses an empty stack (the loop keeps up) instead of reading the head first: reading it
        // would fetch the line from the loop's core once to read and again to write.
        LoopItem? head = null;
        while (true)
        {
            if (head == EndMarker.Instance)
            {
                item.Next = null;
                return false;
            }

            item.Next = head;
            var seen = Interlocked.CompareExchange(ref _queue.Pushed, item, head);
            if (seen == head)
            {
                break;
            }

            head = seen;
        }

        // After the push's full fence: a loop that then reads the stack empty has set Sleeping before, and the push sees it.
        if (Volatile.Read(ref _queue.Sleeping))
        {
            WakeAfterPush();
        }

        return true;
    }

    /// <summary>
    /// Runs <paramref name="start"/> on the calling thread with this context current, then runs queued callbacks until
    /// its task and every <c>async void</c> method started here have completed; returns that task.
    /// </summary>
    /// <exception cref="InvalidOperationException">The loop was already run, or <paramref name="start"/> returned null.</exception>
    public TTask Run<TTask>(Func<TTask> start)
        where TTask : Task
    {
        lock (_lock)
        {
            if (_threadId != 0)
            {
                throw new InvalidOperationException("The event loop has already been run; a loop runs once.");
            }

            Volatile.Write(ref _threadId, Environment.CurrentManagedThreadId);
        }

        var previous = Current;
        SetSynchronizationContext(this);
        try
        {
            var main = start() ?? throw new InvalidOperationException("The function returned a null task.");

            // Wakes the loop when the main task completes on another thread, so it can notice it has nothing left to do.
            main.ContinueWith(
                static (_, s) => ((LoopSynchronizationContext)s!).Wake(),
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            RunLoop(main);
            return main;
        }
        finally
        {
            SetSynchronizationContext(previous);
            Shutdown();
        }
    }

    private void RunLoop(Task main)
    {
        while (Next(main) is { } item)
        {
            try
            {
                item.Invoke();
            }
            catch (Exception ex) when (_onError is not null)
            {
                _onError(ex);
            }
            finally
            {
                // A callback may have replaced the current context and not restored it; the loop's callbacks must see the loop.
                if (Current != this)
                {
                    SetSynchronizationContext(this);
                }
            }
        }
    }

    /// <summary>Takes the next item, spinning briefly and then sleeping until one comes; returns null once the loop has ended.</summary>
    private LoopItem? Next(Task main)
    {
        var spinner = default(SpinWait);
        while (true)
        {
            if (!_externalClosed && main.IsCompleted && Volatile.Read(ref _operations) <= 0)
            {
                // Work offered from outside is refused from now on; what was accepted before still runs.
                _externalClosed = true;
            }

            if (_queue.Taken is { } next)
            {
                var after = next.Next;
                _queue.Taken = after;

                // Cleared only if set: a caller may be polling a field on the item's cache line for its answer, and a
                // write, even of the same value, would take the line away from the caller's core.
                // Stryker disable once all : skips a write of the value already there; only cache traffic differs.
                if (after is not null)
                {
                    next.Next = null;
                }

                return next;
            }

            if (Volatile.Read(ref _queue.Pushed) is not null)
            {
                _queue.Taken = OldestFirst(Interlocked.Exchange(ref _queue.Pushed, null));
                continue;
            }

            // Spin first, while nothing is offered and the main task runs: work offered meanwhile is taken at once, instead
            // of waking a sleeping thread.
            if (spinner.Count < Spins && !main.IsCompleted)
            {
                Volatile.Write(ref _queue.Looking, true);
                do
                {
                    spinner.SpinOnce(sleep1Threshold: -1);
                }
                while (spinner.Count < Spins && Volatile.Read(ref _queue.Pushed) is null);
                Volatile.Write(ref _queue.Looking, false);
                continue;
            }

            lock (_lock)
            {
                if (main.IsCompleted && _operations <= 0)
                {
                    // Ends only with nothing offered, in the step that makes every later push fail: nothing accepted is left unrun.
                    if (Interlocked.CompareExchange(ref _queue.Pushed, EndMarker.Instance, null) is null)
                    {
                        return null;
                    }

                    continue;
                }

                // A Dekker handshake with TryEnqueue: the flag, a full fence, then the stack; a push, its fence, then the flag.
                Volatile.Write(ref _queue.Sleeping, true);
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _queue.Pushed) is null)
                {
                    Monitor.Wait(_lock);
                }

                Volatile.Write(ref _queue.Sleeping, false);
            }
        }
    }

    /// <summary>Turns a list of items linked newest first into the same items linked oldest first.</summary>
    private static LoopItem? OldestFirst(LoopItem? newestFirst)
    {
        LoopItem? oldestFirst = null;
        while (newestFirst is { } item)
        {
            newestFirst = item.Next;

            // Not rewritten when unchanged (a lone item's null link): see Next.
            // Stryker disable once all : skips a write of the value already there; only cache traffic differs.
            if (newestFirst != oldestFirst)
            {
                item.Next = oldestFirst;
            }

            oldestFirst = item;
        }

        return oldestFirst;
    }

    /// <summary>Wakes the loop thread if it sleeps; called under the lock, after a change that may give it work or let it end.</summary>
    private void WakeLocked()
    {
        if (Volatile.Read(ref _queue.Sleeping))
        {
            Monitor.Pulse(_lock);
        }
    }

    private void Wake()
    {
        lock (_lock)
        {
            WakeLocked();
        }
    }

    /// <summary>Wakes the loop for an item already pushed, even if the caller's thread is interrupted while it waits for the lock.</summary>
    /// <remarks>
    /// The item is accepted once pushed: an interrupt thrown now would tell the caller it failed while the item still runs,
    /// and leave the loop asleep with work. The interrupt is raised again afterwards, for the caller's next wait.
    /// </remarks>
    private void WakeAfterPush()
    {
        var interrupted = false;
        while (true)
        {
            try
            {
                Wake();
                break;
            }
            catch (ThreadInterruptedException)
            {
                interrupted = true;
            }
        }

        if (interrupted)
        {
            Thread.CurrentThread.Interrupt();
        }
    }

    /// <summary>Closes the loop and hands on whatever it had accepted but not run (only when it ended by an exception).</summary>
    private void Shutdown()
    {
        var pushed = Interlocked.Exchange(ref _queue.Pushed, EndMarker.Instance);
        AbandonAll(_queue.Taken);
        _queue.Taken = null;
        AbandonAll(pushed == EndMarker.Instance ? null : OldestFirst(pushed));
    }

    private static void AbandonAll(LoopItem? oldestFirst)
    {
        while (oldestFirst is { } item)
        {
            oldestFirst = item.Next;
            item.Next = null;
            item.Abandon();
        }
    }

    /// <summary>The value of the stack of offered items once the loop has ended: no item is pushed onto it.</summary>
    private sealed class EndMarker() : LoopItem
    {
        public static readonly EndMarker Instance = new();

        public override void Invoke() => throw new InvalidOperationException("The loop's end marker never runs.");
    }

    /// <summary>The fields that change with every item, on cache lines apart from the context's other fields.</summary>
    /// <remarks>
    /// <para>
    /// A caller reads the loop's thread id and whether it still takes outside work on every call. Those never change while
    /// the loop runs, so they stay in the caller's cache, unless they share a cache line with a field the loop writes for
    /// every item: each call then first waits for that line to come back from the loop's core (docs/benchmarks.md, family
    /// 6: a <c>CallSync</c> took about 15 % less time with these fields apart, by the means of three runs against six).
    /// </para>
    /// <para>
    /// Two groups, each 64 bytes or more from the other and from anything outside the struct: what callers and the loop
    /// both touch (the stack and the two flags, usually on one line; one placement in eight puts a line boundary between
    /// the stack and the flags, since objects are aligned to 8 bytes only), and what only the loop touches (the items it
    /// has taken).
    /// </para>
    /// </remarks>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct QueueFields
    {
        /// <summary>Items offered and not yet taken, newest first, linked through <see cref="LoopItem.Next"/>; <see cref="EndMarker.Instance"/> once the loop has ended.</summary>
        [FieldOffset(64)]
        public LoopItem? Pushed;

        /// <summary>Set under the lock before the loop's last look at the stack and its <c>Monitor.Wait</c>, and read without the lock after each push: only a loop that may sleep is woken, under the lock, by new work (or a reason to end).</summary>
        [FieldOffset(72)]
        public bool Sleeping;

        /// <summary>Set while the loop thread spins for work; read after its push by a caller that waits for the answer, to decide whether a brief spin may catch it.</summary>
        [FieldOffset(73)]
        public bool Looking;

        /// <summary>Loop thread only: items taken from <see cref="Pushed"/> and not yet run, oldest first; more than 63 bytes after the flags, so never on their line.</summary>
        [FieldOffset(160)]
        public LoopItem? Taken;
    }
}
