using MicroIo.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MicroIo;

/// <summary>
/// Runs a service on a dedicated thread that reports to its parent whether it started or failed, and stops through a
/// <see cref="CloseScope"/>.
/// </summary>
/// <remarks>
/// <para>
/// The service body is the target delegate given to the constructor, or an override of <see cref="RunService"/>. It calls
/// <see cref="Started"/> once its resources are ready (or <see cref="Fail(Exception)"/>), and watches <see cref="Scope"/>
/// (its <see cref="CloseScope.IsClosed"/>, <see cref="CloseScope.Token"/> or waits) to know when to stop. An exception
/// that escapes the body marks the service failed; an <see cref="OperationCanceledException"/> that escapes it after the
/// scope has closed is a normal stop.
/// </para>
/// <para>
/// The parent calls <see cref="Start"/>, then <see cref="WaitStarted(TimeSpan)"/>, which returns once the service has
/// started and throws <see cref="ServiceStartException"/> if it failed, was stopped first, or ended without starting.
/// <see cref="Stop(string?)"/> closes the scope; <see cref="JoinOrLog(TimeSpan)"/> waits for the body to end and logs when
/// it does not. Stopping is never lost: a stop before or right after <see cref="Start"/> leaves the scope closed, so the body
/// sees it as soon as it runs.
/// </para>
/// <para>Every member may be called from any thread, except the waits noted as not callable from the service's own thread.</para>
/// </remarks>
/// <example>
/// <code>
/// var reader = new ServiceThread(service =&gt;
/// {
///     using var socket = Connect();
///     service.Started();
///     while (!service.Scope.IsClosed)
///     {
///         Handle(socket.Receive(service.Scope.Token));
///     }
/// }, new ServiceThreadOptions { Name = "reader" });
/// reader.Start();
/// reader.WaitStarted(TimeSpan.FromSeconds(5));
/// // ...
/// reader.Stop();
/// reader.JoinOrLog(TimeSpan.FromSeconds(1));
/// </code>
/// </example>
public class ServiceThread
{
    private readonly Lock _lock = new();
    private readonly Thread _thread;
    private readonly Action<ServiceThread>? _target;
    private readonly bool _rethrow;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly CloseScope _scope = new();

    // Completed once the start is decided: started, failed, stopped first, or ended without starting. Never faulted, so
    // waiting on it never throws; the outcome is read from the fields below.
    private readonly TaskCompletionSource _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private bool _threadStarted;
    private bool _startedCalled;
    private bool _isStarted;
    private bool _isSettled;
    private Exception? _startFailure;
    private Exception? _exception;
    private int _failureLogged;

    /// <summary>Initializes a service that runs <paramref name="target"/> on its thread.</summary>
    /// <param name="target">The service body; it receives this service, to call <see cref="Started"/> and watch <see cref="Scope"/>.</param>
    /// <param name="options">The service's settings, or <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="target"/> is <see langword="null"/>.</exception>
    public ServiceThread(Action<ServiceThread> target, ServiceThreadOptions? options = null)
        : this(options)
    {
        ArgumentNullException.ThrowIfNull(target);
        _target = target;
    }

    /// <summary>Initializes a service whose body is an override of <see cref="RunService"/>.</summary>
    /// <param name="options">The service's settings, or <see langword="null"/> for the defaults.</param>
    protected ServiceThread(ServiceThreadOptions? options = null)
    {
        Name = options?.Name ?? GetType().Name;
        _rethrow = options?.RethrowExceptions ?? false;
        _logger = options?.Logger ?? NullLogger.Instance;
        _timeProvider = options?.TimeProvider ?? TimeProvider.System;
        _thread = new Thread(ThreadMain) { IsBackground = options?.IsBackground ?? true, Name = Name };

        // Every way of closing the scope (Stop, Fail, or Scope.Close called directly) must settle the start and, for a
        // loop service, cancel its task group; a token callback catches them all.
        _scope.Token.UnsafeRegister(static s => ((ServiceThread)s!).OnScopeClosed(), this);
    }

    /// <summary>Gets the name of the service and of its thread.</summary>
    public string Name { get; }

    /// <summary>Gets the scope that stops the service: closed by <see cref="Stop(string?)"/>, failed by <see cref="Fail(Exception)"/>.</summary>
    /// <remarks>The body watches it; other code may also close it directly, with the same effect as <see cref="Stop(string?)"/>.</remarks>
    public CloseScope Scope => _scope;

    /// <summary>Gets a value indicating whether the service reported that it started (and was not stopped or failed first).</summary>
    /// <value><see langword="true"/> once <see cref="Started"/> has been accepted; otherwise, <see langword="false"/>.</value>
    public bool IsStarted
    {
        get
        {
            lock (_lock)
            {
                return _isStarted;
            }
        }
    }

    /// <summary>Gets a value indicating whether the service has failed.</summary>
    /// <value><see langword="true"/> if <see cref="Exception"/> is set; otherwise, <see langword="false"/>.</value>
    public bool IsFailed => Exception is not null;

    /// <summary>Gets a value indicating whether the service body has ended (returned or thrown); a stop request alone does not set it.</summary>
    /// <value><see langword="true"/> once the body has ended; otherwise, <see langword="false"/>.</value>
    /// <remarks>Whether a stop was requested is <see cref="CloseScope.IsClosed"/> of <see cref="Scope"/>.</remarks>
    public bool IsStopped => _ended.Task.IsCompleted;

    /// <summary>Gets the first failure of the service, or <see langword="null"/> if it has not failed.</summary>
    /// <remarks>
    /// It is set by <see cref="Fail(Exception)"/>, by an exception escaping the body, or, for a
    /// <see cref="LoopServiceThread"/>, by an exception thrown on its loop.
    /// A failure after a stop is recorded here even though <see cref="Scope"/> was already closed normally.
    /// </remarks>
    public Exception? Exception
    {
        get
        {
            lock (_lock)
            {
                return _exception;
            }
        }
    }

    /// <summary>Gets the logger this service reports to.</summary>
    private protected ILogger Logger => _logger;

    /// <summary>Gets the clock that measures this service's timeouts.</summary>
    private protected TimeProvider TimeProvider => _timeProvider;

    /// <summary>Gets a value indicating whether <see cref="Start"/> has been called.</summary>
    internal bool HasThreadStarted
    {
        get
        {
            lock (_lock)
            {
                return _threadStarted;
            }
        }
    }

    /// <summary>Gets a task that completes once the start is decided (it never faults).</summary>
    internal Task StartSettled => _settled.Task;

    /// <summary>Gets a task that completes once the body has ended (it never faults).</summary>
    internal Task Ended => _ended.Task;

    /// <summary>Starts the service's thread.</summary>
    /// <exception cref="InvalidOperationException">The service was already started.</exception>
    /// <remarks>
    /// If the service was stopped before this call, the body still runs and sees its scope closed, so its cleanup runs, and
    /// <see cref="WaitStarted(TimeSpan)"/> reports the stop.
    /// </remarks>
    public void Start()
    {
        lock (_lock)
        {
            if (_threadStarted)
            {
                throw new InvalidOperationException($"The service '{Name}' was already started; a service thread starts once.");
            }

            _threadStarted = true;
        }

        try
        {
            // UnsafeStart: the service must not inherit the starter's execution context, in particular not its ambient
            // CancelScope, whose cancellation would otherwise end the service as if it had been stopped.
            _thread.UnsafeStart();
        }
        catch (Exception ex)
        {
            // The thread never ran: no body will finish the service, so this call must, or its waiters would hang.
            RecordFailure(ex, quiet: true);
            Finish();
            throw;
        }
    }

    /// <summary>Reports that the service is ready: <see cref="WaitStarted(TimeSpan)"/> returns.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Started"/> was already called.</exception>
    /// <remarks>
    /// Called by the service body, usually on its own thread. If the service was stopped or failed before this call, the
    /// start was already reported as not having happened and this call changes nothing: a stop during startup never looks
    /// like a successful start.
    /// </remarks>
    public void Started()
    {
        lock (_lock)
        {
            if (_startedCalled)
            {
                throw new InvalidOperationException($"The service '{Name}' already called Started(); a service reports started once.");
            }

            _startedCalled = true;
            if (_isSettled)
            {
                return;
            }

            // The scope's state is published before its close callbacks run: checking it here, under the lock that those
            // callbacks take to settle the start, orders this call strictly before or after the stop.
            if (_scope.IsClosed)
            {
                SettleLocked(StopFailure());
            }
            else
            {
                _isStarted = true;
                _isSettled = true;
            }
        }

        if (_isStarted)
        {
            ServiceMetrics.Add(ServiceMetrics.Starts, Name);
        }

        _settled.TrySetResult();
    }

    /// <summary>Marks the service failed: records the exception, fails <see cref="Scope"/> and wakes every waiter.</summary>
    /// <param name="exception">The failure.</param>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">A callback registered on the scope's token threw; the service is failed regardless.</exception>
    /// <remarks>
    /// Only the first failure is kept in <see cref="Exception"/>. A <see cref="LoopServiceThread"/> also cancels its task
    /// group. May be called from any thread.
    /// </remarks>
    public void Fail(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        RecordFailure(exception, quiet: false);
    }

    /// <summary>Asks the service to stop by closing <see cref="Scope"/> with a reason.</summary>
    /// <param name="reason">Why the service is stopping.</param>
    /// <returns><see langword="true"/> for the call that closed the scope; otherwise (already stopped or failed), <see langword="false"/>.</returns>
    /// <exception cref="AggregateException">A callback registered on the scope's token threw; the scope is closed regardless.</exception>
    /// <remarks>
    /// It does not wait: use <see cref="JoinOrLog(TimeSpan)"/> for that. A <see cref="LoopServiceThread"/> also cancels its
    /// task group. May be called from any thread, before or after <see cref="Start"/>.
    /// </remarks>
    public bool Stop(string? reason = "stop") => _scope.Close(reason);

    /// <summary>Blocks until the service has started, or throws why it did not.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="ServiceStartException">
    /// The service failed (also after it had started), was stopped before it started, or ended without calling
    /// <see cref="Started"/>; the inner exception says which.
    /// </exception>
    /// <exception cref="TimeoutException">The start was not decided within <paramref name="timeout"/>.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread before its start was decided: it would wait for itself.</exception>
    /// <remarks>It waits on a signal that <see cref="Started"/>, a failure, a stop and the end of the body all set; it never polls.</remarks>
    public void WaitStarted(TimeSpan timeout)
    {
        Timeouts.Validate(timeout);
        if (!_settled.Task.IsCompleted)
        {
            ThrowIfOnServiceThread(nameof(WaitStarted));
            if (!Waits.Wait(_settled.Task, timeout, _timeProvider))
            {
                throw NotStartedInTime(timeout);
            }
        }

        ThrowIfNotStarted();
    }

    /// <summary>Waits asynchronously until the service has started, or throws why it did not.</summary>
    /// <param name="cancellationToken">A token that ends the wait.</param>
    /// <returns>A task that completes once the service has started.</returns>
    /// <exception cref="ServiceStartException">The service failed, was stopped before it started, or ended without starting.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread before its start was decided.</exception>
    public Task WaitStartedAsync(CancellationToken cancellationToken = default) =>
        WaitStartedAsync(Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Waits asynchronously, up to a timeout, until the service has started, or throws why it did not.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait.</param>
    /// <returns>A task that completes once the service has started.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="ServiceStartException">The service failed, was stopped before it started, or ended without starting.</exception>
    /// <exception cref="TimeoutException">The start was not decided within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread before its start was decided.</exception>
    public Task WaitStartedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        if (!_settled.Task.IsCompleted)
        {
            ThrowIfOnServiceThread(nameof(WaitStartedAsync));
        }

        return WaitStartedCoreAsync(timeout, cancellationToken);
    }

    /// <summary>Blocks until the service body has ended or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns><see langword="true"/> if the body has ended (or the service was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread, which cannot wait for itself to end.</exception>
    public bool Join(TimeSpan timeout) => JoinCore(timeout, nameof(Join));

    /// <summary>Gets a value indicating whether the calling thread is this service's own thread.</summary>
    internal bool IsOwnThread => Thread.CurrentThread == _thread;

    private bool JoinCore(TimeSpan timeout, string caller)
    {
        Timeouts.Validate(timeout);
        if (!HasThreadStarted || _ended.Task.IsCompleted)
        {
            return true;
        }

        ThrowIfOnServiceThread(caller);
        return Waits.Wait(_ended.Task, timeout, _timeProvider);
    }

    /// <summary>Waits asynchronously until the service body has ended or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait.</param>
    /// <returns><see langword="true"/> if the body has ended (or the service was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread, which cannot wait for itself to end.</exception>
    public Task<bool> JoinAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        if (!HasThreadStarted || _ended.Task.IsCompleted)
        {
            return Task.FromResult(true);
        }

        ThrowIfOnServiceThread(nameof(JoinAsync));
        return Waits.WaitAsync(_ended.Task, timeout, _timeProvider, cancellationToken);
    }

    /// <summary>Blocks until the service body has ended or the timeout elapses, and logs an error if it did not end.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns><see langword="true"/> if the body has ended (or the service was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread, which cannot wait for itself to end.</exception>
    /// <remarks>
    /// A timeout is never ignored: it is logged at <see cref="LogLevel.Error"/> through the options' logger. A service that
    /// ended with a failure has it logged once, with the exception, so a crash is never silent.
    /// </remarks>
    public bool JoinOrLog(TimeSpan timeout) => ReportJoin(JoinCore(timeout, nameof(JoinOrLog)), timeout);

    /// <summary>Blocks until the service body has ended, however long that takes, and logs its failure if it failed.</summary>
    /// <returns><see langword="true"/>: the body has ended (or the service was never started).</returns>
    /// <exception cref="InvalidOperationException">Called on the service's own thread, which cannot wait for itself to end.</exception>
    public bool JoinOrLog() => JoinOrLog(Timeout.InfiniteTimeSpan);

    /// <summary>Blocks until the service has started, however long that takes.</summary>
    /// <exception cref="ServiceStartException">The service failed, was stopped, or ended before it started; the inner exception is why.</exception>
    /// <exception cref="InvalidOperationException">The service has not been started, or this is its own thread before the start was decided.</exception>
    public void WaitStarted() => WaitStarted(Timeout.InfiniteTimeSpan);

    /// <summary>Waits asynchronously until the service body has ended or the timeout elapses, and logs an error if it did not end.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait.</param>
    /// <returns><see langword="true"/> if the body has ended (or the service was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first; nothing is logged.</exception>
    /// <exception cref="InvalidOperationException">Called on the service's own thread, which cannot wait for itself to end.</exception>
    public async Task<bool> JoinOrLogAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReportJoin(await JoinAsync(timeout, cancellationToken).ConfigureAwait(false), timeout);

    /// <summary>Returns the service's name.</summary>
    /// <returns>The service's <see cref="Name"/>.</returns>
    public override string ToString() => Name;

    /// <summary>Throws unless the service started and has not failed; once the start is decided, this is the outcome of <c>WaitStarted</c>.</summary>
    internal void ThrowIfNotStarted()
    {
        Exception? failure;
        Exception? startFailure;
        bool started;
        lock (_lock)
        {
            failure = _exception;
            startFailure = _startFailure;
            started = _isStarted;
        }

        if (failure is not null)
        {
            throw new ServiceStartException($"The service '{Name}' failed: {failure.Message}", failure);
        }

        if (!started)
        {
            throw new ServiceStartException($"The service '{Name}' did not start: {startFailure?.Message}", startFailure);
        }
    }

    /// <summary>Gets a value indicating whether the start was decided against the service (or it has failed since).</summary>
    internal bool HasStartFailed
    {
        get
        {
            lock (_lock)
            {
                return _exception is not null || (_isSettled && !_isStarted);
            }
        }
    }

    /// <summary>Reports (as <see cref="JoinOrLog(TimeSpan)"/> does) whether the body has ended, without waiting; the group has waited already.</summary>
    internal bool ReportJoinWithoutWaiting(TimeSpan timeout) => ReportJoin(!HasThreadStarted || _ended.Task.IsCompleted, timeout);

    /// <summary>Makes the exception that a wait for the start throws when it times out.</summary>
    internal TimeoutException NotStartedInTime(TimeSpan timeout) =>
        new($"The service '{Name}' did not report started within {timeout}.");

    /// <summary>Runs the service body on the service's thread: by default, the target delegate given to the constructor.</summary>
    /// <exception cref="InvalidOperationException">No target was given and this method was not overridden.</exception>
    /// <remarks>
    /// Override it to write the body as a method. Call <see cref="Started"/> when ready and return when <see cref="Scope"/>
    /// closes; an exception that escapes marks the service failed.
    /// </remarks>
    protected virtual void RunService()
    {
        if (_target is null)
        {
            throw new InvalidOperationException($"The service '{Name}' has no body: pass a target to the constructor or override RunService().");
        }

        _target(this);
    }

    /// <summary>Runs after <see cref="Scope"/> has closed, on the thread that closed it; a loop service cancels its task group here.</summary>
    private protected virtual void OnScopeClosing()
    {
    }

    /// <summary>Records a failure and fails the scope; returns whether it was the first failure (the one <see cref="Exception"/> keeps).</summary>
    /// <exception cref="AggregateException">A callback registered on the scope's token threw, and <paramref name="quiet"/> is false.</exception>
    /// <remarks>Quiet is for callers that have no one to throw to (the thread's end, the loop): a throwing callback is logged instead.</remarks>
    private protected bool RecordFailure(Exception exception, bool quiet)
    {
        bool first;
        lock (_lock)
        {
            first = _exception is null;
            _exception ??= exception;
            SettleLocked(exception);
        }

        if (first)
        {
            ServiceMetrics.Add(ServiceMetrics.Failures, Name);
        }

        _settled.TrySetResult();
        try
        {
            _scope.Fail(exception);
        }
        catch (AggregateException ex) when (quiet)
        {
            Log.ScopeCallbackFailed(_logger, Name, ex);
        }

        return first;
    }

    // A body that blocks with Task.Wait() sees the cancellation of a stop wrapped in an AggregateException.
    private static bool IsCancellation(Exception exception) =>
        exception is OperationCanceledException
        || (exception is AggregateException aggregate && aggregate.Flatten().InnerExceptions.All(e => e is OperationCanceledException));

    private void ThreadMain()
    {
        try
        {
            RunService();
        }
        catch (Exception ex) when (IsCancellation(ex) && _scope.IsClosed)
        {
            // The body stopped by observing its scope's token (or its task group's): a normal stop, not a failure.
        }
        catch (Exception ex)
        {
            RecordFailure(ex, quiet: true);
            if (_rethrow)
            {
                // An unhandled exception may end the process without running finally blocks: wake every waiter first.
                Finish();
                throw;
            }
        }
        finally
        {
            Finish();
        }
    }

    private void Finish()
    {
        lock (_lock)
        {
            if (!_isSettled)
            {
                // A close releases the body's waits before it runs OnScopeClosed, so a body that ended because it was
                // stopped can get here first: it must report the stop, as OnScopeClosed would have.
                SettleLocked(_scope.IsClosed
                    ? StopFailure()
                    : new InvalidOperationException($"The service '{Name}' ended without calling Started()."));
            }
        }

        _settled.TrySetResult();
        _ended.TrySetResult();
    }

    private void OnScopeClosed()
    {
        lock (_lock)
        {
            if (!_isSettled)
            {
                SettleLocked(StopFailure());
            }
        }

        _settled.TrySetResult();
        OnScopeClosing();
    }

    /// <summary>Decides the start as not having happened, unless it was already decided; the caller then sets <see cref="_settled"/>.</summary>
    private void SettleLocked(Exception failure)
    {
        if (_isSettled)
        {
            return;
        }

        _isSettled = true;
        _startFailure = failure;
    }

    /// <summary>Makes the reason a start did not happen because the scope closed first: its failure, or a stop.</summary>
    private Exception StopFailure() =>
        _scope.Exception ?? new ClosedResourceException(_scope.Reason is { } reason
            ? $"The service '{Name}' was stopped before it reported started: {reason}."
            : $"The service '{Name}' was stopped before it reported started.");

    private async Task WaitStartedCoreAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!await Waits.WaitAsync(_settled.Task, timeout, _timeProvider, cancellationToken).ConfigureAwait(false))
        {
            throw NotStartedInTime(timeout);
        }

        ThrowIfNotStarted();
    }

    private bool ReportJoin(bool ended, TimeSpan timeout)
    {
        if (!ended)
        {
            Log.DidNotEnd(_logger, Name, timeout);
            ServiceMetrics.Add(ServiceMetrics.JoinTimeouts, Name);
            return false;
        }

        if (Exception is { } failure && Interlocked.Exchange(ref _failureLogged, 1) == 0)
        {
            Log.Failed(_logger, Name, failure);
        }

        return true;
    }

    private void ThrowIfOnServiceThread(string member)
    {
        if (Environment.CurrentManagedThreadId == _thread.ManagedThreadId)
        {
            throw new InvalidOperationException($"{member} cannot be called on the service's own thread: it would wait for itself.");
        }
    }
}
