using System.Diagnostics.CodeAnalysis;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace MicroIo;

/// <summary>
/// Runs child tasks that cannot outlive it: <see cref="RunAsync(Func{TaskGroup, Task}, CancellationToken)"/> returns only
/// after every child has finished.
/// </summary>
/// <remarks>
/// <para>
/// The group has a <see cref="CancelScope"/> that its body and children run in; every child receives its token. A child
/// that fails cancels the group (unless the group supervises, see <see cref="TaskGroupMode"/>); the body's failure and
/// every child's are thrown together as one <see cref="AggregateException"/> once all children have ended. Cancelling
/// the group (<see cref="Cancel(string?)"/>, its scope or its deadline) is a normal exit. Cancellation from outside (the
/// caller's token or an enclosing scope) stops the group too and propagates as <see cref="OperationCanceledException"/>.
/// </para>
/// <para>
/// Children run where the group's owner runs: posted to the <see cref="SynchronizationContext"/> that was current when
/// the group started (so a loop thread keeps its children), else on the thread pool. They see the group's scope as their
/// enclosing scope, never the scopes of the code that started them. Every member may be called from any thread.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// await TaskGroup.RunAsync(async group =&gt;
/// {
///     var port = await group.StartAsync&lt;int&gt;(async (ready, ct) =&gt;
///     {
///         using var listener = Listen();
///         ready.Started(listener.Port);
///         await ServeAsync(listener, ct);
///     });
///     group.StartSoon(ct =&gt; PollAsync(port, ct));
///     await Task.Delay(TimeSpan.FromMinutes(1), group.Token);
///     group.Cancel("done");
/// });
/// </code>
/// </example>
public sealed class TaskGroup
{
    private static readonly TaskGroupOptions s_defaults = new();

    // The group counts children started and children ended apart, on two cache lines: a spawner and the threads that end
    // children would otherwise take one line from each other with every child. Both counts only grow, in 64 bits, so a
    // group that lives as long as its service cannot run out. The flags ride on the counts they must be atomic with: a
    // start is refused once Finished is set, and the finish is declared only by a compare-exchange that fails if a child
    // started since it looked. Starting and ending a child take interlocked operations only, no lock.
    private const long Finished = 1L << 62;
    private const long BodyEnded = 1L << 62;
    private const long CountMask = Finished - 1;
    private const int MaxRunning = (1 << 30) - 1;

    private readonly Lock _lock = new();
    private readonly CancelScope _scope;
    private readonly TaskGroupMode _mode;
    private readonly List<Exception> _errors = [];
    private readonly SynchronizationContext? _owner;
    private ChildCounts _counts;
    private TaskCompletionSource? _finishedSource;
    private bool _childCancelled;

    private TaskGroup(TaskGroupOptions options, SynchronizationContext? owner)
    {
        _mode = options.Mode;
        _owner = owner;
        _scope = new CancelScope(options.TimeProvider);
    }

    /// <summary>Gets the group's cancel scope: cancel it, or set its deadline, to stop the body and every child.</summary>
    public CancelScope CancelScope => _scope;

    /// <summary>Gets the token the body and the children run with; it is cancelled when the group is.</summary>
    public CancellationToken Token => _scope.Token;

    /// <summary>Gets the number of children that have not finished yet.</summary>
    public int RunningCount
    {
        get
        {
            // The two counts are read apart: an ended count unchanged across the read of the started one makes a pair
            // that held at one moment, as the counts only grow.
            var spinner = default(SpinWait);
            while (true)
            {
                var ended = Volatile.Read(ref _counts.Ended);
                var started = Volatile.Read(ref _counts.Started);
                if (Volatile.Read(ref _counts.Ended) == ended)
                {
                    return (int)((started & CountMask) - (ended & CountMask));
                }

                spinner.SpinOnce();
            }
        }
    }

    /// <summary>Gets a value indicating whether the group has ended, after which no child can be started.</summary>
    public bool IsFinished => (Volatile.Read(ref _counts.Started) & Finished) != 0;

    /// <summary>Gets or sets code that tests run when the group has found the body and every child ended, before it declares itself finished.</summary>
    internal Action? BeforeFinishingForTests { get; set; }

    /// <summary>Runs a body with a new fail-fast group and returns once the body and every child have finished.</summary>
    /// <param name="body">The code that starts children; it receives the group.</param>
    /// <param name="cancellationToken">A token whose cancellation stops the group and propagates.</param>
    /// <returns>A task that completes when the body and every child have finished.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">The body or children failed; it holds every failure.</exception>
    /// <exception cref="OperationCanceledException">The caller's token or an enclosing scope cancelled the group.</exception>
    public static Task RunAsync(Func<TaskGroup, Task> body, CancellationToken cancellationToken = default) =>
        RunAsync(body, s_defaults, cancellationToken);

    /// <summary>Runs a body with a new group configured by <paramref name="options"/> and returns once the body and every child have finished.</summary>
    /// <param name="body">The code that starts children; it receives the group.</param>
    /// <param name="options">The group's mode (fail-fast or supervising) and clock.</param>
    /// <param name="cancellationToken">A token whose cancellation stops the group and propagates.</param>
    /// <returns>A task that completes when the body and every child have finished.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> or <paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">The body or children failed; it holds every failure.</exception>
    /// <exception cref="OperationCanceledException">The caller's token or an enclosing scope cancelled the group.</exception>
    public static Task RunAsync(Func<TaskGroup, Task> body, TaskGroupOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunAsync<bool>(
            async group =>
            {
                await body(group).ConfigureAwait(false);
                return true;
            },
            options,
            cancellationToken);
    }

    /// <summary>Runs a body that returns a value with a new fail-fast group, once the body and every child have finished.</summary>
    /// <typeparam name="T">The type of the body's result.</typeparam>
    /// <param name="body">The code that starts children; it receives the group.</param>
    /// <param name="cancellationToken">A token whose cancellation stops the group and propagates.</param>
    /// <returns>The body's result, or <see langword="default"/> if the group was cancelled (by itself) before the body returned.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">The body or children failed; it holds every failure.</exception>
    /// <exception cref="OperationCanceledException">The caller's token or an enclosing scope cancelled the group.</exception>
    public static Task<T?> RunAsync<T>(Func<TaskGroup, Task<T>> body, CancellationToken cancellationToken = default) =>
        RunAsync(body, s_defaults, cancellationToken);

    /// <summary>Runs a body that returns a value with a new group configured by <paramref name="options"/>, once the body and every child have finished.</summary>
    /// <typeparam name="T">The type of the body's result.</typeparam>
    /// <param name="body">The code that starts children; it receives the group.</param>
    /// <param name="options">The group's mode (fail-fast or supervising) and clock.</param>
    /// <param name="cancellationToken">A token whose cancellation stops the group and propagates.</param>
    /// <returns>The body's result, or <see langword="default"/> if the group was cancelled (by itself) before the body returned.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> or <paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">The body or children failed; it holds every failure.</exception>
    /// <exception cref="OperationCanceledException">The caller's token or an enclosing scope cancelled the group.</exception>
    public static Task<T?> RunAsync<T>(Func<TaskGroup, Task<T>> body, TaskGroupOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(options);
        return new TaskGroup(options, CaptureOwner()).RunCoreAsync(body, cancellationToken);
    }

    /// <summary>Cancels the group: the body and every child are stopped, as a normal exit.</summary>
    /// <param name="reason">Why the group is cancelled.</param>
    /// <returns><see langword="true"/> for the first call; otherwise, <see langword="false"/>.</returns>
    public bool Cancel(string? reason = null) => _scope.Cancel(reason);

    /// <summary>Schedules a child that receives the group's token.</summary>
    /// <param name="child">The child's code.</param>
    /// <exception cref="ArgumentNullException"><paramref name="child"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The group has finished, or has 2^30 - 1 children running already.</exception>
    /// <remarks>
    /// A child of a cancelled group still starts, with a cancelled token, so its cleanup code runs. May be called from any
    /// thread. If the owner's synchronization context throws from <c>Post</c>, that exception is rethrown and the child
    /// does not count: a context that throws must not have queued the callback.
    /// </remarks>
    public void StartSoon(Func<CancellationToken, Task> child)
    {
        ArgumentNullException.ThrowIfNull(child);
        Reserve();
        // One small work item per child, run in the spawner's execution context as QueueUserWorkItem would run it: no
        // closure, no delegate and no boxed state per child.
        var work = new ChildWorkItem(this, child, ExecutionContext.Capture());
        try
        {
            if (_owner is { } owner)
            {
                owner.Post(ChildWorkItem.Callback, work);
            }
            else
            {
                ThreadPool.UnsafeQueueUserWorkItem(work, preferLocal: false);
            }
        }
        catch
        {
            // The child will never run: give its place back, or the group would wait for it forever.
            Done();
            throw;
        }
    }

    /// <summary>Starts a child and waits until it signals readiness, returning the value it signals.</summary>
    /// <typeparam name="T">The type of the readiness value.</typeparam>
    /// <param name="child">The child's code; it receives its readiness handle and its token.</param>
    /// <param name="cancellationToken">A token that, until the child signals, cancels the child (as the caller's ambient scope does).</param>
    /// <returns>The value the child passed to <see cref="TaskReadiness{T}.Started(T)"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="child"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The group has finished or has 2^30 - 1 children running already, or the child returned without signalling readiness.</exception>
    /// <exception cref="OperationCanceledException">The group, the caller's token or the caller's scope was cancelled before the child signalled.</exception>
    /// <remarks>
    /// A child that fails before it signals hands its exception to this caller only: the group goes on. Once it signals, it
    /// belongs to the group like any other child.
    /// </remarks>
    public Task<T> StartAsync<T>(Func<TaskReadiness<T>, CancellationToken, Task> child, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(child);
        ReserveForStarter(cancellationToken);

        var starter = new StarterLink(CancelScope.Current?.Token ?? CancellationToken.None, cancellationToken);
        var readiness = new TaskReadiness<T>(starter.MoveToGroup);
        try
        {
            Launch(() => RunStartedChildAsync(child, readiness, starter));
        }
        catch
        {
            // The child will never run: drop its links to the starter and give its place back.
            starter.MoveToGroup();
            Done();
            throw;
        }

        return readiness.Ready;
    }

    /// <summary>Starts a child and waits until it signals readiness.</summary>
    /// <param name="child">The child's code; it receives its readiness handle and its token.</param>
    /// <param name="cancellationToken">A token that, until the child signals, cancels the child (as the caller's ambient scope does).</param>
    /// <returns>A task that completes when the child signals readiness.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="child"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The group has finished, or the child returned without signalling readiness.</exception>
    /// <exception cref="OperationCanceledException">The group, the caller's token or the caller's scope was cancelled before the child signalled.</exception>
    public Task StartAsync(Func<TaskReadiness, CancellationToken, Task> child, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(child);
        return StartAsync<bool>((readiness, token) => child(new TaskReadiness(readiness), token), cancellationToken);
    }

    private static SynchronizationContext? CaptureOwner()
    {
        var context = SynchronizationContext.Current;

        // The base class posts to the thread pool anyway; only a real context (a loop, a UI thread) is kept.
        return context is null || context.GetType() == typeof(SynchronizationContext) ? null : context;
    }

    private async Task<T?> RunCoreAsync<T>(Func<TaskGroup, Task<T>> body, CancellationToken cancellationToken)
    {
        _scope.EnterCore(cancellationToken);
        T? result = default;
        Exception? bodyError = null;
        OperationCanceledException? passThrough = null;
        try
        {
            result = await body(this).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_scope.CatchOwnCancellation())
        {
            // The group cancelled itself: a normal exit.
        }
        catch (OperationCanceledException ex)
        {
            // Cancelled from outside, the children are cancelled already or about to be; a cancellation of the body's own
            // stops them.
            passThrough = ex;
            if (!_scope.IsCancellationUnderway())
            {
                CancelGroup("the body ended with a cancellation of its own");
            }
        }
        catch (Exception ex)
        {
            bodyError = ex;
            CancelGroup("the body failed");
        }

        // The body lets go of the group; the last to end, the body included, declares the group finished.
        if (!TryFinish(Interlocked.Add(ref _counts.Ended, BodyEnded)))
        {
            await FinishedSource().Task.ConfigureAwait(false);
        }

        _scope.Exit();

        List<Exception> errors;
        bool childCancelled;
        lock (_lock)
        {
            errors = bodyError is null ? [.. _errors] : [bodyError, .. _errors];
            childCancelled = _childCancelled;
        }

        if (errors.Count > 0)
        {
            throw new AggregateException("One or more tasks of the group failed.", errors);
        }

        if (_scope.IsCancelledOutside && (passThrough is not null || childCancelled))
        {
            if (passThrough is not null && _scope.IsPassThrough(passThrough))
            {
                ExceptionDispatchInfo.Throw(passThrough);
            }

            throw new OperationCanceledException("The task group was cancelled from outside.", passThrough, _scope.OutsideToken);
        }

        if (passThrough is not null)
        {
            ExceptionDispatchInfo.Throw(passThrough);
        }

        return result;
    }

    [DoesNotReturn]
    private static void ThrowFinished() =>
        throw new InvalidOperationException("The task group has finished; no child can be started in it.");

    [DoesNotReturn]
    private static void ThrowTooManyChildren() =>
        throw new InvalidOperationException("The task group has too many children running to start another.");

    /// <summary>Counts a child in, unless the group has finished.</summary>
    private void Reserve()
    {
        var started = Volatile.Read(ref _counts.Started);
        while (true)
        {
            // Added only while the group is not finished, in one atomic step: no child can slip in after the finish.
            if ((started & Finished) != 0)
            {
                ThrowFinished();
            }

            // Counted against an ended count seen before, which only grows: the ended count's line, which every child's
            // end writes, is read again only when that many children seem to run, which with few running is once in
            // about 2^30 starts.
            if (started - Volatile.Read(ref _counts.EndedSeen) >= MaxRunning && !HasRoomForAChild(started))
            {
                ThrowTooManyChildren();
            }

            var seen = Interlocked.CompareExchange(ref _counts.Started, started + 1, started);
            if (seen == started)
            {
                return;
            }

            started = seen;
        }
    }

    /// <summary>Reads the ended count again, for the next starts to count against, and says whether fewer than the most children run.</summary>
    private bool HasRoomForAChild(long started)
    {
        // Starts racing here may store older counts over newer ones: any ended count read is still one that was reached.
        var ended = Volatile.Read(ref _counts.Ended) & CountMask;
        Volatile.Write(ref _counts.EndedSeen, ended);
        return started - ended < MaxRunning;
    }

    /// <summary>Counts in a child that a starter will wait for, unless the group has finished or the starter is cancelled.</summary>
    private void ReserveForStarter(CancellationToken callerToken)
    {
        // A finished group says so, even to a cancelled starter.
        if (IsFinished)
        {
            ThrowFinished();
        }

        // A starter must not wait for a child that is cancelled before it can run.
        callerToken.ThrowIfCancellationRequested();
        if (CancelScope.Current is { IsCancellationRequested: true } current)
        {
            current.Token.ThrowIfCancellationRequested();
        }

        _scope.Token.ThrowIfCancellationRequested();
        Reserve();
    }

    /// <summary>Records that a child has ended; the last one out, after the body, finishes the group.</summary>
    private void Done()
    {
        // While the body runs, an ending child touches only the ended count's line.
        var ended = Interlocked.Increment(ref _counts.Ended);
        if ((ended & BodyEnded) != 0 && TryFinish(ended))
        {
            FinishedSource().TrySetResult();
        }
    }

    /// <summary>Declares the group finished if the body and every child started so far have ended, as of the given ended count.</summary>
    /// <param name="ended">The ended count as the caller's own interlocked add to it returned, with the body's flag set.</param>
    /// <returns><see langword="true"/> for the one caller that finishes the group; otherwise, <see langword="false"/>.</returns>
    /// <remarks>
    /// A child is started before it ends, so the started count read after the caller's add is at least the ended count
    /// then; equal, nothing is running. Two callers can both see a match (a child started and ended in between: the
    /// second's), so the compare-exchange decides: it fails if a child started since the read, and once it succeeds the
    /// started count never changes again. A child that makes it fail is then waited for: the last end after it finishes
    /// the group.
    /// </remarks>
    private bool TryFinish(long ended)
    {
        var started = Volatile.Read(ref _counts.Started);
        if ((ended & CountMask) != started)
        {
            return false;
        }

        BeforeFinishingForTests?.Invoke();
        return Interlocked.CompareExchange(ref _counts.Started, started | Finished, started) == started;
    }

    /// <summary>Gets the source the body waits on for its last children, made only when a group has some to wait for.</summary>
    private TaskCompletionSource FinishedSource()
    {
        if (Volatile.Read(ref _finishedSource) is { } source)
        {
            return source;
        }

        var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return Interlocked.CompareExchange(ref _finishedSource, created, null) ?? created;
    }

    private void Launch(Func<Task> run)
    {
        // A child's runner catches everything it can throw, so the discarded task never faults unobserved.
        if (_owner is { } owner)
        {
            var context = ExecutionContext.Capture();
            owner.Post(
                static state =>
                {
                    var (context, run) = ((ExecutionContext?, Func<Task>))state!;
                    if (context is null)
                    {
                        _ = run();
                    }
                    else
                    {
                        ExecutionContext.Run(context, static r => _ = ((Func<Task>)r!)(), run);
                    }
                },
                (context, run));
        }
        else
        {
            ThreadPool.QueueUserWorkItem(static run => _ = run(), run, preferLocal: false);
        }
    }

    /// <summary>Runs a child inside a captured execution context, which <see cref="ExecutionContext.Run"/> restores afterwards.</summary>
    /// <remarks>
    /// Setting the group's scope as ambient here cannot leak to the thread, so a child that completes at once needs no
    /// async method around it; one that does not is awaited by <see cref="AwaitChildAsync"/>.
    /// </remarks>
    private void RunChild(Func<CancellationToken, Task> child)
    {
        CancelScope.SetCurrent(_scope);
        Task task;
        try
        {
            task = child(_scope.Token);
        }
        catch (Exception ex)
        {
            // Recorded as the awaiter records a child that fails later: one path for every failure.
            task = Task.FromException(ex);
        }

        if (task is { IsCompletedSuccessfully: true })
        {
            Done();
        }
        else
        {
            // The awaiter catches everything the child can throw (a null task too), so the discarded task never faults.
            _ = AwaitChildAsync(task);
        }
    }

    /// <summary>Waits for a child that did not end at once, records how it ended, and counts it out.</summary>
    private async Task AwaitChildAsync(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            OnChildEnded(ex);
        }
        finally
        {
            Done();
        }
    }

    /// <summary>Runs a child in the thread's own execution context (its spawner suppressed the flow).</summary>
    /// <remarks>An async method restores the thread's context when it returns, so the group's scope stays the child's.</remarks>
    private async Task RunChildAsync(Func<CancellationToken, Task> child)
    {
        CancelScope.SetCurrent(_scope);
        try
        {
            await child(_scope.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            OnChildEnded(ex);
        }
        finally
        {
            Done();
        }
    }

    private async Task RunStartedChildAsync<T>(Func<TaskReadiness<T>, CancellationToken, Task> child, TaskReadiness<T> readiness, StarterLink starter)
    {
        // The child's own scope: inside the group's, and also cancelled by the starter until the child signals readiness.
        CancelScope.SetCurrent(_scope);
        var scope = new CancelScope();
        try
        {
            scope.EnterCore(starter.Token);
            try
            {
                await child(readiness, scope.Token).ConfigureAwait(false);
            }
            finally
            {
                scope.Exit();
            }

            readiness.TryFail(new InvalidOperationException("The child returned without signalling readiness (TaskReadiness.Started was never called)."));
        }
        catch (Exception ex)
        {
            // Before readiness, the failure is the starter's alone; after it, the group's, unless it is the starter's
            // cancellation, which reached the child before it signalled.
            if (!readiness.TryFail(ex))
            {
                OnChildEnded(ex, cancelledByStarter: starter.Token.IsCancellationRequested);
            }
        }
        finally
        {
            starter.MoveToGroup();
            Done();
        }
    }

    private void OnChildEnded(Exception exception, bool cancelledByStarter = false)
    {
        if (exception is OperationCanceledException && (_scope.IsCancellationUnderway() || cancelledByStarter))
        {
            lock (_lock)
            {
                _childCancelled = true;
            }

            return;
        }

        lock (_lock)
        {
            _errors.Add(exception);
        }

        if (_mode == TaskGroupMode.FailFast)
        {
            CancelGroup("a child failed");
        }
    }

    /// <summary>Cancels the group from inside; a token callback that throws is recorded as a failure, never left to escape.</summary>
    /// <remarks>An escaping exception here would skip the wait for the children, or fault a child's discarded task.</remarks>
    private void CancelGroup(string reason)
    {
        try
        {
            _scope.Cancel(reason);
        }
        catch (AggregateException ex)
        {
            lock (_lock)
            {
                _errors.Add(ex);
            }
        }
    }

    /// <summary>The started and ended counts, on 64-byte cache lines (x64's; Arm64's may be longer) that share no other field.</summary>
    /// <remarks>
    /// The started count, with the ended count its starts have seen beside it, and the ended count are 64 bytes or more
    /// apart, and from every other field of the group and of any object next to it.
    /// </remarks>
    [StructLayout(LayoutKind.Explicit, Size = 216)]
    private struct ChildCounts
    {
        /// <summary>Children ever counted in, plus <see cref="Finished"/> once the group has finished.</summary>
        [FieldOffset(64)]
        public long Started;

        /// <summary>An ended count (without its flag) that a start has read, usually on the line of the starts that read it (one placement in eight, objects being aligned to 8 bytes only, puts a line boundary between the two).</summary>
        [FieldOffset(72)]
        public long EndedSeen;

        /// <summary>Children ever ended, plus <see cref="BodyEnded"/> once the body has let go.</summary>
        [FieldOffset(144)]
        public long Ended;
    }

    /// <summary>Runs a child started with <see cref="StartSoon"/> on the thread pool or the owner's context, in the execution context it was started from.</summary>
    private sealed class ChildWorkItem(TaskGroup group, Func<CancellationToken, Task> child, ExecutionContext? context) : IThreadPoolWorkItem
    {
        private static readonly ContextCallback s_run = static s => ((ChildWorkItem)s!).Run();

        /// <summary>Gets the callback that runs a work item posted to the owner's synchronization context.</summary>
        public static SendOrPostCallback Callback { get; } = static s => ((ChildWorkItem)s!).Execute();

        public void Execute()
        {
            if (context is null)
            {
                // The runners catch everything the child can throw, so the discarded task never faults unobserved.
                _ = group.RunChildAsync(child);
            }
            else
            {
                ExecutionContext.Run(context, s_run, this);
            }
        }

        private void Run() => group.RunChild(child);
    }

    /// <summary>Links a starting child to its starter's token and ambient scope until the child signals readiness.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "The source has no timer and no linked tokens; its links are registrations, removed by MoveToGroup.")]
    private sealed class StarterLink
    {
        private readonly Lock _lock = new();
        private readonly CancellationTokenSource _cts = new();
        private readonly CancellationTokenRegistration _scopeRegistration;
        private readonly CancellationTokenRegistration _tokenRegistration;
        private bool _moved;
        private bool _cancelled;

        public StarterLink(CancellationToken scopeToken, CancellationToken callerToken)
        {
            _scopeRegistration = scopeToken.UnsafeRegister(static s => ((StarterLink)s!).CancelFromStarter(), this);
            _tokenRegistration = callerToken.UnsafeRegister(static s => ((StarterLink)s!).CancelFromStarter(), this);
        }

        public CancellationToken Token => _cts.Token;

        /// <summary>Cuts the child loose from its starter; returns false if the starter's cancellation got to the child first.</summary>
        public bool MoveToGroup()
        {
            lock (_lock)
            {
                if (!_moved)
                {
                    _moved = true;
                    _scopeRegistration.Unregister();
                    _tokenRegistration.Unregister();
                }

                return !_cancelled;
            }
        }

        private void CancelFromStarter()
        {
            // Decided under the lock that MoveToGroup takes: either the child moved first and stays uncancelled, or it is
            // cancelled and its handshake fails.
            lock (_lock)
            {
                if (_moved || _cancelled)
                {
                    return;
                }

                _cancelled = true;
            }

            _cts.Cancel();
        }
    }
}
