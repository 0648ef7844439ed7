using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Cancels the code it runs, level-triggered, through a <see cref="CancellationToken"/>; it has a reason, an optional
/// deadline and can be shielded from the scopes around it.
/// </summary>
/// <remarks>
/// <para>
/// A scope owns a token (<see cref="Token"/>) that is cancelled by <see cref="Cancel(string?)"/>, by the scope's
/// <see cref="Deadline"/>, and, while the scope is active, by the enclosing scope (unless <see cref="Shield"/> is set) and
/// by the token the caller passed to <see cref="RunAsync(Func{CancellationToken, Task}, CancellationToken)"/>. Once the
/// token is cancelled it stays cancelled, so every later wait that observes it stops at once: cancellation cannot be
/// caught and forgotten.
/// </para>
/// <para>
/// <see cref="RunAsync(Func{CancellationToken, Task}, CancellationToken)"/> runs a body inside the scope and swallows the
/// <see cref="OperationCanceledException"/> only when this scope caused it (its <see cref="Cancel(string?)"/> or its
/// deadline) and nothing outside it was cancelled as well; cancellation from an enclosing scope or from the caller's token
/// passes through. A scope made by <see cref="FailAfter(TimeSpan, TimeProvider?)"/> or
/// <see cref="FailAt(DateTimeOffset, TimeProvider?)"/> turns its own deadline into a <see cref="TimeoutException"/>.
/// </para>
/// <para>
/// While active, the scope is <see cref="Current"/> in its async flow (an <see cref="AsyncLocal{T}"/>), so MicroIo's
/// checkpoints (<see cref="Checkpoint"/>) stop inside it even where no token was passed. It never changes what a BCL call
/// does: pass <see cref="Token"/> on. A scope may be entered once. Every member may be called from any thread.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(5));
/// bool completed = await scope.RunAsync(async ct =&gt; await ReadAllAsync(ct));
/// if (scope.TimedOut) { /* gave up after 5 s */ }
/// </code>
/// </example>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "The source has no timer of its own and no linked tokens (links are registrations, removed on exit), so it holds nothing that needs disposing.")]
public sealed class CancelScope
{
    private static readonly AsyncLocal<CancelScope?> s_current = new();

    // Timers cannot be set further than about 49 days ahead; a longer deadline is re-armed when this elapses.
    private static readonly TimeSpan s_maxTimerDue = TimeSpan.FromDays(40);

    private readonly Lock _lock = new();
    private readonly TimeProvider _timeProvider;
    private readonly bool _failOnDeadline;
    private readonly ScopeGroup? _group;

    // Created on first use of Token (or by Cancel-from-outside plumbing), never before: a scope that is entered and left
    // without anyone asking for its token costs no source and no registration on the enclosing scope's token.
    private CancellationTokenSource? _cts;

    private volatile State _state;
    private bool _shield;
    private volatile bool _cancelCalled;

    // Set when the scope stops listening to the outside (exit, or a shield raised) while the outside was cancelled: the
    // cancellation that had reached the scope stays, as it would in a source that a registration had already cancelled.
    private volatile bool _outsideCancelled;
    private bool _cancelledCaught;
    private bool _timedOut;
    private string? _reason;
    private DateTimeOffset? _deadline;
    private ITimer? _timer;
    private long _timerGeneration;

    private CancelScope? _parent;
    private CancellationToken _callerToken;
    private CancellationTokenRegistration _parentRegistration;
    private CancellationTokenRegistration _callerRegistration;

    private enum State
    {
        New,
        Active,
        Exited,
    }

    /// <summary>Initializes a new scope with no deadline.</summary>
    /// <param name="timeProvider">The clock for <see cref="Deadline"/>; by default, <see cref="TimeProvider.System"/>.</param>
    public CancelScope(TimeProvider? timeProvider = null)
        : this(timeProvider, deadline: null, failOnDeadline: false, group: null)
    {
    }

    internal CancelScope(TimeProvider? timeProvider, DateTimeOffset? deadline, bool failOnDeadline, ScopeGroup? group)
    {
        _timeProvider = timeProvider ?? TimeProvider.System;
        _failOnDeadline = failOnDeadline;
        _group = group;
        if (deadline is not null)
        {
            Deadline = deadline;
        }
    }

    /// <summary>Gets the innermost active scope of the current async flow, or <see langword="null"/> outside any scope.</summary>
    /// <remarks>
    /// Entering and leaving a scope inside one async method never changes what the caller sees. A scope that has exited
    /// is skipped (a task started inside a scope may outlive it), so the result is always active or <see langword="null"/>.
    /// </remarks>
    public static CancelScope? Current
    {
        get
        {
            var scope = s_current.Value;
            return scope is null || scope._state != State.Exited ? scope : FirstActive(scope._parent);
        }
    }

    /// <summary>Gets the token that is cancelled when this scope is cancelled, by itself or, while active, from outside.</summary>
    /// <remarks>The token's source is created on first use, and linked then to the enclosing scope and the caller's token.</remarks>
    public CancellationToken Token => (Volatile.Read(ref _cts) ?? CreateSource()).Token;

    /// <summary>Gets a value indicating whether <see cref="Token"/> is cancelled, for any cause.</summary>
    /// <remarks>Answered without creating the token's source when nobody has asked for the token yet.</remarks>
    public bool IsCancellationRequested => Volatile.Read(ref _cts) is { } cts ? cts.IsCancellationRequested : IsCancelledWithoutSource();

    /// <summary>Gets a value indicating whether <see cref="Cancel(string?)"/> was called or the deadline passed.</summary>
    public bool CancelCalled
    {
        get
        {
            lock (_lock)
            {
                return _cancelCalled;
            }
        }
    }

    /// <summary>Gets the reason given to the first <see cref="Cancel(string?)"/> (<c>"deadline"</c> for a deadline), or <see langword="null"/>.</summary>
    public string? Reason
    {
        get
        {
            lock (_lock)
            {
                return _reason;
            }
        }
    }

    /// <summary>Gets a value indicating whether the scope swallowed its own cancellation when its body ended.</summary>
    public bool CancelledCaught
    {
        get
        {
            lock (_lock)
            {
                return _cancelledCaught;
            }
        }
    }

    /// <summary>Gets a value indicating whether the scope was cancelled by its deadline (rather than by <see cref="Cancel(string?)"/>).</summary>
    public bool TimedOut
    {
        get
        {
            lock (_lock)
            {
                return _timedOut;
            }
        }
    }

    /// <summary>Gets a value indicating whether the scope has been entered and not yet exited.</summary>
    public bool IsActive
    {
        get
        {
            lock (_lock)
            {
                return _state == State.Active;
            }
        }
    }

    /// <summary>Gets or sets a value indicating whether the scope ignores the cancellation of the scope around it.</summary>
    /// <remarks>
    /// A shielded scope is still cancelled by its own <see cref="Cancel(string?)"/>, its own deadline and the caller's
    /// token; use it for cleanup that must run while the enclosing scope is being cancelled, with a deadline of its own.
    /// It may be changed while the scope is active; a cancellation that already reached the scope stays.
    /// </remarks>
    public bool Shield
    {
        get
        {
            lock (_lock)
            {
                return _shield;
            }
        }

        set
        {
            lock (_lock)
            {
                if (_shield == value)
                {
                    return;
                }

                // A cancellation that already reached the scope stays: with no source yet, it is recorded here, before the
                // shield hides the parent from IsCancellationRequested.
                if (value && _state == State.Active && !_outsideCancelled && _parent is not null && _parent.IsCancellationRequested)
                {
                    _outsideCancelled = true;
                }

                _shield = value;
                if (_state != State.Active)
                {
                    return;
                }

                if (value)
                {
                    _parentRegistration.Unregister();
                    _parentRegistration = default;
                    return;
                }
            }

            LinkParent();
        }
    }

    /// <summary>Gets or sets the time at which the scope cancels itself, or <see langword="null"/> for none.</summary>
    /// <remarks>
    /// It may be set or moved at any time before the scope exits; the timer is re-armed. A deadline at or before the
    /// current time (of the scope's <see cref="TimeProvider"/>) cancels the scope at once. Deadlines are absolute, as in
    /// Trio: the timer runs from the moment the deadline is set (for <see cref="MoveOnAfter"/>, from creation), whether or
    /// not the scope has been entered yet, and stops when the scope exits.
    /// </remarks>
    public DateTimeOffset? Deadline
    {
        get
        {
            lock (_lock)
            {
                return _deadline;
            }
        }

        set
        {
            bool expired;
            lock (_lock)
            {
                _deadline = value;
                expired = ArmLocked();
            }

            if (expired)
            {
                CancelCore("deadline", timedOut: true);
            }
        }
    }

    /// <summary>Creates a scope that cancels itself after a delay and, run with <c>RunAsync</c>, moves on quietly.</summary>
    /// <param name="delay">How long until the deadline, from now; <see cref="TimeSpan.Zero"/> cancels at once; <see cref="Timeout.InfiniteTimeSpan"/> means none.</param>
    /// <param name="timeProvider">The clock; by default, <see cref="TimeProvider.System"/>.</param>
    /// <returns>A new, inactive scope.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative and not infinite.</exception>
    public static CancelScope MoveOnAfter(TimeSpan delay, TimeProvider? timeProvider = null) => After(delay, timeProvider, failOnDeadline: false);

    /// <summary>Creates a scope that cancels itself at a deadline and, run with <c>RunAsync</c>, moves on quietly.</summary>
    /// <param name="deadline">When the scope cancels itself; a time in the past cancels at once.</param>
    /// <param name="timeProvider">The clock; by default, <see cref="TimeProvider.System"/>.</param>
    /// <returns>A new, inactive scope.</returns>
    public static CancelScope MoveOnAt(DateTimeOffset deadline, TimeProvider? timeProvider = null) => new(timeProvider, deadline, failOnDeadline: false, group: null);

    /// <summary>Creates a scope that cancels itself after a delay and, run with <c>RunAsync</c>, then throws <see cref="TimeoutException"/>.</summary>
    /// <param name="delay">How long until the deadline, from now; <see cref="TimeSpan.Zero"/> cancels at once; <see cref="Timeout.InfiniteTimeSpan"/> means none.</param>
    /// <param name="timeProvider">The clock; by default, <see cref="TimeProvider.System"/>.</param>
    /// <returns>A new, inactive scope.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative and not infinite.</exception>
    public static CancelScope FailAfter(TimeSpan delay, TimeProvider? timeProvider = null) => After(delay, timeProvider, failOnDeadline: true);

    /// <summary>Creates a scope that cancels itself at a deadline and, run with <c>RunAsync</c>, then throws <see cref="TimeoutException"/>.</summary>
    /// <param name="deadline">When the scope cancels itself; a time in the past cancels at once.</param>
    /// <param name="timeProvider">The clock; by default, <see cref="TimeProvider.System"/>.</param>
    /// <returns>A new, inactive scope.</returns>
    public static CancelScope FailAt(DateTimeOffset deadline, TimeProvider? timeProvider = null) => new(timeProvider, deadline, failOnDeadline: true, group: null);

    /// <summary>Cancels the scope, unless it was already cancelled by this method or its deadline.</summary>
    /// <param name="reason">Why the scope is cancelled, or <see langword="null"/>.</param>
    /// <returns><see langword="true"/> for the first call; otherwise, <see langword="false"/>.</returns>
    /// <remarks>
    /// May be called from any thread, before, during or after the scope is active. Callbacks registered on
    /// <see cref="Token"/> run on the calling thread before this method returns.
    /// </remarks>
    public bool Cancel(string? reason = null) => CancelCore(reason, timedOut: false);

    /// <summary>Enters the scope in the current async flow, without catching anything; dispose the result to exit.</summary>
    /// <returns>A handle whose <see cref="IDisposable.Dispose"/> exits the scope.</returns>
    /// <exception cref="InvalidOperationException">The scope was already entered.</exception>
    /// <remarks>
    /// For code that handles cancellation itself. Disposing the handle in a different async flow than the one that
    /// entered the scope, or while a scope entered inside it is still active, throws <see cref="InvalidOperationException"/>.
    /// </remarks>
    public IDisposable Enter()
    {
        EnterCore(CancellationToken.None);
        return new Entered(this);
    }

    /// <summary>Runs a body inside the scope and swallows the scope's own cancellation.</summary>
    /// <param name="body">The code to run; it receives <see cref="Token"/>.</param>
    /// <param name="cancellationToken">A token from outside; its cancellation also cancels the scope, and passes through.</param>
    /// <returns><see langword="true"/> if the body ran to completion; <see langword="false"/> if the scope caught its own cancellation.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The scope was already entered.</exception>
    /// <exception cref="TimeoutException">A fail-after scope's own deadline cancelled the body; the cancellation is the inner exception.</exception>
    /// <exception cref="OperationCanceledException">Something outside the scope cancelled the body.</exception>
    public Task<bool> RunAsync(Func<CancellationToken, Task> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunCoreAsync(body, cancellationToken);
    }

    /// <summary>Runs a body that returns a value inside the scope and swallows the scope's own cancellation.</summary>
    /// <typeparam name="T">The type of the body's result.</typeparam>
    /// <param name="body">The code to run; it receives <see cref="Token"/>.</param>
    /// <param name="cancellationToken">A token from outside; its cancellation also cancels the scope, and passes through.</param>
    /// <returns>The body's result, or <see langword="default"/> if the scope caught its own cancellation.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The scope was already entered.</exception>
    /// <exception cref="TimeoutException">A fail-after scope's own deadline cancelled the body; the cancellation is the inner exception.</exception>
    /// <exception cref="OperationCanceledException">Something outside the scope cancelled the body.</exception>
    public Task<T?> RunAsync<T>(Func<CancellationToken, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunCoreAsync(body, cancellationToken);
    }

    private async Task<bool> RunCoreAsync(Func<CancellationToken, Task> body, CancellationToken cancellationToken)
    {
        EnterCore(cancellationToken);
        try
        {
            await body(Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException ex) when (CatchOwnCancellation())
        {
            ThrowIfTimedOutAndFailing(ex);
            return false;
        }
        catch (OperationCanceledException ex) when (IsCancelledOutside && !IsPassThrough(ex))
        {
            throw new OperationCanceledException("The operation was cancelled from outside the scope.", ex, OutsideToken);
        }
        finally
        {
            Exit();
        }
    }

    private async Task<T?> RunCoreAsync<T>(Func<CancellationToken, Task<T>> body, CancellationToken cancellationToken)
    {
        EnterCore(cancellationToken);
        try
        {
            return await body(Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (CatchOwnCancellation())
        {
            ThrowIfTimedOutAndFailing(ex);
            return default;
        }
        catch (OperationCanceledException ex) when (IsCancelledOutside && !IsPassThrough(ex))
        {
            throw new OperationCanceledException("The operation was cancelled from outside the scope.", ex, OutsideToken);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Makes a scope the ambient one of the calling async flow (for task group children, which belong to their group).</summary>
    internal static void SetCurrent(CancelScope? scope) => s_current.Value = scope;

    // Out of line: the common case (the innermost scope is active) must stay small enough to inline into checkpoints.
    private static CancelScope? FirstActive(CancelScope? scope)
    {
        while (scope is not null && scope._state == State.Exited)
        {
            scope = scope._parent;
        }

        return scope;
    }

    /// <summary>Enters the scope in the current async flow, linked to the enclosing scope and to the caller's token.</summary>
    internal void EnterCore(CancellationToken callerToken)
    {
        var parent = s_current.Value;
        lock (_lock)
        {
            if (_state != State.New)
            {
                throw new InvalidOperationException(_state == State.Active
                    ? "The CancelScope is already active; a scope can be entered only once."
                    : "The CancelScope has already been used; a scope can be entered only once.");
            }

            // Parent and caller first: a reader that sees the scope active (a volatile read) sees its links.
            _parent = parent;
            _callerToken = callerToken;
            _state = State.Active;
        }

        s_current.Value = this;
        _group?.OnEnter(this);

        // Without a source yet, the links wait until someone asks for the token (CreateSource makes them); until then
        // the scope answers IsCancellationRequested by looking at the outside directly.
        if (Volatile.Read(ref _cts) is not null)
        {
            LinkParent();
            LinkCaller();
        }
    }

    /// <summary>Exits the scope: stops its timer, drops its links to the outside, and restores the enclosing scope.</summary>
    internal void Exit()
    {
        var current = s_current.Value;
        if (_state == State.Exited)
        {
            // Exited already: a handle disposed twice, or first from another flow that shares this one's context. Only
            // make sure this flow stops seeing the scope as its own, so the scopes around it can still exit here.
            RestoreParentIfCurrent(current);
            return;
        }

        // The flow's innermost active scope must be this one; inner scopes that another flow exited do not count.
        if (current != this && FirstActive(current) != this)
        {
            throw new InvalidOperationException(
                "The CancelScope is being exited in a different async flow than the one that entered it, or while a scope entered inside it is still active.");
        }

        ITimer? timer;
        CancellationTokenRegistration parentRegistration;
        CancellationTokenRegistration callerRegistration;
        CancellationTokenSource? cancelSource = null;
        lock (_lock)
        {
            // Two flows that share the entering flow's context may both dispose the handle: only the first exits.
            if (_state == State.Exited)
            {
                RestoreParentIfCurrent(current);
                return;
            }

            // The outside stops reaching the scope here; a cancellation that reached it before stays (a source linked
            // later, or linked while this exit ran, would otherwise miss it).
            if (!_cancelCalled && !_outsideCancelled && IsCancelledOutsideLocked())
            {
                _outsideCancelled = true;
                cancelSource = _cts;
            }

            _state = State.Exited;
            timer = _timer;
            _timer = null;
            _timerGeneration++;
            parentRegistration = _parentRegistration;
            _parentRegistration = default;
            callerRegistration = _callerRegistration;
            _callerRegistration = default;
        }

        timer?.Dispose();
        parentRegistration.Unregister();
        callerRegistration.Unregister();
        cancelSource?.Cancel();
        _group?.OnExit(this);
        s_current.Value = _parent;
    }

    /// <summary>
    /// Decides whether an <see cref="OperationCanceledException"/> ending the body is this scope's own, and records
    /// <see cref="CancelledCaught"/> when it is.
    /// </summary>
    /// <remarks>
    /// Only a cancellation the scope caused itself, with nothing outside cancelled too, is swallowed: when an enclosing
    /// scope or the caller's token was cancelled at the same time, swallowing would make the outside's cancellation look
    /// handled.
    /// </remarks>
    internal bool CatchOwnCancellation()
    {
        lock (_lock)
        {
            if (!_cancelCalled || IsCancelledOutsideLocked())
            {
                return false;
            }

            _cancelledCaught = true;
            return true;
        }
    }

    /// <summary>Gets a value indicating whether something outside the scope (the enclosing scope, unless shielded, or the caller's token) is cancelled.</summary>
    internal bool IsCancelledOutside
    {
        get
        {
            lock (_lock)
            {
                return IsCancelledOutsideLocked();
            }
        }
    }

    /// <summary>Gets the token that cancelled the scope from outside: the caller's if cancelled, else the enclosing scope's.</summary>
    internal CancellationToken OutsideToken
    {
        get
        {
            lock (_lock)
            {
                return _callerToken.IsCancellationRequested || _parent is null ? _callerToken : _parent.Token;
            }
        }
    }

    /// <summary>
    /// Tells whether a cancellation from outside already is what passes through: an <see cref="OperationCanceledException"/>
    /// (not a subclass such as <see cref="TaskCanceledException"/>) that carries the outside token, so callers can match
    /// it with <c>catch (OperationCanceledException e) when (e.CancellationToken == token)</c>.
    /// </summary>
    internal bool IsPassThrough(OperationCanceledException cancellation) =>
        cancellation.GetType() == typeof(OperationCanceledException) && cancellation.CancellationToken == OutsideToken;

    private static CancelScope After(TimeSpan delay, TimeProvider? timeProvider, bool failOnDeadline)
    {
        // No upper bound: the deadline timer re-arms itself for delays beyond what one timer can wait.
        if (delay < TimeSpan.Zero && delay != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(delay), delay, "The delay must be zero or positive, or Timeout.InfiniteTimeSpan.");
        }

        timeProvider ??= TimeProvider.System;
        DateTimeOffset? deadline = delay == Timeout.InfiniteTimeSpan ? null : timeProvider.GetUtcNow() + delay;
        return new CancelScope(timeProvider, deadline, failOnDeadline, group: null);
    }

    private bool IsCancelledOutsideLocked() =>
        _callerToken.IsCancellationRequested || (!_shield && _parent is not null && _parent.IsCancellationRequested);

    /// <summary>Answers <see cref="IsCancellationRequested"/> for a scope whose source has not been created: what the source would say.</summary>
    private bool IsCancelledWithoutSource() =>
        _cancelCalled
        || _outsideCancelled
        || (_state == State.Active && (_callerToken.IsCancellationRequested || (!Volatile.Read(ref _shield) && _parent is { } parent && parent.IsCancellationRequested)));

    /// <summary>Creates the token's source on first use: cancelled at once if the scope already is, and linked to the outside while active.</summary>
    private CancellationTokenSource CreateSource()
    {
        CancellationTokenSource cts;
        bool link;
        lock (_lock)
        {
            if (_cts is { } existing)
            {
                return existing;
            }

            // Decided under the lock that CancelCore and Exit take: a cancellation either is seen here or finds the source.
            cts = new CancellationTokenSource();
            if (_cancelCalled || _outsideCancelled)
            {
                cts.Cancel();
            }

            Volatile.Write(ref _cts, cts);
            link = _state == State.Active;
        }

        if (link)
        {
            // A parent or caller already cancelled runs the callback at once, so the new token is cancelled on return.
            LinkParent();
            LinkCaller();
        }

        return cts;
    }

    private void LinkCaller()
    {
        CancellationToken caller;
        lock (_lock)
        {
            if (_state != State.Active || !_callerToken.CanBeCanceled)
            {
                return;
            }

            caller = _callerToken;
        }

        // UnsafeRegister: cancelling a token must not capture or flow the registering code's context.
        var registration = caller.UnsafeRegister(static s => ((CancelScope)s!).CancelFromOutside(), this);
        lock (_lock)
        {
            // An exit may have come in between: then the link must not stay (the exit recorded any cancellation). An
            // Enter and a first Token racing each other may both link: the second link must not replace (and so leak) the
            // first, which the exit would then never remove.
            if (_state != State.Active || _callerRegistration != default)
            {
                registration.Unregister();
                return;
            }

            _callerRegistration = registration;
        }
    }

    private void ThrowIfTimedOutAndFailing(OperationCanceledException cancellation)
    {
        if (_failOnDeadline && TimedOut)
        {
            throw new TimeoutException($"The operation did not complete before its deadline ({Deadline:O}).", cancellation);
        }
    }

    private void LinkParent()
    {
        CancelScope? parent;
        lock (_lock)
        {
            // Without a source there is nothing to link yet: CreateSource links when the token is first asked for.
            parent = _shield || _state != State.Active || _cts is null ? null : _parent;
        }

        if (parent is not null)
        {
            var registration = parent.Token.UnsafeRegister(static s => ((CancelScope)s!).CancelFromOutside(), this);
            lock (_lock)
            {
                // A concurrent Shield = true or exit may have come in between: then the link must not stay; nor may a
                // second link, made by an Enter racing the first Token, replace the first.
                if (_shield || _state != State.Active || _parentRegistration != default)
                {
                    registration.Unregister();
                    return;
                }

                _parentRegistration = registration;
            }
        }
    }

    private void CancelFromOutside() => Volatile.Read(ref _cts)?.Cancel();

    private bool CancelCore(string? reason, bool timedOut)
    {
        ITimer? timer;
        CancellationTokenSource? cts;
        lock (_lock)
        {
            if (_cancelCalled)
            {
                return false;
            }

            _timedOut = timedOut;
            _reason = reason;
            _cancelCalled = true;
            timer = _timer;
            _timer = null;
            _timerGeneration++;

            // A source created after this lock sees _cancelCalled and starts cancelled.
            cts = _cts;
        }

        timer?.Dispose();
        cts?.Cancel();
        return true;
    }

    /// <summary>Arms (or re-arms, or stops) the deadline timer; returns true when the deadline has already passed.</summary>
    private bool ArmLocked()
    {
        _timer?.Dispose();
        _timer = null;
        var generation = ++_timerGeneration;
        if (_deadline is not { } deadline || _cancelCalled || _state == State.Exited)
        {
            return false;
        }

        var due = deadline - _timeProvider.GetUtcNow();
        if (due <= TimeSpan.Zero)
        {
            return true;
        }

        _timer = _timeProvider.CreateTimer(
            static s => ((DeadlineTick)s!).Fire(),
            new DeadlineTick(this, generation),
            due < s_maxTimerDue ? due : s_maxTimerDue,
            Timeout.InfiniteTimeSpan);
        return false;
    }

    private void OnDeadline(long generation)
    {
        bool expired;
        lock (_lock)
        {
            // A timer that was replaced or stopped while its callback was on its way must not cancel.
            if (generation != _timerGeneration)
            {
                return;
            }

            expired = ArmLocked();
        }

        if (expired)
        {
            CancelCore("deadline", timedOut: true);
        }
    }

    private sealed class DeadlineTick(CancelScope scope, long generation)
    {
        public void Fire() => scope.OnDeadline(generation);
    }

    private void RestoreParentIfCurrent(CancelScope? current)
    {
        if (current == this)
        {
            s_current.Value = _parent;
        }
    }

    // Disposing twice is harmless because Exit is: an exited scope ignores further exits, and an exit refused in the
    // wrong flow changed nothing, so the right flow can still exit later.
    private sealed class Entered(CancelScope scope) : IDisposable
    {
        public void Dispose() => scope.Exit();
    }
}
