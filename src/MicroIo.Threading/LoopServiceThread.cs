using System.Runtime.ExceptionServices;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Runs a service on a dedicated thread that owns an event loop, with a task group whose children run on that loop and
/// safe bridges into it from other threads.
/// </summary>
/// <remarks>
/// <para>
/// The loop is a single-threaded <see cref="SynchronizationContext"/> on the service's thread: <see cref="RunAsync"/>
/// (overridden, or the body given to the constructor) and everything it awaits without <c>ConfigureAwait(false)</c> runs
/// there. It runs as the body of <see cref="TaskGroup"/>, so children started in the group run on the loop too, and the
/// token it receives is the group's. The loop ends once the group has finished (<see cref="RunAsync"/> and every child)
/// and every <c>async void</c> method started on the loop has completed.
/// </para>
/// <para>
/// Other threads reach the loop through <see cref="CallSoon(Action)"/> (fire and forget),
/// <see cref="CallSync{T}(Func{T}, TimeSpan)"/> (run and wait for the result) and
/// <see cref="Submit{T}(Func{CancellationToken, Task{T}})"/> (run async work under the group: the group cannot finish while
/// it runs, and a stop cancels the caller's task). Each is accepted (and then runs, even while the service is stopping) or
/// refused with <see cref="ClosedResourceException"/> once the loop is ending (its task group has finished and nothing else
/// is outstanding): the decision is made atomically with the loop's end, so no callback is dropped silently, and a caller
/// that keeps offering work cannot keep the loop alive.
/// </para>
/// <para>
/// <see cref="ServiceThread.Stop(string?)"/> (or any close of <see cref="ServiceThread.Scope"/>) cancels the task group, so
/// the body, its children and submitted work stop with the service. An exception thrown by a callback on the loop (a
/// <see cref="CallSoon(Action)"/> action, a posted continuation, or an <c>async void</c> method) fails the service: the
/// scope is failed, the group cancelled, waiters woken, and the exception is <see cref="ServiceThread.Exception"/>, seen
/// by <c>WaitStarted</c> and logged by <c>JoinOrLog</c>; the loop goes on until the group has wound down. The thread is
/// never killed silently.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var worker = new LoopServiceThread(async (service, ct) =&gt;
/// {
///     service.TaskGroup.StartSoon(token =&gt; PollAsync(token));
///     service.Started();
///     await Task.Delay(Timeout.InfiniteTimeSpan, ct);
/// });
/// worker.Start();
/// worker.WaitStarted(TimeSpan.FromSeconds(5));
/// int answer = worker.CallSync(() =&gt; 6 * 7, TimeSpan.FromSeconds(1));
/// string page = await worker.Submit(ct =&gt; FetchAsync(ct));
/// worker.Stop();
/// worker.JoinOrLog(TimeSpan.FromSeconds(1));
/// </code>
/// </example>
public class LoopServiceThread : ServiceThread
{
    private readonly Lock _groupLock = new();
    private readonly LoopSynchronizationContext _loop;
    private readonly Func<LoopServiceThread, CancellationToken, Task>? _body;
    private TaskGroup? _group;

    // The execution context of the group's body (its ambient scope is the group's), in which submitted work runs, as the
    // group's children do; null if the flow of the context was suppressed. Written and read on the loop thread only.
    private ExecutionContext? _groupContext;

    // Where the group's body is. While it runs, the group cannot finish, so submitted work runs straight from its queue
    // item. Written and read on the loop thread only.
    private BodyState _bodyState;

    private enum BodyState
    {
        NotStarted,

        // RunAsync has not returned.
        Running,

        // RunAsync has returned, and the group's body ends on the loop's next turn (see RunMainAsync).
        Held,

        Ended,
    }

    /// <summary>Initializes a loop service whose body is an override of <see cref="RunAsync"/>, or, without one, a body that reports started and waits for the stop.</summary>
    /// <param name="options">The service's settings, or <see langword="null"/> for the defaults.</param>
    public LoopServiceThread(ServiceThreadOptions? options = null)
        : base(options)
    {
        _loop = new LoopSynchronizationContext(OnLoopError);
    }

    /// <summary>Initializes a loop service that runs <paramref name="body"/> on its loop.</summary>
    /// <param name="body">The service body; it receives this service and the task group's token, and runs on the loop.</param>
    /// <param name="options">The service's settings, or <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    public LoopServiceThread(Func<LoopServiceThread, CancellationToken, Task> body, ServiceThreadOptions? options = null)
        : this(options)
    {
        ArgumentNullException.ThrowIfNull(body);
        _body = body;
    }

    /// <summary>Initializes a loop service that runs <paramref name="body"/> on its loop.</summary>
    /// <param name="body">The service body; it receives the task group's token, and runs on the loop. The service reports started just before the body begins (the body cannot reach <see cref="ServiceThread.Started"/>).</param>
    /// <param name="options">The service's settings, or <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    public LoopServiceThread(Func<CancellationToken, Task> body, ServiceThreadOptions? options = null)
        : this(options)
    {
        ArgumentNullException.ThrowIfNull(body);
        _body = (service, ct) =>
        {
            service.Started();
            return body(ct);
        };
    }

    /// <summary>Gets the service's task group: its children run on the loop and are cancelled when the service stops.</summary>
    /// <exception cref="InvalidOperationException">The loop has not started the group yet (it has once <see cref="RunAsync"/> runs).</exception>
    /// <remarks>
    /// Start children from the loop (for example in <see cref="RunAsync"/>); from other threads, prefer
    /// <see cref="Submit{T}(Func{CancellationToken, Task{T}})"/>. Once the service has ended, the group is finished and
    /// refuses new children.
    /// </remarks>
    public TaskGroup TaskGroup
    {
        get
        {
            lock (_groupLock)
            {
                return _group ?? throw new InvalidOperationException($"The loop of '{Name}' has not started its task group yet.");
            }
        }
    }

    /// <summary>Queues an action to run on the loop, and returns at once.</summary>
    /// <param name="action">The action; it runs on the loop thread, in the loop's own execution context (the caller's ambient <see cref="CancelScope"/> does not reach the loop).</param>
    /// <exception cref="ArgumentNullException"><paramref name="action"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished).</exception>
    /// <remarks>
    /// Actions run in the order they were queued, interleaved with the loop's other work. An accepted action runs even if
    /// the service is stopping. An exception it throws fails the service. May be called from any thread, the loop's included.
    /// </remarks>
    public void CallSoon(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Enqueue(PostedCallback.ForAction(action));
    }

    /// <summary>Runs a function on the loop and returns its result, blocking the caller until it has run.</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="func">The function; it runs on the loop thread.</param>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns>The function's result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the function did not run.</exception>
    /// <exception cref="TimeoutException">The function did not finish within <paramref name="timeout"/>.</exception>
    /// <remarks>
    /// <para>
    /// The function's own exception is rethrown as is. Called on the loop thread, the function runs inline (waiting for the
    /// loop from the loop would deadlock).
    /// </para>
    /// <para>
    /// A call that times out before the loop has started it never runs: the loop and the caller claim it atomically, and
    /// only one of them wins. If it had already started, it runs to completion on the loop and its result is discarded.
    /// </para>
    /// </remarks>
    public T CallSync<T>(Func<T> func, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(func);
        Timeouts.Validate(timeout);
        if (_loop.IsLoopThread)
        {
            return func();
        }

        var call = new BlockingLoopCall<T>(func, context: null);
        Enqueue(call);
        bool answered;
        try
        {
            answered = call.Wait(timeout, TimeProvider);
        }
        catch
        {
            // A thread interrupt, say: the caller is told the call failed, so a call that has not started must not run.
            call.TryAbandon();
            throw;
        }

        if (!answered)
        {
            if (call.TryAbandon())
            {
                throw new TimeoutException($"The call to the loop of '{Name}' did not start within {timeout}; it will not run.");
            }

            if (!call.IsCompleted)
            {
                // The loop runs it to the end; its outcome, a late exception included, is dropped with the call.
                throw new TimeoutException($"The call to the loop of '{Name}' started but did not finish within {timeout}; its result will be discarded.");
            }
        }

        return call.GetResult();
    }

    /// <summary>Runs an action on the loop, blocking the caller until it has run.</summary>
    /// <param name="action">The action; it runs on the loop thread.</param>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="action"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the action did not run.</exception>
    /// <exception cref="TimeoutException">The action did not finish within <paramref name="timeout"/>.</exception>
    /// <remarks>As <see cref="CallSync{T}(Func{T}, TimeSpan)"/>: inline on the loop thread; a call that timed out before it started never runs.</remarks>
    public void CallSync(Action action, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(action);
        CallSync(AsFunc(action), timeout);
    }

    /// <summary>Runs a function on the loop and returns a task for its result.</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="func">The function; it runs on the loop thread.</param>
    /// <param name="cancellationToken">A token that cancels the call while it has not started; once started, it runs to the end.</param>
    /// <returns>A task that completes with the function's result or exception, or is cancelled before the function started.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the function did not run.</exception>
    /// <remarks>
    /// The asynchronous twin of <see cref="CallSync{T}(Func{T}, TimeSpan)"/>, with <see cref="Task.Run(Func{Task}, CancellationToken)"/>'s
    /// cancellation rule: a call cancelled before it started never runs. Called on the loop thread, the function runs inline.
    /// The task's continuations never run inline on the loop. When the loop was idle, the caller spins for a few
    /// microseconds before returning, so a function the loop answers at once is awaited as a completed task, without a
    /// thread-pool hop.
    /// </remarks>
    public Task<T> CallSyncAsync<T>(Func<T> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        if (_loop.IsLoopThread)
        {
            try
            {
                return Task.FromResult(func());
            }
            catch (Exception ex)
            {
                return Task.FromException<T>(ex);
            }
        }

        var call = new LoopCall<T>(func);
        if (EnqueueAwaited(call))
        {
            Waits.SpinBriefly(call.Task, static task => task.IsCompleted);
        }

        return call.WaitAsync(cancellationToken);
    }

    /// <summary>Runs an action on the loop and returns a task that completes when it has run.</summary>
    /// <param name="action">The action; it runs on the loop thread.</param>
    /// <param name="cancellationToken">A token that cancels the call while it has not started; once started, it runs to the end.</param>
    /// <returns>A task that completes when the action has run, with its exception if it threw.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="action"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the action did not run.</exception>
    public Task CallSyncAsync(Action action, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(action);
        return CallSyncAsync(AsFunc(action), cancellationToken);
    }

    /// <summary>Runs async work on the loop under the service's task group, and returns a task for its result.</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="func">The work; it starts on the loop and receives the group's token.</param>
    /// <returns>
    /// A task that completes with the work's result or exception, and is cancelled when the service stops while the work
    /// still runs (even if the work ignores its token). Its continuations never run inline on the loop.
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the work did not run.</exception>
    /// <remarks>
    /// <para>
    /// The group cannot finish while the work runs, and the work sees the group's token and ambient scope. While the
    /// service's body (<see cref="RunAsync"/>) runs, the loop runs the work straight from its queue item: work that ends at
    /// once never becomes a child of the group (<see cref="TaskGroup.RunningCount"/> does not count it), and work still
    /// running when it returns does. Once the body has returned, the work is always a child, reserved before it runs. The work's failure belongs to the caller only: it does not fail the service or cancel its
    /// siblings.
    /// </para>
    /// <para>
    /// Work accepted after the group was cancelled never starts and its task is cancelled; work accepted as the group
    /// finishes gets <see cref="ClosedResourceException"/> in its task. An outcome the work has when it returns (a result,
    /// or an exception it throws or returns) is handed over as is, even if the work stopped the service itself; a
    /// cancellation of the work's own cancels the task. Once the work runs asynchronously, a stop cancels the task at once.
    /// </para>
    /// <para>
    /// May be called from any thread, the loop's included. When the loop was idle, the caller spins for a few microseconds
    /// before returning, so work that the loop finishes at once is awaited as a completed task, without a thread-pool hop.
    /// That task may be shared with other calls, as <see cref="Task.FromResult{TResult}(TResult)"/> shares its tasks for
    /// common values: do not tell calls apart by the identity of their tasks.
    /// </para>
    /// </remarks>
    public Task<T> Submit<T>(Func<CancellationToken, Task<T>> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        var work = new SubmittedWork<T>(this, func);
        return work.Collect(loopWasIdle: EnqueueAwaited(work));
    }

    /// <summary>Runs async work on the loop under the service's task group, and returns a task that completes with it.</summary>
    /// <param name="func">The work; it starts on the loop and receives the group's token.</param>
    /// <returns>A task that completes when the work has, and is cancelled when the service stops while the work still runs.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending (its task group has finished); the work did not run.</exception>
    /// <remarks>As <see cref="Submit{T}(Func{CancellationToken, Task{T}})"/>.</remarks>
    public Task Submit(Func<CancellationToken, Task> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Submit<object?>(async ct =>
        {
            // A null task is bad input, reported as the generic overload reports it (not as a NullReferenceException).
            var task = func(ct) ?? throw NullTask();

            // Only the result is set after this await; the work's own awaits keep the loop.
            await task.ConfigureAwait(false);
            return null;
        });
    }

    /// <summary>Runs async work that takes no token on the loop under the service's task group (see <see cref="Submit{T}(Func{CancellationToken, Task{T}})"/>).</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="func">The work; it starts on the loop.</param>
    /// <returns>A task that completes with the work's result, and is cancelled when the service stops while the work still runs.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending; the work did not run.</exception>
    public Task<T> Submit<T>(Func<Task<T>> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Submit(_ => func());
    }

    /// <summary>Runs async work that takes no token on the loop under the service's task group (see <see cref="Submit(Func{CancellationToken, Task})"/>).</summary>
    /// <param name="func">The work; it starts on the loop.</param>
    /// <returns>A task that completes when the work has, and is cancelled when the service stops while the work still runs.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending; the work did not run.</exception>
    public Task Submit(Func<Task> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        return Submit(_ => func());
    }

    /// <summary>Runs a function on the loop and returns its result, blocking the caller as long as it takes.</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="func">The function; it runs on the loop thread (inline when called there).</param>
    /// <returns>The function's result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="func"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started.</exception>
    /// <exception cref="ClosedResourceException">The loop has ended, or is ending; the function did not run.</exception>
    public T CallSync<T>(Func<T> func) => CallSync(func, Timeout.InfiniteTimeSpan);

    /// <summary>Runs the service body on the loop: by default, the body given to the constructor, or else reports started and waits for the stop.</summary>
    /// <param name="cancellationToken">The task group's token: cancelled when the service stops, fails, or a child fails.</param>
    /// <returns>A task that completes when the body ends; the service ends once every child has ended too.</returns>
    /// <remarks>
    /// Override it to write the body as a method: call <see cref="ServiceThread.Started"/> when ready, and return (or let
    /// the token's <see cref="OperationCanceledException"/> escape) when the token is cancelled. It runs on the loop thread,
    /// inside <see cref="TaskGroup"/>.
    /// </remarks>
    protected virtual Task RunAsync(CancellationToken cancellationToken) =>
        _body is not null ? _body(this, cancellationToken) : WaitForStopAsync(cancellationToken);

    /// <summary>Runs the event loop on the service's thread until the task group has finished.</summary>
    /// <remarks>Sealed: the body of a loop service is <see cref="RunAsync"/>.</remarks>
    protected sealed override void RunService()
    {
        var main = _loop.Run(RunMainAsync);
        if (main.IsFaulted)
        {
            // The group throws an AggregateException of every failure; a single one is the service's failure as is.
            var error = main.Exception!.InnerException!;
            if (error is AggregateException { InnerExceptions.Count: 1 } group)
            {
                error = group.InnerExceptions[0];
            }

            ExceptionDispatchInfo.Throw(error);
        }

        main.GetAwaiter().GetResult();
    }

    /// <summary>Cancels the task group when the scope closes; a group not created yet sees the closed scope when it is.</summary>
    private protected override void OnScopeClosing()
    {
        TaskGroup? group;
        lock (_groupLock)
        {
            group = _group;
        }

        group?.Cancel(Scope.Reason);
    }

    private async Task WaitForStopAsync(CancellationToken cancellationToken)
    {
        Started();
        await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunMainAsync()
    {
        // Called by the loop on its own thread, so the group captures the loop as the place its children run.
        await TaskGroup.RunAsync(async group =>
        {
            lock (_groupLock)
            {
                _group = group;
            }

            _groupContext = ExecutionContext.Capture();

            // A stop that came before the group existed found nothing to cancel: it must not be lost. The scope is closed
            // before its close callback runs, so either that callback sees the group or this check sees the close.
            if (Scope.IsClosed)
            {
                group.Cancel(Scope.Reason);
            }

            _bodyState = BodyState.Running;
            try
            {
                // ConfigureAwait(true): the body's continuation, like the body, belongs on the loop (so does _bodyState).
                await RunAsync(group.Token).ConfigureAwait(true);
            }
            finally
            {
                // The body may have returned inline from inside submitted work still on the loop's stack (the work completed
                // something the body awaited). The group must not finish under that work, so the group's body ends one loop
                // turn later: the loop runs one item at a time, so by then the work has ended or become a child. Yield posts
                // to the loop, which is current here (the body's continuation runs on it, and so does the group's start).
                _bodyState = BodyState.Held;
                await Task.Yield();
                _bodyState = BodyState.Ended;
            }
        }).ConfigureAwait(false);
    }

    /// <summary>Gets a value indicating whether the body has returned and the group's body waits for the loop's next turn; for tests, read on the loop thread.</summary>
    internal bool IsBodyHeld => _bodyState == BodyState.Held;

    /// <summary>Wraps an action as a function whose result nobody reads.</summary>
    private static Func<object?> AsFunc(Action action) =>
        () =>
        {
            action();
            return null;
        };

    private void OnLoopError(Exception exception)
    {
        if (!RecordFailure(exception, quiet: true))
        {
            // Only the first failure is the service's; a later one must still not vanish.
            Log.LaterLoopFailure(Logger, Name, exception);
        }
    }

    /// <summary>Queues work offered through the service's API, or throws if the loop refuses it.</summary>
    private void Enqueue(LoopItem item)
    {
        ThrowIfLoopNotStarted();
        if (!_loop.TryEnqueue(item, external: true))
        {
            throw LoopEnded();
        }
    }

    /// <summary>Queues work whose caller awaits the answer, or throws if the loop refuses it; returns whether the loop was idle (spinning for work), so that a brief spin by the caller may catch the answer.</summary>
    /// <remarks>
    /// A caller that spins for an answer the loop gives at once awaits a completed task rather than paying a thread-pool
    /// hop for its continuation.
    /// </remarks>
    private bool EnqueueAwaited(LoopItem item)
    {
        Enqueue(item);

        // Read after the push, usually from the cache line the push has just written: the loop's state before it, unless the
        // loop has already seen the push and stopped looking, in which case the caller only misses the brief spin.
        return _loop.IsLookingForWork;
    }

    private void ThrowIfLoopNotStarted()
    {
        if (_loop.HasStarted)
        {
            // Its thread runs (or ran) the loop, so it was started: no need to ask the service under its lock.
            return;
        }

        if (!HasThreadStarted && Scope.IsClosed)
        {
            throw new ClosedResourceException($"The service '{Name}' was stopped before it started; its loop will not take work.");
        }

        if (!HasThreadStarted)
        {
            throw new InvalidOperationException($"The service '{Name}' has not been started: call Start() before using its loop.");
        }
    }

    private ClosedResourceException LoopEnded() => new($"The event loop of '{Name}' has ended.");

    private InvalidOperationException NullTask() => new($"The work submitted to '{Name}' returned a null task.");

    /// <summary>Work given to <see cref="Submit{T}(Func{CancellationToken, Task{T}})"/>: its own queue item, run under the group from the loop, its outcome handed to the caller only.</summary>
    /// <remarks>
    /// <para>
    /// While the group's body runs, the group cannot finish during the loop's current turn (if the body returns inline from
    /// inside the work, the group's body ends a turn later), so the loop runs the work straight from this item, in the
    /// group's execution context and with its token. Work that ends at once hands over its outcome without ever becoming a
    /// task of the group's; work still running when it returns becomes a child of the group that waits for it.
    /// </para>
    /// <para>
    /// Otherwise the work goes through <see cref="TaskGroup.StartSoon(Func{CancellationToken, Task})"/>, which reserves its
    /// place in the group before it runs, and refuses it once the group has finished.
    /// </para>
    /// <para>
    /// An outcome known when the work returns (a result, or an exception thrown or returned) is handed over as is, even if
    /// the work stopped the service itself. Once the work runs asynchronously, a cancellation of the group cancels the
    /// caller's task at once, whatever the work does later.
    /// </para>
    /// <para>
    /// A result is left in this item (<see cref="ResultHandOver{T}"/>) for a caller still spinning for it, which then
    /// returns it as a completed task; a caller that stopped spinning first returns the task of a completion source, which
    /// the thread that ends the work completes (the loop, or for work that ran on asynchronously, the thread that
    /// completed it). The source is made only when needed: by that caller, or by whoever hands over any other outcome.
    /// So work that ends at once costs its caller this item and one completed task, and nothing but this item's lines
    /// moves between the two cores. The source decides between outcomes that race (the result and a stop): the first wins.
    /// </para>
    /// </remarks>
    private sealed class SubmittedWork<T>(LoopServiceThread owner, Func<CancellationToken, Task<T>> func) : LoopItem
    {
        private static readonly ContextCallback s_start = static s => ((SubmittedWork<T>)s!).StartInGroup();

        // Made on first need (see the remarks); read through Source.
        private TaskCompletionSource<T>? _source;

        // Not readonly: a mutable struct, called in place (a readonly field would make every call work on a copy).
        private ResultHandOver<T> _handOver;

        // The work while it runs asynchronously; null before it starts, and when it ended at once. Its task and its 16-byte
        // registration are kept out of this item, which the caller writes and the loop reads: work that ends at once, the
        // usual case, then moves fewer cache lines between their cores (docs/benchmarks.md, family 6).
        private RunningWork? _running;

        /// <summary>Gets the completion source of the caller's task, making it if nobody has yet.</summary>
        private TaskCompletionSource<T> Source => Volatile.Read(ref _source) ?? MakeSource();

        /// <summary>
        /// Returns the caller's task: completed with a result the work has left, after a brief spin for one if
        /// <paramref name="loopWasIdle"/>, or else the source's task, left to the thread that ends the work; called exactly
        /// once, by the submitting thread, once the item is queued.
        /// </summary>
        public Task<T> Collect(bool loopWasIdle)
        {
            if (loopWasIdle)
            {
                // Also stops once the source completes: any outcome but a result is handed over through it.
                Waits.SpinBriefly(this, static work => work._handOver.HasResult || (Volatile.Read(ref work._source)?.Task.IsCompleted ?? false));
            }

            if (!_handOver.TryTake(out var value))
            {
                return Source.Task;
            }

            // A source made before the result was left was made, and completed, by a stop that came first: a running work's
            // stop registration is disposed (waiting for its callback) before the work's result is handed over.
            return Volatile.Read(ref _source) is { } source ? source.Task : System.Threading.Tasks.Task.FromResult(value);
        }

        public override void Invoke()
        {
            // Set on the loop before the loop takes any item, and read on the loop.
            var group = owner._group;
            if (group is null)
            {
                Source.TrySetException(new InvalidOperationException($"The loop of '{owner.Name}' has no task group to run the work in."));
                return;
            }

            // Work for a stopped service never starts; not adding it as a child also lets the group finish while callers
            // keep submitting, so the loop can end and refuse them.
            var token = group.Token;
            if (token.IsCancellationRequested)
            {
                Source.TrySetCanceled(token);
                return;
            }

            if (owner._bodyState == BodyState.Running && owner._groupContext is { } context)
            {
                // The group cannot finish before this loop turn ends, and the work is a child by then if it still runs.
                ExecutionContext.Run(context, s_start, this);
                if (_running is not null)
                {
                    StartChild(group);
                }

                return;
            }

            // A child of the group, reserved before the work runs: the group may finish at any moment now.
            StartChild(group);
        }

        private void StartChild(TaskGroup group)
        {
            try
            {
                group.StartSoon(RunAsChildAsync);
            }
            catch (InvalidOperationException ex)
            {
                // Refused: the group has finished (the work never ran), or, for work already running, the group is full.
                // Running work is then nobody's child: its caller is told, and its failure is still read, so it is never
                // reported as unobserved.
                if (_running is { } running)
                {
                    running.Registration.Dispose();
                    _ = running.Task.ContinueWith(
                        static t => _ = t.Exception,
                        CancellationToken.None,
                        TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
                        TaskScheduler.Default);
                }

                Source.TrySetException(new ClosedResourceException($"The task group of '{owner.Name}' refused the work: {ex.Message}", ex));
            }
        }

        public override void Abandon() => Source.TrySetException(LoopEndedBeforeRun());

        /// <summary>Starts the work with the group's token, from the loop item.</summary>
        private void StartInGroup() => Start(owner._group!.Token);

        /// <summary>Starts the work: hands over its outcome if it ended at once, or else records its task and registers to cancel the caller when the group is; returns whether it still runs.</summary>
        private bool Start(CancellationToken token)
        {
            Task<T>? running;
            try
            {
                running = func(token);
            }
            catch (Exception ex)
            {
                Fail(ex);
                return false;
            }

            if (running is null)
            {
                Source.TrySetException(owner.NullTask());
                return false;
            }

            if (running.IsCompleted)
            {
                HandOver(running);
                return false;
            }

            // A stop never leaves the caller waiting, even if the work is slow to notice it.
            _running = new RunningWork(
                running,
                token.UnsafeRegister(static (s, token) => ((SubmittedWork<T>)s!).Source.TrySetCanceled(token), this));
            return true;
        }

        /// <summary>The work as a child of the group: started here unless the loop item started it already, then awaited until it ends.</summary>
        private async Task RunAsChildAsync(CancellationToken cancellationToken)
        {
            if (_running is null)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    Source.TrySetCanceled(cancellationToken);
                    return;
                }

                if (!Start(cancellationToken))
                {
                    return;
                }
            }

            try
            {
                await ((Task)_running!.Task).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            finally
            {
                _running!.Registration.Dispose();
            }

            // A stop meanwhile has cancelled the caller already; a failure is still read here, so it is never unobserved.
            HandOver(_running.Task);
        }

        /// <summary>Hands the caller the outcome of the work's completed task.</summary>
        private void HandOver(Task<T> done)
        {
            if (done.IsCompletedSuccessfully)
            {
                // A caller still spinning for the result makes its task from it: no task or source then moves between this
                // thread's core and the caller's, and the answer costs the caller about what a blocking call's does.
                var value = done.Result;
                if (!_handOver.TryLeave(value))
                {
                    Source.TrySetResult(value);
                }
            }
            else
            {
                Fail(done.Exception?.InnerException ?? new TaskCanceledException(done));
            }
        }

        /// <summary>Hands the caller the work's failure: a cancellation of the work's own as a cancellation, any other exception as is.</summary>
        private void Fail(Exception exception)
        {
            if (exception is OperationCanceledException cancelled)
            {
                Source.TrySetCanceled(cancelled.CancellationToken);
            }
            else
            {
                Source.TrySetException(exception);
            }
        }

        /// <summary>Makes the completion source, or returns the one another thread made first.</summary>
        private TaskCompletionSource<T> MakeSource()
        {
            var source = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            return Interlocked.CompareExchange(ref _source, source, null) ?? source;
        }

        /// <summary>Work that did not end at once: its task, and the registration that cancels the caller when the group is cancelled.</summary>
        private sealed class RunningWork(Task<T> task, CancellationTokenRegistration registration)
        {
            public Task<T> Task => task;

            public CancellationTokenRegistration Registration => registration;
        }
    }
}
