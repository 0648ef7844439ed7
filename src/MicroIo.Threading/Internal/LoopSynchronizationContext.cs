namespace MicroIo.Internal;

/// <summary>
/// A single-threaded <see cref="SynchronizationContext"/>: a queue of callbacks that the thread which calls
/// <see cref="Run{TTask}(Func{TTask})"/> runs one at a time until the main task and every <c>async void</c> method
/// started on it have completed.
/// </summary>
/// <remarks>
/// <para>
/// Whether a callback is accepted is decided under the queue's lock, and so is the loop's end, in two steps. Once the main
/// task and every <c>async void</c> method have completed, the loop refuses work offered through the service's API
/// (<c>external</c>), so a caller that keeps offering work cannot keep it alive; it still accepts continuations posted by
/// work already on it. It ends only when it then finds its queue empty, and marks itself closed in that same critical
/// section. So a callback is either accepted and run by the loop, or refused (and the caller told); none is accepted and
/// then lost.
/// </para>
/// <para>
/// A callback that throws goes to the error handler (a service records it as its failure and keeps the loop running so
/// its task group can wind down); without a handler the exception ends the loop and is thrown from <c>Run</c>, as
/// Nito.AsyncEx's <c>AsyncContext</c> does.
/// </para>
/// </remarks>
internal sealed class LoopSynchronizationContext : SynchronizationContext
{
    private static readonly ContextCallback s_invokeItem = static s => ((LoopItem)s!).Invoke();

    // SpinWait.SpinOnce rounds the loop spends looking for work before it sleeps: work offered right after the last item
    // (the next call of a caller that just got its answer) is then taken without waking a sleeping thread.
    private const int Spins = 35;

    // Monitor (not System.Threading.Lock) because the loop thread sleeps with Monitor.Wait until work arrives.
    private readonly object _lock = new();
    private readonly Queue<LoopItem> _queue = new();
    private readonly Action<Exception>? _onError;
    private int _threadId;
    private int _operations;
    private bool _externalClosed;
    private bool _closed;

    // The queue's length, written under the lock and read without it while the loop spins.
    private int _queued;

    // Set under the lock while the loop thread sleeps in Monitor.Wait: only then does new work (or a reason to end) pulse.
    private bool _sleeping;

    // Set while the loop thread spins for work: work offered then is taken at once.
    private bool _looking;

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
    public bool IsLookingForWork => Volatile.Read(ref _looking);

    /// <summary>Gets a value indicating whether the loop has ended and accepts no more callbacks.</summary>
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
        lock (_lock)
        {
            if (_closed || (external && _externalClosed))
            {
                return false;
            }

            _queue.Enqueue(item);
            _queued = _queue.Count;
            WakeLocked();
            return true;
        }
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
                if (item.Context is { } context)
                {
                    ExecutionContext.Run(context, s_invokeItem, item);
                }
                else
                {
                    item.Invoke();
                }
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
            // Spin first, outside the lock, while nothing is queued and the main task runs (both read without the lock, and
            // decided again under it): a caller that offers work meanwhile takes the lock uncontended, and the loop takes the
            // work at once instead of being woken.
            if (spinner.Count < Spins && Volatile.Read(ref _queued) == 0 && !main.IsCompleted)
            {
                Volatile.Write(ref _looking, true);
                do
                {
                    spinner.SpinOnce(sleep1Threshold: -1);
                }
                while (spinner.Count < Spins && Volatile.Read(ref _queued) == 0);
            }

            lock (_lock)
            {
                _looking = false;
                var idle = main.IsCompleted && _operations <= 0;
                if (idle)
                {
                    // Work offered from outside is refused from now on; what was accepted before still runs.
                    _externalClosed = true;
                }

                if (_queue.TryDequeue(out var item))
                {
                    _queued = _queue.Count;
                    return item;
                }

                if (idle)
                {
                    // Decided under the lock that TryEnqueue takes, with the queue empty: nothing accepted is left unrun.
                    _closed = true;
                    return null;
                }

                _sleeping = true;
                try
                {
                    Monitor.Wait(_lock);
                }
                finally
                {
                    _sleeping = false;
                }
            }
        }
    }

    /// <summary>Wakes the loop thread if it sleeps; called under the lock, after a change that may give it work or let it end.</summary>
    private void WakeLocked()
    {
        if (_sleeping)
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

    /// <summary>Closes the loop and hands on whatever it had accepted but not run (only when it ended by an exception).</summary>
    private void Shutdown()
    {
        LoopItem[] left;
        lock (_lock)
        {
            _externalClosed = true;
            _closed = true;
            left = [.. _queue];
            _queue.Clear();
            _queued = 0;
        }

        foreach (var item in left)
        {
            item.Abandon();
        }
    }
}
