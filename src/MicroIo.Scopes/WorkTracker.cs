using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Counts work in flight and lets callers wait until none is left (a wait group).
/// </summary>
/// <remarks>
/// Call <see cref="Add"/> when work starts and <see cref="Done"/> when it ends, or wrap the work in
/// <c>using (tracker.Track()) { … }</c>. Waiters are released each time the count returns to zero. Every member may
/// be called from any thread.
/// </remarks>
/// <example>
/// <code>
/// var tracker = new WorkTracker();
/// foreach (var job in jobs)
/// {
///     var token = tracker.Track();
///     _ = Task.Run(async () =&gt; { using (token) { await job(); } });
/// }
/// await tracker.WaitIdleAsync();
/// </code>
/// </example>
public sealed class WorkTracker
{
    private readonly Lock _lock = new();
    private int _count;

    // Completed whenever the tracker is idle; replaced by a fresh source when work starts again.
    private TaskCompletionSource _idle = CreateCompletedSource();

    /// <summary>Gets the number of pieces of work in flight.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>Gets a value indicating whether any work is in flight.</summary>
    /// <value><see langword="true"/> if <see cref="Count"/> is above zero; otherwise, <see langword="false"/>.</value>
    public bool IsBusy => Count > 0;

    /// <summary>Records that one piece of work has started.</summary>
    /// <exception cref="InvalidOperationException">The count would overflow.</exception>
    public void Add()
    {
        lock (_lock)
        {
            if (_count == int.MaxValue)
            {
                throw new InvalidOperationException("WorkTracker count would overflow.");
            }

            if (_count++ == 0)
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Records that one piece of work has ended, and releases the waiters when none is left.</summary>
    /// <exception cref="InvalidOperationException">There is no matching <see cref="Add"/>; the count is left unchanged.</exception>
    public void Done()
    {
        TaskCompletionSource idle;
        lock (_lock)
        {
            if (_count == 0)
            {
                throw new InvalidOperationException("WorkTracker.Done() was called without a matching Add().");
            }

            if (--_count > 0)
            {
                return;
            }

            idle = _idle;
        }

        idle.TrySetResult();
    }

    /// <summary>Records that one piece of work has started, and returns a handle that records its end when disposed.</summary>
    /// <returns>A handle whose first <see cref="IDisposable.Dispose"/> calls <see cref="Done"/>; later calls do nothing.</returns>
    /// <exception cref="InvalidOperationException">The count would overflow.</exception>
    public IDisposable Track()
    {
        Add();
        return new Tracked(this);
    }

    /// <summary>Blocks the calling thread until no work is in flight or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns><see langword="true"/> if the tracker became idle; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public bool WaitIdle(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        return CurrentIdleTask().Wait(timeout, cancellationToken);
    }

    /// <summary>Waits asynchronously until no work is in flight.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A task that completes when the tracker is idle.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task WaitIdleAsync(CancellationToken cancellationToken = default) => CurrentIdleTask().WaitAsync(cancellationToken);

    private static TaskCompletionSource CreateCompletedSource()
    {
        var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.SetResult();
        return source;
    }

    private Task CurrentIdleTask()
    {
        lock (_lock)
        {
            return _idle.Task;
        }
    }

    private sealed class Tracked(WorkTracker owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Done();
            }
        }
    }
}
