using System.Runtime.Intrinsics.X86;
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

    // False until the process first makes a scope ambient. Until then no async flow can hold a scope, so Current answers
    // without reading the AsyncLocal (checkpoints ask s_hot first). Set once, and fenced before the AsyncLocal write, so no
    // thread can run in a flow that holds a scope (however its ExecutionContext got there) and still read false.
    private static volatile bool s_inUse;

    // Timers cannot be set further than about 49 days ahead; a longer deadline is re-armed when this elapses.
    private static readonly TimeSpan s_maxTimerDue = TimeSpan.FromDays(40);

    // The phase (State) in the low bits, plus Tangled: see EnterCore and Exit.
    private const int PhaseMask = 3;

    // Set (never cleared) before anything gives an exit something to undo under the lock: the token's source and its
    // links, the deadline timer, a scope group. A scope that nobody tangled enters and exits without a lock (its own
    // state takes two interlocked operations on entry and one on exit, and a scope entered inside another one adds one on
    // the enclosing scope's hold each way); a tangled scope enters and exits under the lock. (A shield needs no flag: the
    // untangled exit ignores it, which only sends more exits to the lock.)
    private const int Tangled = 4;

    // A scope's quiet mark that can never match s_epoch: the scope exited, so checkpoints must go the long way.
    private const long NeverQuiet = -1;

    // Counts the moments at which a scope, or what it listens to, may have become cancelled by MicroIo code: each one is
    // counted after the state that answers "cancelled" is written. A checkpoint that found a scope uncancelled at epoch
    // E marks it quiet at E, and the next checkpoints answer with one comparison while the epoch is still E. Scopes that
    // listen to a caller's token that can be cancelled are never marked (a scope without a source would see that token
    // cancelled before any MicroIo code runs; since such scopes link it on entry, this only keeps the rule simple).
    private static long s_epoch = 1;

    // The scopes a checkpoint may find cancelled: each scope that is hot (it was cancelled, by itself, by its deadline, or
    // from outside through a record or a link's callback) while it is live (active, or held by a scope entered inside it
    // that is still active: a flow that outlives its scope may have entered one). While it is zero, no ambient scope of any
    // flow can be cancelled, and checkpoints answer without reading the AsyncLocal. A live scope is counted before its
    // record is written, a scope recorded while not live is counted on entry, and a scope is uncounted only once it is no
    // longer live, so the count never reads zero while a checkpoint that happens after a cancellation could find it.
    private static long s_hot;

    // _hold: Hot and Counted flags, plus one HeldByChild for each scope entered inside this one that has not exited yet.
    private const int Hot = 1;
    private const int Counted = 2;
    private const int HeldByChild = 4;

    private readonly TimeProvider _timeProvider;
    private readonly bool _failOnDeadline;
    private readonly ScopeGroup? _group;

    // Created on first use of Token, or on entry with a caller's token that can be cancelled (see LinkOnEntry), never
    // before: a scope that is entered and left without either costs no source and no registration on the enclosing
    // scope's token.
    private CancellationTokenSource? _cts;

    // The lock, and what only code holding it touches, created on first use: entering and exiting a scope that nobody
    // else touches takes no lock and carries none of it.
    private Guarded? _guarded;

    // The State, plus the Tangled flag; read and written with Volatile and Interlocked.
    private int _state;

    // The epoch at which a checkpoint last found this scope, and everything it listens to, uncancelled (see s_epoch).
    private long _quietEpoch;

    // Whether the scope is hot, whether it is counted in s_hot, and how many scopes entered inside it are still active;
    // read and written with Volatile and Interlocked.
    private int _hold;

    // Whether this scope, or a scope it is nested in, listens to a caller's token that can be cancelled.
    private bool _external;
    private bool _shield;
    private volatile bool _cancelCalled;

    // Set when the scope stops listening to the outside (exit, or a shield raised) while the outside was cancelled: the
    // cancellation that had reached the scope stays, as it would in a source that a registration had already cancelled.
    private volatile bool _outsideCancelled;
    private bool _cancelledCaught;
    private bool _timedOut;

    private CancelScope? _parent;
    private CancellationToken _callerToken;

    private enum State
    {
        New,

        // Won by one Enter, which is writing the parent and the caller's token; seen by others as not yet active.
        Entering,
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
        // A group must see the scope's entry and exit, which the untangled paths skip; a deadline has a timer to stop.
        // Nobody else can see the scope yet, so a plain write does.
        if (group is not null || deadline is not null)
        {
            _state = Tangled;
        }

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
            var scope = Innermost;
            return scope is null || scope.Phase != State.Exited ? scope : FirstActive(scope._parent);
        }
    }

    /// <summary>Gets the token that is cancelled when this scope is cancelled, by itself or, while active, from outside.</summary>
    /// <remarks>
    /// The token's source is created on first use (or on entry, when the scope is run with a caller's token that can be
    /// cancelled), and linked then to the enclosing scope and the caller's token.
    /// </remarks>
    public CancellationToken Token => (Volatile.Read(ref _cts) ?? CreateSource()).Token;

    /// <summary>Gets a value indicating whether <see cref="Token"/> is cancelled, for any cause.</summary>
    /// <remarks>Answered without creating the token's source when nobody has asked for the token yet.</remarks>
    public bool IsCancellationRequested => Volatile.Read(ref _cts) is { } cts ? cts.IsCancellationRequested : IsCancelledWithoutSource();

    /// <summary>Gets a value indicating whether <see cref="Cancel(string?)"/> was called or the deadline passed.</summary>
    public bool CancelCalled
    {
        get
        {
            lock (Guard)
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
            lock (Guard)
            {
                return Guard.Reason;
            }
        }
    }

    /// <summary>Gets a value indicating whether the scope swallowed its own cancellation when its body ended.</summary>
    public bool CancelledCaught
    {
        get
        {
            lock (Guard)
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
            lock (Guard)
            {
                return _timedOut;
            }
        }
    }

    /// <summary>Gets a value indicating whether the scope has been entered and not yet exited.</summary>
    public bool IsActive
    {
        get => Phase == State.Active;
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
            lock (Guard)
            {
                return _shield;
            }
        }

        set
        {
            CancellationTokenSource? reached = null;
            var link = false;
            lock (Guard)
            {
                if (_shield == value)
                {
                    return;
                }

                // A cancellation that already reached the scope stays: it is recorded here, before the shield hides the
                // parent from IsCancellationRequested, and a source that exists is cancelled below, as the link would
                // have done had its callback run before the shield removed it.
                if (value && Phase == State.Active && !_outsideCancelled && _parent is not null && _parent.IsCancellationRequested)
                {
                    MarkHot();
                    _outsideCancelled = true;
                    reached = _cts;
                }

                _shield = value;
                if (Phase == State.Active)
                {
                    if (value)
                    {
                        Guard.ParentRegistration.Unregister();
                        Guard.ParentRegistration = default;
                    }
                    else
                    {
                        // Lowering the shield may expose a cancelled enclosing scope: no checkpoint may go on trusting its mark.
                        AdvanceEpoch();
                        link = true;
                    }
                }
            }

            if (link)
            {
                LinkParent();
            }

            reached?.Cancel();
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
            lock (Guard)
            {
                return Guard.Deadline;
            }
        }

        set
        {
            bool expired;
            lock (Guard)
            {
                Tangle();
                Guard.Deadline = value;
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
    /// <returns>A handle whose <see cref="CancelScopeEntry.Dispose"/> exits the scope (a struct: entering allocates nothing).</returns>
    /// <exception cref="InvalidOperationException">The scope was already entered.</exception>
    /// <remarks>
    /// For code that handles cancellation itself. Disposing the handle in a different async flow than the one that
    /// entered the scope, or while a scope entered inside it is still active, throws <see cref="InvalidOperationException"/>.
    /// </remarks>
    public CancelScopeEntry Enter()
    {
        EnterCore(CancellationToken.None);
        return new CancelScopeEntry(this);
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

    /// <summary>Makes a scope the ambient one of the calling async flow: on entry, and for task group children, which belong to their group.</summary>
    internal static void SetCurrent(CancelScope scope)
    {
        if (!s_inUse)
        {
            s_inUse = true;

            // A volatile write does not keep later stores behind it: without the fence, a context captured below and
            // handed to another thread without synchronisation could be seen there before the flag.
            Interlocked.MemoryBarrier();
        }

        s_current.Value = scope;
    }

    // Out of line: the common case (the innermost scope is active) must stay small enough to inline into checkpoints.
    private static CancelScope? FirstActive(CancelScope? scope)
    {
        while (scope is not null && scope.Phase == State.Exited)
        {
            scope = scope._parent;
        }

        return scope;
    }

    /// <summary>Gets the scope the current async flow last entered (or was given), exited or not, without skipping.</summary>
    internal static CancelScope? Innermost => s_inUse ? s_current.Value : null;

    /// <summary>Gets a value indicating whether any flow's ambient scope may be cancelled; <see langword="false"/> means no checkpoint anywhere can find one.</summary>
    internal static bool MayBeCancelled => Volatile.Read(ref s_hot) != 0;

    /// <summary>Gets a value indicating whether a checkpoint found this scope uncancelled since the last possible cancellation.</summary>
    /// <remarks>Only a hint to skip the full check: <see langword="false"/> says nothing.</remarks>
    internal bool IsQuiet => Volatile.Read(ref _quietEpoch) == Volatile.Read(ref s_epoch);

    /// <summary>The full check of <see cref="Checkpoint.ThrowIfCancelled"/> for the ambient scope: returns the cancelled scope, or marks the scope quiet when it may and returns <see langword="null"/>.</summary>
    /// <param name="innermost">What <see cref="Innermost"/> returned.</param>
    internal static CancelScope? AmbientCancelled(CancelScope innermost)
    {
        // The mark and the epoch first, then the state: a cancellation recorded after these reads advances the epoch past
        // the one read here, and an exit after the mark was read replaces it, so the exchange below cannot mark wrongly.
        var mark = Volatile.Read(ref innermost._quietEpoch);
        var epoch = Volatile.Read(ref s_epoch);
        var scope = innermost.Phase != State.Exited ? innermost : FirstActive(innermost._parent);
        if (scope is null)
        {
            return null;
        }

        if (scope.IsCancellationRequested)
        {
            return scope;
        }

        // A caller's token that can be cancelled cancels without running MicroIo code, so it advances no epoch: such a
        // scope, and every scope inside it, is checked in full every time.
        if (scope == innermost && mark != NeverQuiet && !scope._external && !scope.IsCancelledByRecords())
        {
            Interlocked.CompareExchange(ref scope._quietEpoch, epoch, mark);
        }

        return null;
    }

    /// <summary>Enters the scope in the current async flow, linked to the enclosing scope and to the caller's token.</summary>
    internal void EnterCore(CancellationToken callerToken)
    {
        var parent = s_current.Value;

        // Untangled (the common case): one interlocked operation wins the entry, so two racing Enters cannot both write
        // the parent; while Entering, others see the scope as not yet active.
        if (Volatile.Read(ref _state) == (int)State.New
            && Interlocked.CompareExchange(ref _state, (int)State.Entering, (int)State.New) == (int)State.New)
        {
            _parent = parent;
            _callerToken = callerToken;
            _external = callerToken.CanBeCanceled || (parent is not null && parent._external);

            // Entering -> Active, keeping a Tangled flag set meanwhile (a first Token, a Shield or a Deadline from another
            // thread). Parent and caller first: a reader that sees the scope active sees its links. With the fence after
            // it, a full fence on every processor, paired with the one in CreateSource: either this entry sees the new
            // source below, or CreateSource sees the scope active and links it itself.
            Interlocked.Add(ref _state, (int)State.Active - (int)State.Entering);

            // Stryker disable once Statement : a fence, which no test on x64 (where it compiles to nothing) can observe.
            FenceAfterUnusedAtomic();
            Hold(parent);
            SetCurrent(this);
            CompleteEntry(callerToken);
            return;
        }

        lock (Guard)
        {
            var phase = Phase;
            if (phase != State.New)
            {
                throw new InvalidOperationException(phase is State.Entering or State.Active
                    ? "The CancelScope is already active; a scope can be entered only once."
                    : "The CancelScope has already been used; a scope can be entered only once.");
            }

            // Here the scope is tangled (New without the flag would have taken the path above), and tangling happens under
            // this lock, so no other writer of the state can run: a plain write keeps the flag.
            _parent = parent;
            _callerToken = callerToken;
            _external = callerToken.CanBeCanceled || (parent is not null && parent._external);
            Volatile.Write(ref _state, (int)State.Active | Tangled);

            // A volatile write does not keep the reads of the hold in Hold behind it (see MarkHot).
            // Stryker disable once Statement : a fence; its absence shows only as a rare reordering no test can provoke.
            Interlocked.MemoryBarrier();
        }

        Hold(parent);
        SetCurrent(this);
        CompleteEntry(callerToken);
    }

    /// <summary>The part of an entry that may run user code (a latched group's cancel, a link's callbacks): if it throws, the scope is exited again before the exception goes on.</summary>
    /// <remarks>Otherwise the scope would stay active, ambient in the caller's flow and counted, with no handle to exit it.</remarks>
    private void CompleteEntry(CancellationToken callerToken)
    {
        try
        {
            _group?.OnEnter(this);
            LinkOnEntry(callerToken);
        }
        catch
        {
            Exit();
            throw;
        }
    }

    /// <summary>On entry, once the scope is active and ambient: links a source that exists, and creates (and links) one for a caller's token that can be cancelled.</summary>
    /// <remarks>
    /// Without a caller's token, the links wait until someone asks for the token (CreateSource makes them); until then the
    /// scope answers IsCancellationRequested by looking at the outside directly. A caller's token is linked at once: its
    /// cancellation runs no MicroIo code of its own, and the link's callback is what counts the scope among those a
    /// checkpoint may find cancelled (a scope whose source is linked reports the caller's cancellation only once that
    /// callback has cancelled the source). RunAsync and a task group's started child ask for the scope's token right after
    /// entering anyway; a task group passes it to its children.
    /// </remarks>
    private void LinkOnEntry(CancellationToken callerToken)
    {
        if (Volatile.Read(ref _cts) is not null)
        {
            LinkParent();
            LinkCaller();
        }
        else if (callerToken.CanBeCanceled)
        {
            // Links itself: the scope is active. If a first Token from another thread made the source meanwhile, that
            // one saw the scope active and linked it.
            CreateSource();
        }
    }

    /// <summary>Exits the scope: stops its timer, drops its links to the outside, and restores the enclosing scope.</summary>
    internal void Exit()
    {
        var current = s_current.Value;
        var state = Volatile.Read(ref _state);
        if ((State)(state & PhaseMask) == State.Exited)
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

        // Untangled, and nothing outside cancelled: there is no source, timer, link or group to undo and no cancellation
        // to keep, so the exit is the state change alone. Tangling fails this exchange, and a tangling operation that
        // comes after it sees the scope exited; either way exactly one of them decides.
        if (state == (int)State.Active && !IsCancelledOutsideUntangled())
        {
            // The quiet mark goes first, so no checkpoint trusts it once the scope is exited; if the exchange fails, the
            // exit below happens anyway.
            Volatile.Write(ref _quietEpoch, NeverQuiet);
            if (Interlocked.CompareExchange(ref _state, (int)State.Exited, (int)State.Active) == (int)State.Active)
            {
                Release();
                s_current.Value = _parent;
                return;
            }
        }

        ITimer? timer;
        CancellationTokenRegistration parentRegistration;
        CancellationTokenRegistration callerRegistration;
        CancellationTokenSource? cancelSource = null;
        lock (Guard)
        {
            // Two flows that share the entering flow's context may both dispose the handle: only the first exits. Tangling
            // first shuts out an untangled exit from the other flow.
            if ((State)(Tangle() & PhaseMask) == State.Exited)
            {
                RestoreParentIfCurrent(current);
                return;
            }

            // The outside stops reaching the scope here; a cancellation that reached it before stays (a source linked
            // later, or linked while this exit ran, would otherwise miss it).
            if (!_cancelCalled && !_outsideCancelled && IsCancelledOutsideLocked())
            {
                MarkHot();
                _outsideCancelled = true;
                cancelSource = _cts;
            }

            // The mark goes first, as on the untangled exit: a flow that outlives the scope must not pass a checkpoint on it
            // once the scope is seen exited.
            Volatile.Write(ref _quietEpoch, NeverQuiet);
            Volatile.Write(ref _state, (int)State.Exited | Tangled);

            // A volatile write does not keep the reads of the hold in Release behind it (see MarkHot).
            // Stryker disable once Statement : a fence; its absence shows only as a rare reordering no test can provoke.
            Interlocked.MemoryBarrier();
            timer = Guard.Timer;
            Guard.Timer = null;
            Guard.TimerGeneration++;
            parentRegistration = Guard.ParentRegistration;
            Guard.ParentRegistration = default;
            callerRegistration = Guard.CallerRegistration;
            Guard.CallerRegistration = default;
        }

        // Before the clock's code and the token's callbacks, which may throw.
        Release();
        timer?.Dispose();
        parentRegistration.Unregister();
        callerRegistration.Unregister();
        // No epoch to advance: the exit records a cancellation only when the scope's records already showed it (active,
        // with the outside cancelled), so no quiet mark inside it can stand.
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
        lock (Guard)
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
            lock (Guard)
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
            lock (Guard)
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

    /// <summary>On entry, once the scope is active and before it is ambient: holds the enclosing scope until this one exits, and counts this scope if it was cancelled before it was entered.</summary>
    private void Hold(CancelScope? parent)
    {
        // An enclosing scope that exited already (this flow outlived it) is live again while this one is active.
        if (parent is not null && (Interlocked.Add(ref parent._hold, HeldByChild) & (Hot | Counted)) == Hot)
        {
            parent.Count();
        }

        if ((Volatile.Read(ref _hold) & (Hot | Counted)) == Hot)
        {
            Count();
        }
    }

    /// <summary>On exit, once the scope is seen exited: stops holding the enclosing scope, and stops counting this one unless a scope entered inside it is still active.</summary>
    private void Release()
    {
        if (_parent is { } parent)
        {
            Interlocked.Add(ref parent._hold, -HeldByChild);
            if (parent.Phase == State.Exited)
            {
                parent.Uncount();
            }
        }

        Uncount();
    }

    /// <summary>Marks the scope hot, before the record or the outside's cancellation that makes it so, and counts it while it is live.</summary>
    /// <remarks>
    /// The fence after the mark pairs with the one after each change of phase (the entry's compare-exchange to Entering,
    /// the exit's compare-exchange, or a fence after a volatile write; Hold and Release read the hold after it): either the
    /// entry or exit sees the mark, or this sees the new phase. MarkHot counts a scope that is still entering.
    /// </remarks>
    private void MarkHot()
    {
        Interlocked.Or(ref _hold, Hot);

        // Stryker disable once Statement : a fence, which no test on x64 (where it compiles to nothing) can observe.
        FenceAfterUnusedAtomic();
        if (Phase is State.Entering or State.Active || Children(Volatile.Read(ref _hold)) != 0)
        {
            Count();
        }
    }

    /// <summary>Counts a hot, live scope in <see cref="s_hot"/>, once.</summary>
    private void Count()
    {
        while (true)
        {
            var hold = Volatile.Read(ref _hold);
            if ((hold & Counted) != 0)
            {
                return;
            }

            // Raised before the flag is set and lowered only after it is cleared, so s_hot never reads below the number
            // of counted scopes.
            Interlocked.Increment(ref s_hot);
            if (Interlocked.CompareExchange(ref _hold, hold | Counted, hold) == hold)
            {
                break;
            }

            Interlocked.Decrement(ref s_hot);
        }

        // An exit between the caller's look at the phase and the flag found nothing to undo: undo it here.
        if (Phase == State.Exited)
        {
            Uncount();
        }
    }

    /// <summary>Returns how many active scopes a hold word says were entered inside its scope.</summary>
    private static int Children(int hold) => hold / HeldByChild;

    /// <summary>Stops counting an exited scope once no scope entered inside it is active; an exited scope is never active again.</summary>
    private void Uncount()
    {
        while (true)
        {
            var hold = Volatile.Read(ref _hold);
            if ((hold & Counted) == 0 || Children(hold) != 0)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _hold, hold & ~Counted, hold) == hold)
            {
                Interlocked.Decrement(ref s_hot);
                return;
            }
        }
    }

    /// <summary>Keeps the reads that follow an interlocked operation whose result is unused behind it, on every processor.</summary>
    /// <remarks>
    /// On x86 and x64 every locked instruction is a full fence, and this compiles to nothing. On ARM64 the JIT emits such an
    /// operation with a zero destination register, which drops its acquire half: a later read could then move before it.
    /// </remarks>
    // Stryker disable all : fences, which no test on x64 can observe.
    private static void FenceAfterUnusedAtomic()
    {
        if (!X86Base.IsSupported)
        {
            Interlocked.MemoryBarrier();
        }
    }

    // Stryker restore all

    /// <summary>Invalidates every quiet mark: called after each record that can make a scope (or one inside it) cancelled.</summary>
    private static void AdvanceEpoch() => Interlocked.Increment(ref s_epoch);

    private State Phase => (State)(Volatile.Read(ref _state) & PhaseMask);

    /// <summary>Gets a value indicating whether the scope is counted among those a checkpoint may find cancelled (for tests).</summary>
    internal bool IsCounted => (Volatile.Read(ref _hold) & Counted) != 0;

    /// <summary>Gets the number of scopes entered inside this one that have not exited yet (for tests).</summary>
    internal int HeldByChildren => Children(Volatile.Read(ref _hold));

    /// <summary>Gets the number of scopes counted among those a checkpoint may find cancelled, process-wide (for tests that run alone).</summary>
    internal static long HotCount => Volatile.Read(ref s_hot);

    /// <summary>Gets a value indicating whether the scope's lock exists (for tests: it is created only on first use).</summary>
    internal bool HasLock => Volatile.Read(ref _guarded) is not null;

    private Guarded Guard => Volatile.Read(ref _guarded) ?? CreateGuarded();

    private Guarded CreateGuarded()
    {
        var created = new Guarded();
        return Interlocked.CompareExchange(ref _guarded, created, null) ?? created;
    }

    /// <summary>Marks the scope tangled (see <see cref="Tangled"/>); call under the lock. Returns the state before.</summary>
    /// <remarks>
    /// Once tangled, only an untangled Enter already past its exchange can still change the state (to Active), and
    /// callers that use the result are never in that window (an exit there has already thrown): a read is enough.
    /// </remarks>
    private int Tangle()
    {
        var state = Volatile.Read(ref _state);
        return (state & Tangled) != 0 ? state : Interlocked.Or(ref _state, Tangled);
    }

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
    private bool IsCancelledWithoutSource()
    {
        // The phase first: an exit records a cancellation that had reached the scope before it shows the scope exited, so
        // a reader that sees it exited sees that record too.
        var active = Phase == State.Active;
        return _cancelCalled
            || _outsideCancelled
            || (active && (_callerToken.IsCancellationRequested || (!Volatile.Read(ref _shield) && _parent is { } parent && parent.IsCancellationRequested)));
    }

    /// <summary>Answers whether <see cref="Token"/> is cancelled, or a cancellation that will cancel it has begun.</summary>
    /// <remarks>
    /// A cancellation runs its token's callbacks newest first, so code woken by a caller's token (or an enclosing scope's)
    /// that it registered on itself can run before the older link that cancels this scope's source. The scopes' records,
    /// and the caller's token, where such a cancellation starts, already show it then. A cancellation that shows only in an
    /// enclosing scope's token (a link removed while its callback was on its way) is not seen.
    /// </remarks>
    internal bool IsCancellationUnderway() =>
        (Volatile.Read(ref _cts) is { } cts && cts.IsCancellationRequested) || IsCancelledByRecords();

    /// <summary>
    /// Answers, from the scopes' own records only (never from a token's source), whether this scope or what it listens to
    /// may be cancelled; every way MicroIo sets such a record advances the epoch after it.
    /// </summary>
    private bool IsCancelledByRecords()
    {
        var active = Phase == State.Active;
        return _cancelCalled
            || _outsideCancelled
            || (active && (_callerToken.IsCancellationRequested || (!Volatile.Read(ref _shield) && _parent is { } parent && parent.IsCancelledByRecords())));
    }

    /// <summary>
    /// Answers, for an untangled scope (one without a source), whether the outside may be cancelled: it ignores the shield,
    /// so a shielded scope inside a cancelled one exits under the lock, which decides exactly.
    /// </summary>
    private bool IsCancelledOutsideUntangled() =>
        _callerToken.IsCancellationRequested || (_parent is { } parent && parent.IsCancellationRequested);

    /// <summary>Creates the token's source on first use: cancelled at once if the scope already is, and linked to the outside while active.</summary>
    private CancellationTokenSource CreateSource()
    {
        CancellationTokenSource cts;
        bool link;
        lock (Guard)
        {
            if (_cts is { } existing)
            {
                return existing;
            }

            // A source has links that an exit must remove under the lock: no untangled exit from here on.
            Tangle();

            // Decided under the lock that CancelCore and Exit take: a cancellation either is seen here or finds the source.
            cts = new CancellationTokenSource();
            if (_cancelCalled || _outsideCancelled)
            {
                cts.Cancel();
            }

            // A full fence, paired with the one in an untangled EnterCore: either that entry sees this source, or the phase
            // read below sees the scope active.
            Interlocked.Exchange(ref _cts, cts);

            // Stryker disable once Statement : a fence, which no test on x64 (where it compiles to nothing) can observe.
            FenceAfterUnusedAtomic();
            link = Phase == State.Active;
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
        lock (Guard)
        {
            if (Phase != State.Active || !_callerToken.CanBeCanceled)
            {
                return;
            }

            caller = _callerToken;
        }

        // UnsafeRegister: cancelling a token must not capture or flow the registering code's context.
        var registration = caller.UnsafeRegister(static s => ((CancelScope)s!).CancelFromOutside(), this);
        lock (Guard)
        {
            // An exit may have come in between: then the link must not stay (the exit recorded any cancellation). An
            // Enter and a first Token racing each other may both link: the second link must not replace (and so leak) the
            // first, which the exit would then never remove.
            if (Phase != State.Active || Guard.CallerRegistration != default)
            {
                registration.Unregister();
                return;
            }

            Guard.CallerRegistration = registration;
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
        lock (Guard)
        {
            // Without a source there is nothing to link yet: CreateSource links when the token is first asked for.
            parent = _shield || Phase != State.Active || _cts is null ? null : _parent;
        }

        if (parent is not null)
        {
            var registration = parent.Token.UnsafeRegister(static s => ((CancelScope)s!).CancelFromOutside(), this);
            lock (Guard)
            {
                // A concurrent Shield = true or exit may have come in between: then the link must not stay; nor may a
                // second link, made by an Enter racing the first Token, replace the first.
                if (_shield || Phase != State.Active || Guard.ParentRegistration != default)
                {
                    registration.Unregister();
                    return;
                }

                Guard.ParentRegistration = registration;
            }
        }
    }

    private void CancelFromOutside()
    {
        if (Volatile.Read(ref _cts) is { } cts)
        {
            MarkHot();

            // The outside's records already show this cancellation (its own records, or a caller's token, which keeps
            // scopes from being marked at all), except when a link was removed while its callback was already on its way
            // (a shield raised, or an exit, racing the outside's cancellation): then only the token shows it, and no mark
            // made before it was cancelled stands once Cancel returns, not even when a callback on the token throws.
            AdvanceEpoch();
            try
            {
                cts.Cancel();
            }
            finally
            {
                AdvanceEpoch();
            }
        }
    }

    private bool CancelCore(string? reason, bool timedOut)
    {
        // Before the record: a checkpoint that finds the record must find the scope counted.
        MarkHot();
        ITimer? timer;
        CancellationTokenSource? cts;
        lock (Guard)
        {
            if (_cancelCalled)
            {
                return false;
            }

            _timedOut = timedOut;
            Guard.Reason = reason;
            _cancelCalled = true;
            timer = Guard.Timer;
            Guard.Timer = null;
            Guard.TimerGeneration++;

            // A source created after this lock sees _cancelCalled and starts cancelled.
            cts = _cts;
        }

        // After the record, before the token is cancelled: callbacks on the token may run checkpoints in this scope, and
        // must find no quiet mark; a checkpoint marking the scope from here on reads the record and does not.
        AdvanceEpoch();
        timer?.Dispose();
        cts?.Cancel();
        return true;
    }

    /// <summary>Arms (or re-arms, or stops) the deadline timer; returns true when the deadline has already passed.</summary>
    private bool ArmLocked()
    {
        Guard.Timer?.Dispose();
        Guard.Timer = null;
        var generation = ++Guard.TimerGeneration;
        if (Guard.Deadline is not { } deadline || _cancelCalled || Phase == State.Exited)
        {
            return false;
        }

        var due = deadline - _timeProvider.GetUtcNow();
        if (due <= TimeSpan.Zero)
        {
            return true;
        }

        Guard.Timer = _timeProvider.CreateTimer(
            static s => ((DeadlineTick)s!).Fire(),
            new DeadlineTick(this, generation),
            due < s_maxTimerDue ? due : s_maxTimerDue,
            Timeout.InfiniteTimeSpan);
        return false;
    }

    private void OnDeadline(long generation)
    {
        bool expired;
        lock (Guard)
        {
            // A timer that was replaced or stopped while its callback was on its way must not cancel.
            if (generation != Guard.TimerGeneration)
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

    /// <summary>The state that is read and written only under the scope's lock; the object is that lock (a monitor).</summary>
    /// <remarks>
    /// A monitor rather than a <see cref="Lock"/>: one object instead of two for every scope that needs a lock (a deadline,
    /// a token, a cancel), and it is private, so nobody else can take it.
    /// </remarks>
    private sealed class Guarded
    {
        public string? Reason;
        public DateTimeOffset? Deadline;
        public ITimer? Timer;
        public long TimerGeneration;
        public CancellationTokenRegistration ParentRegistration;
        public CancellationTokenRegistration CallerRegistration;
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
}
