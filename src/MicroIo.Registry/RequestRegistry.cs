using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Tracks the waiters of pending requests by key, so the thread that reads replies can wake the right one, and a
/// service that crashes or closes can wake them all.
/// </summary>
/// <typeparam name="TKey">The type of the request ids that replies are matched by.</typeparam>
/// <typeparam name="TResult">The type of a request's result.</typeparam>
/// <remarks>
/// <para>
/// Each pending key maps to one <see cref="RequestWaiter{TResult}"/>. A waiter ends exactly once: with a value
/// (<see cref="Resolve(TKey, TResult)"/>), with a failure (<see cref="Fail(TKey, Exception)"/>,
/// <see cref="FailAll(Exception)"/>, <see cref="Close(Exception?)"/>), with a timeout or a cancellation of its wait, or
/// when whoever holds it completes it directly. Whatever ends a waiter removes its key first, so <see cref="Count"/>,
/// <see cref="Contains(TKey)"/> and <see cref="PendingKeys"/> see only requests that still await an answer, and the key
/// can be registered again as soon as the answer is given.
/// </para>
/// <para>
/// Every member may be called from any thread. The registry owns no threads and no timers of its own; a wait with a
/// timeout uses the <see cref="TimeProvider"/> given to the constructor. Completing a waiter never runs the
/// continuations of its awaiters on the completing thread, so a reader thread that resolves requests is not hijacked
/// by its callers' code.
/// </para>
/// <para>
/// A result is a value whatever its type: resolving a registry of <see cref="object"/> with an
/// <see cref="Exception"/> delivers that exception as the value. Only <see cref="Fail(TKey, Exception)"/> and its
/// kin make a wait throw.
/// </para>
/// </remarks>
/// <example>
/// A client sends requests with ids; its reader thread matches each reply to the waiting caller, and fails them all
/// when the connection dies.
/// <code>
/// var registry = new RequestRegistry&lt;int, string&gt;();
///
/// // Caller: register, send, wait (the key is removed whatever the outcome).
/// string answer = await registry.RequestAsync(
///     id,
///     async reply =&gt; await connection.SendAsync(id, "ping"),
///     TimeSpan.FromSeconds(5),
///     cancellationToken);
///
/// // Reader thread: wake the right caller.
/// while (connection.TryRead(out int replyId, out string text))
/// {
///     registry.Resolve(replyId, text);   // false if that request already timed out
/// }
///
/// // The connection died: fail every pending request, and every later one at once.
/// registry.Close(new IOException("connection lost"));
/// </code>
/// </example>
public sealed class RequestRegistry<TKey, TResult> : IPendingCount
    where TKey : notnull
{
    private static readonly long s_spinTicks = Spinning.DefaultTicks(Environment.ProcessorCount, Stopwatch.Frequency);

    // A plain lock over a plain dictionary: every operation is one short lookup, and one lock makes Register and Close
    // (and Resolve and a timeout) trivially atomic with respect to each other. Waiters are always completed outside the
    // lock, after their key is gone.
    private readonly Lock _lock = new();
    private readonly Dictionary<TKey, PendingRequest<TKey, TResult>> _pending;
    private readonly TimeProvider _timeProvider;

    // Whether spinning pays for this registry's replies (see SpinIfItPays and Spinning.IsSpinDue). Read and written
    // without a lock. A lost update only moves the
    // next spin, and a stale write can turn spinning back on for a few waits, whose misses then bring it down again.
    private int _spinCredit = Spinning.MaxCredit;

    // Written under _lock; read without it only for IsClosed.
    private volatile bool _closed;
    private Exception? _closeException;

    /// <summary>Initializes a new, open registry that compares keys with the default comparer and uses the system clock.</summary>
    public RequestRegistry()
        : this(null, TimeProvider.System)
    {
    }

    /// <summary>Initializes a new, open registry that measures wait timeouts with the given time provider.</summary>
    /// <param name="timeProvider">The clock for wait timeouts, such as <see cref="TimeProvider.System"/> or a fake one in tests.</param>
    /// <exception cref="ArgumentNullException"><paramref name="timeProvider"/> is <see langword="null"/>.</exception>
    public RequestRegistry(TimeProvider timeProvider)
        : this(null, timeProvider)
    {
    }

    /// <summary>Initializes a new, open registry with the given key comparer and time provider.</summary>
    /// <param name="comparer">The comparer for keys, or <see langword="null"/> for <see cref="EqualityComparer{T}.Default"/>.</param>
    /// <param name="timeProvider">The clock for wait timeouts, such as <see cref="TimeProvider.System"/> or a fake one in tests.</param>
    /// <exception cref="ArgumentNullException"><paramref name="timeProvider"/> is <see langword="null"/>.</exception>
    public RequestRegistry(IEqualityComparer<TKey>? comparer, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _pending = new Dictionary<TKey, PendingRequest<TKey, TResult>>(comparer);
        _timeProvider = timeProvider;
        RegistryMetrics.Track(this);
    }

    /// <summary>Gets or sets how long an asynchronous wait spins before it suspends, in <see cref="Stopwatch"/> ticks (for tests).</summary>
    internal long SpinTicks { get; set; } = s_spinTicks;

    /// <summary>Gets or sets a callback that a wait calls just before it spins (for tests).</summary>
    internal Action<RequestWaiter<TResult>>? SpinStartingForTests { get; set; }

    /// <summary>Gets the registry's spin credit (for tests).</summary>
    internal int SpinCredit => _spinCredit;

    /// <summary>Gets the number of pending requests.</summary>
    /// <value>The number of registered keys that are neither answered (by any path) nor removed.</value>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Gets a snapshot of the keys of the pending requests.</summary>
    /// <value>A new collection on each call, which later registrations and answers do not change.</value>
    public IReadOnlyCollection<TKey> PendingKeys
    {
        get
        {
            lock (_lock)
            {
                return [.. _pending.Keys];
            }
        }
    }

    /// <summary>Gets a value indicating whether <see cref="Close(Exception?)"/> has been called.</summary>
    /// <value><see langword="true"/> if the registry is closed; otherwise, <see langword="false"/>.</value>
    public bool IsClosed => _closed;

    /// <summary>Determines whether a request with the given key is pending.</summary>
    /// <param name="key">The request key.</param>
    /// <returns><see langword="true"/> if <paramref name="key"/> is pending; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> is <see langword="null"/>.</exception>
    public bool Contains(TKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        lock (_lock)
        {
            return _pending.ContainsKey(key);
        }
    }

    /// <summary>Registers a new pending request and returns its waiter.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <returns>The waiter that the answer to <paramref name="key"/> will complete.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; the message names the key.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; the close exception, if any, is the inner exception.</exception>
    /// <remarks>
    /// Pass the waiter to <see cref="Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/> or
    /// <see cref="WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>, which remove the key when
    /// they end. A registration that races with <see cref="Close(Exception?)"/> either throws or is failed by it; it is
    /// never left pending.
    /// </remarks>
    public RequestWaiter<TResult> Register(TKey key) => Add(key);

    /// <summary>Registers a new pending request and returns a handle that can answer it and wait for it.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <returns>A handle bound to <paramref name="key"/> and to the new waiter, to hand to whoever will answer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; the message names the key.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; the close exception, if any, is the inner exception.</exception>
    public ReplyHandle<TKey, TResult> Reply(TKey key) => new(Add(key));

    /// <summary>Completes a pending request with a value.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="value">The result; an <see cref="Exception"/> given here is delivered as a value, not thrown.</param>
    /// <returns><see langword="true"/> if the request was pending and this call answered it; <see langword="false"/> if it is no longer pending (already answered, timed out, cancelled or removed).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> is <see langword="null"/>.</exception>
    /// <remarks>The key is removed before the waiter completes; the waiter's continuations do not run on the calling thread.</remarks>
    public bool Resolve(TKey key, TResult value)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Take(key) is { } waiter && waiter.SetResultDetached(value);
    }

    /// <summary>Completes a pending request with a failure, which its wait rethrows.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="exception">The failure; the wait throws this very exception.</param>
    /// <returns><see langword="true"/> if the request was pending and this call failed it; <see langword="false"/> if it is no longer pending (already answered, timed out, cancelled or removed).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <remarks>The key is removed before the waiter completes; the waiter's continuations do not run on the calling thread.</remarks>
    public bool Fail(TKey key, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(exception);
        return Take(key) is { } waiter && Failed(waiter.SetExceptionDetached(exception, observed: false));
    }

    /// <summary>Fails every pending request with the same exception and returns how many waiters it woke.</summary>
    /// <param name="exception">The failure that every pending wait rethrows.</param>
    /// <returns>The number of waiters this call completed; waiters that ended concurrently by another path are not counted.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// <para>
    /// The registry stays open: requests registered after this call wait as usual. Use <see cref="Close(Exception?)"/> to
    /// fail later requests too.
    /// </para>
    /// <para>
    /// Every woken wait rethrows the same exception object, as the awaiters of one faulted task do. Pass a new exception
    /// to each call rather than reusing one for the life of a service: each rethrow appends to the object's stack trace.
    /// </para>
    /// </remarks>
    public int FailAll(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        PendingRequest<TKey, TResult>[] waiters;
        lock (_lock)
        {
            waiters = Drain();
        }

        var woken = 0;
        foreach (var waiter in waiters)
        {
            if (waiter.SetExceptionDetached(exception, observed: true))
            {
                woken++;
            }
        }

        RegistryMetrics.Add(RegistryMetrics.Failures, woken);
        return woken;
    }

    /// <summary>Closes the registry: fails every pending request and makes every later registration throw.</summary>
    /// <param name="exception">
    /// Why the registry closes, such as the failure of the connection, or <see langword="null"/> for an orderly close.
    /// </param>
    /// <returns><see langword="true"/> for the call that closed the registry; <see langword="false"/> if it was already closed.</returns>
    /// <remarks>
    /// <para>
    /// Pending waits throw <paramref name="exception"/> itself, as with <see cref="FailAll(Exception)"/>, so a caller
    /// sees the real cause (an <see cref="IOException"/> from the reader, say); after an orderly close they throw a
    /// <see cref="ClosedResourceException"/>. Later calls to <see cref="Register(TKey)"/>, <see cref="Reply(TKey)"/>,
    /// <c>Request</c> and <c>RequestAsync</c> throw <see cref="ClosedResourceException"/> at once, with
    /// <paramref name="exception"/> as the inner exception, instead of waiting for a timeout that no answer can beat.
    /// </para>
    /// <para>
    /// Only the first call closes the registry; later calls change nothing, and do not replace the exception.
    /// <see cref="Resolve(TKey, TResult)"/>, <see cref="Fail(TKey, Exception)"/> and <see cref="FailAll(Exception)"/>
    /// keep working on a closed registry and return <see langword="false"/> or 0, since nothing is pending.
    /// </para>
    /// </remarks>
    public bool Close(Exception? exception = null)
    {
        PendingRequest<TKey, TResult>[] waiters;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }

            _closeException = exception;
            _closed = true;
            waiters = Drain();
        }

        var failed = 0;
        foreach (var waiter in waiters)
        {
            failed += waiter.SetExceptionDetached(exception ?? new ClosedResourceException("The request registry is closed."), observed: true) ? 1 : 0;
        }

        RegistryMetrics.Add(RegistryMetrics.Failures, failed);

        return true;
    }

    /// <summary>Removes a key, but only if it still maps to the given waiter.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="waiter">The waiter that <paramref name="key"/> must map to.</param>
    /// <returns><see langword="true"/> if the key was removed; <see langword="false"/> if it was not pending or maps to another waiter.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="waiter"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The waiter itself is not completed: after this call no <see cref="Resolve(TKey, TResult)"/>,
    /// <see cref="Fail(TKey, Exception)"/> or <see cref="FailAll(Exception)"/> reaches it, and a wait on it ends only by
    /// its timeout, its cancellation or a direct completion. Checking the waiter makes this safe to call late: it never
    /// removes a newer request that reuses the key.
    /// </remarks>
    public bool Pop(TKey key, RequestWaiter<TResult> waiter)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(waiter);
        lock (_lock)
        {
            return _pending.TryGetValue(key, out var current) && ReferenceEquals(current, waiter) && _pending.Remove(key);
        }
    }

    /// <summary>Blocks the calling thread until the waiter ends or the token is cancelled, then removes the key.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="waiter">The waiter that <see cref="Register(TKey)"/> returned for <paramref name="key"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="waiter"/> is <see langword="null"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed: the exception given to <see cref="Fail(TKey, Exception)"/>, <see cref="FailAll(Exception)"/> or <see cref="Close(Exception?)"/> is rethrown as is.</exception>
    /// <remarks>See <see cref="Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Wait(TKey key, RequestWaiter<TResult> waiter, CancellationToken cancellationToken) =>
        Wait(key, waiter, null, cancellationToken);

    /// <summary>Blocks the calling thread until the waiter ends, the timeout elapses or the token is cancelled, then removes the key.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="waiter">The waiter that <see cref="Register(TKey)"/> returned for <paramref name="key"/>.</param>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="waiter"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed: the exception given to <see cref="Fail(TKey, Exception)"/>, <see cref="FailAll(Exception)"/> or <see cref="Close(Exception?)"/> is rethrown as is.</exception>
    /// <remarks>
    /// <para>
    /// However the wait ends, <paramref name="key"/> is removed if it still maps to <paramref name="waiter"/>, so a late
    /// answer finds nothing and returns <see langword="false"/>.
    /// </para>
    /// <para>
    /// A wait that times out or is cancelled ends the waiter too (with the <see cref="TimeoutException"/> or the
    /// cancellation), which settles the race with an answer that arrives at the same moment: if the answer completed
    /// the waiter first, the wait returns it (or throws its failure) even though the time is up, so a resolved value is
    /// never lost; otherwise the answer finds the request gone. An answer already present wins over an elapsed timeout
    /// and a cancelled token.
    /// </para>
    /// <para>
    /// The timeout is measured with the registry's <see cref="TimeProvider"/>. The waiter's continuations never run on
    /// the thread that answers.
    /// </para>
    /// </remarks>
    public TResult Wait(TKey key, RequestWaiter<TResult> waiter, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(waiter);
        return WaitCore(key, waiter, Limit(timeout), cancellationToken);
    }

    /// <summary>Waits asynchronously until the waiter ends or the token is cancelled, then removes the key.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="waiter">The waiter that <see cref="Register(TKey)"/> returned for <paramref name="key"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="waiter"/> is <see langword="null"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed: the exception given to <see cref="Fail(TKey, Exception)"/>, <see cref="FailAll(Exception)"/> or <see cref="Close(Exception?)"/> is rethrown as is.</exception>
    /// <remarks>See <see cref="WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public ValueTask<TResult> WaitAsync(TKey key, RequestWaiter<TResult> waiter, CancellationToken cancellationToken) =>
        WaitAsync(key, waiter, null, cancellationToken);

    /// <summary>Waits asynchronously until the waiter ends, the timeout elapses or the token is cancelled, then removes the key.</summary>
    /// <param name="key">The request key.</param>
    /// <param name="waiter">The waiter that <see cref="Register(TKey)"/> returned for <paramref name="key"/>.</param>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="waiter"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed: the exception given to <see cref="Fail(TKey, Exception)"/>, <see cref="FailAll(Exception)"/> or <see cref="Close(Exception?)"/> is rethrown as is.</exception>
    /// <remarks>
    /// <para>
    /// Argument errors are thrown at the call; every other outcome is in the returned value task. The outcome rules are those
    /// of <see cref="Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>: the key is removed however the
    /// wait ends, and an answer that won the race with the timeout or the cancellation is returned, never lost.
    /// </para>
    /// <para>
    /// The timeout is measured with the registry's <see cref="TimeProvider"/>. The continuation after the await never
    /// runs on the thread that answers; it completes synchronously when the waiter has already ended.
    /// </para>
    /// <para>
    /// Off an event loop (when the caller has neither a synchronization context other than the plain one nor a task
    /// scheduler other than the default, as on the thread pool), a wait whose reply has not come spins for up to about a
    /// microsecond before it suspends, so a reply from a thread that is running now completes the call synchronously,
    /// without a trip through the thread pool. The registry stops spinning after 8 spins in a row miss (as they do for
    /// replies that come over a network), and then spins on one wait in 32 to learn whether replies have become fast
    /// again; that record is the registry's, shared by all its callers. A thread with a context or scheduler of its own
    /// (an event loop, a UI thread) never spins here, nor does any thread on a single processor. A timeout starts after
    /// the spin.
    /// </para>
    /// <para>
    /// The first asynchronous wait on a waiter awaits the waiter itself, so it allocates nothing; its timeout (a timer)
    /// and its token (a registration) cost only when given, and end with the waiter. A second wait on the same waiter
    /// watches <see cref="RequestWaiter{TResult}.Task"/> instead.
    /// </para>
    /// </remarks>
    public ValueTask<TResult> WaitAsync(TKey key, RequestWaiter<TResult> waiter, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(waiter);
        return WaitCoreAsync(waiter, Limit(timeout), cancellationToken);
    }

    /// <summary>Registers a request, calls <paramref name="send"/> with its reply handle, and blocks until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> threw (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>See <see cref="Request(TKey, Action{ReplyHandle{TKey, TResult}}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Request(TKey key, Action<ReplyHandle<TKey, TResult>> send, CancellationToken cancellationToken) =>
        Request(key, send, null, cancellationToken);

    /// <summary>Registers a request, calls <paramref name="send"/> with its reply handle, and blocks until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="timeout">How long to wait for the answer after <paramref name="send"/> returns; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> threw (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>
    /// If <paramref name="send"/> throws, the key is removed, the waiter is failed with the same exception (so a handle
    /// that <paramref name="send"/> passed on can no longer answer), and the exception propagates. Otherwise the wait
    /// follows <see cref="Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>. <paramref name="send"/>
    /// runs on the calling thread; it must not be an <see langword="async"/> lambda (use
    /// <see cref="RequestAsync(TKey, Func{ReplyHandle{TKey, TResult}, Task}, TimeSpan?, CancellationToken)"/>).
    /// </remarks>
    public TResult Request(TKey key, Action<ReplyHandle<TKey, TResult>> send, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(send);
        var limit = Limit(timeout);
        cancellationToken.ThrowIfCancellationRequested();
        var request = Add(key);
        try
        {
            send(new ReplyHandle<TKey, TResult>(request));
        }
        catch (Exception exception)
        {
            Abandon(request, exception);
            throw;
        }

        return WaitCore(key, request, limit, cancellationToken);
    }

    /// <summary>Registers a request, calls <paramref name="send"/> with its reply handle, and waits asynchronously until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request synchronously; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> threw (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestAsync(TKey, Action{ReplyHandle{TKey, TResult}}, TimeSpan?, CancellationToken)"/>.</remarks>
    public ValueTask<TResult> RequestAsync(TKey key, Action<ReplyHandle<TKey, TResult>> send, CancellationToken cancellationToken) =>
        RequestAsync(key, send, null, cancellationToken);

    /// <summary>Registers a request, calls <paramref name="send"/> with its reply handle, and waits asynchronously until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request synchronously; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="timeout">How long to wait for the answer after <paramref name="send"/> returns; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> threw (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>
    /// Argument errors are thrown at the call; every other outcome, including a duplicate key, a closed registry and a
    /// failure of <paramref name="send"/>, is in the returned value task. <paramref name="send"/> runs on the calling thread.
    /// If it throws, the key is removed and the waiter is failed with the same exception. Otherwise the wait follows
    /// <see cref="WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>, which spins for up to about a
    /// microsecond before it suspends when the caller is off any event loop.
    /// </remarks>
    public ValueTask<TResult> RequestAsync(TKey key, Action<ReplyHandle<TKey, TResult>> send, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(send);
        var limit = Limit(timeout);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromException<TResult>(new OperationCanceledException(cancellationToken));
        }

        PendingRequest<TKey, TResult> request;
        try
        {
            request = Add(key);
        }
        catch (InvalidOperationException exception)
        {
            // A duplicate key or a closed registry: reported in the task, as every outcome after the arguments are checked.
            return ValueTask.FromException<TResult>(exception);
        }

        try
        {
            send(new ReplyHandle<TKey, TResult>(request));
        }
        catch (Exception exception)
        {
            Abandon(request, exception);
            return ValueTask.FromException<TResult>(exception);
        }

        return WaitCoreAsync(request, limit, cancellationToken);
    }

    /// <summary>Registers a request, awaits <paramref name="send"/> with its reply handle, and waits asynchronously until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request asynchronously; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> failed (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestAsync(TKey, Func{ReplyHandle{TKey, TResult}, Task}, TimeSpan?, CancellationToken)"/>.</remarks>
    public ValueTask<TResult> RequestAsync(TKey key, Func<ReplyHandle<TKey, TResult>, Task> send, CancellationToken cancellationToken) =>
        RequestAsync(key, send, null, cancellationToken);

    /// <summary>Registers a request, awaits <paramref name="send"/> with its reply handle, and waits asynchronously until the request is answered.</summary>
    /// <param name="key">The request key, unique among pending requests.</param>
    /// <param name="send">Sends the request asynchronously; it may answer through the handle itself or pass the handle on.</param>
    /// <param name="timeout">How long to wait for the answer after <paramref name="send"/> completes; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early; <paramref name="send"/> should observe it too.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="key"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">A request with <paramref name="key"/> is already pending; <paramref name="send"/> is not called.</exception>
    /// <exception cref="ClosedResourceException">The registry is closed; <paramref name="send"/> is not called.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered; if it was cancelled before the call, nothing is registered or sent.</exception>
    /// <exception cref="Exception"><paramref name="send"/> failed (the key is removed), or the request failed with this exception.</exception>
    /// <remarks>
    /// Argument errors are thrown at the call; every other outcome, including a duplicate key, a closed registry and a
    /// failure of <paramref name="send"/>, is in the returned value task. If <paramref name="send"/> throws or its task fails,
    /// the key is removed, the waiter is failed with the same exception, and the exception propagates. The timeout
    /// starts when <paramref name="send"/> has completed; otherwise the wait follows
    /// <see cref="WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>. A <paramref name="send"/> that
    /// completes later resumes the wait wherever its task completes (the call does not return to the caller's context),
    /// and the wait spins there only if that thread has no context or scheduler of its own.
    /// </remarks>
    public ValueTask<TResult> RequestAsync(TKey key, Func<ReplyHandle<TKey, TResult>, Task> send, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(send);
        var limit = Limit(timeout);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromException<TResult>(new OperationCanceledException(cancellationToken));
        }

        PendingRequest<TKey, TResult> request;
        try
        {
            request = Add(key);
        }
        catch (InvalidOperationException exception)
        {
            return ValueTask.FromException<TResult>(exception);
        }

        Task sent;
        try
        {
            sent = send(new ReplyHandle<TKey, TResult>(request));
        }
        catch (Exception exception)
        {
            // Handled where a failed send task is, so a send that throws and one whose task fails end alike.
            sent = Task.FromException(exception);
        }

        // A send that completed at once needs no state machine: the wait is the waiter itself.
        return sent is { IsCompletedSuccessfully: true }
            ? WaitCoreAsync(request, limit, cancellationToken)
            : RequestSlowAsync(request, sent, limit, cancellationToken);
    }

    // A reply handle answers only its own request: the key must still map to the handle's very waiter, so an old handle
    // cannot answer a newer request that reuses the key after a timeout or a removal.
    internal bool ResolveIfCurrent(PendingRequest<TKey, TResult> request, TResult value) =>
        Pop(request.Key, request) && request.SetResultDetached(value);

    internal bool FailIfCurrent(PendingRequest<TKey, TResult> request, Exception exception) =>
        Pop(request.Key, request) && Failed(request.SetExceptionDetached(exception, observed: false));

    private static TimeSpan Limit(TimeSpan? timeout)
    {
        if (timeout is not { } value)
        {
            return Timeout.InfiniteTimeSpan;
        }

        Timeouts.Validate(value, nameof(timeout));
        return value;
    }

    private static void Abandon(PendingRequest<TKey, TResult> request, Exception exception)
    {
        // Failing the waiter (not just removing the key) ends it for anyone who watches it, such as a responder that
        // send already handed the handle to; the exception still propagates to the caller, so the failure is observed.
        if (request.Registry.Pop(request.Key, request))
        {
            request.SetExceptionDetached(exception, observed: true);
        }
    }

    /// <summary>Ends a wait whose time is up or whose token is cancelled: completes the waiter with the timeout or the cancellation, unless it has ended.</summary>
    /// <remarks>
    /// Ending the waiter, rather than only leaving, settles the race with an answer arriving now: exactly one of the two
    /// completes it, so an answer that won is returned and never lost, and one that lost sees the request gone and
    /// returns false. Whichever ends the waiter removes its key first.
    /// </remarks>
    private static void Settle(RequestWaiter<TResult> waiter, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            waiter.TrySetCanceled(cancellationToken);
        }
        else
        {
            waiter.Expire();
        }
    }

    /// <summary>Counts one failed request when <paramref name="failed"/> is true, and passes it on.</summary>
    private static bool Failed(bool failed)
    {
        if (failed)
        {
            RegistryMetrics.Add(RegistryMetrics.Failures);
        }

        return failed;
    }

    private PendingRequest<TKey, TResult> Add(TKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var request = new PendingRequest<TKey, TResult>(this, key);
        lock (_lock)
        {
            // Checked under the same lock that Close takes, so no registration can slip in after Close has drained.
            if (_closed)
            {
                throw new ClosedResourceException("The request registry is closed.", _closeException);
            }

            if (!_pending.TryAdd(key, request))
            {
                throw new InvalidOperationException($"A request with key '{key}' is already pending.");
            }
        }

        return request;
    }

    private PendingRequest<TKey, TResult>? Take(TKey key)
    {
        lock (_lock)
        {
            return _pending.Remove(key, out var request) ? request : null;
        }
    }

    private PendingRequest<TKey, TResult>[] Drain()
    {
        Debug.Assert(_lock.IsHeldByCurrentThread, "Drain runs under the lock.");
        if (_pending.Count == 0)
        {
            return [];
        }

        var requests = _pending.Values.ToArray();
        _pending.Clear();
        return requests;
    }

    private TResult WaitCore(TKey key, RequestWaiter<TResult> waiter, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (!waiter.IsCompleted)
        {
            if (limit != TimeSpan.Zero && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    Block(waiter, limit, cancellationToken);
                }
                catch (Exception ex)
                {
                    // A thread interrupt, say: it ends the request too, since the key never outlives its wait, and so no
                    // one watching the waiter's Task (or holding its ReplyHandle) is left waiting. The waiting thread
                    // gets the exception itself, so it counts as observed.
                    waiter.Fail(ex, observed: true);
                    throw;
                }
            }

            if (!waiter.IsCompleted)
            {
                // The time is up or the token is cancelled, and no answer has come yet.
                Settle(waiter, cancellationToken);
            }
        }

        if (waiter.Outcome(cancellationToken, out var result) is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        return result;
    }

    /// <summary>Blocks on the waiter until it ends, its time is up or the token is cancelled (which ends it).</summary>
    private void Block(RequestWaiter<TResult> waiter, TimeSpan limit, CancellationToken cancellationToken)
    {
        var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static (state, token) => ((RequestWaiter<TResult>)state!).TrySetCanceled(token), waiter)
            : default;
        ITimer? timer = null;
        try
        {
            if (limit != Timeout.InfiniteTimeSpan && !ReferenceEquals(_timeProvider, TimeProvider.System))
            {
                // Only the registry's clock knows when the time is up: its timer ends the waiter, which wakes the block.
                timer = _timeProvider.CreateTimer(static state => ((RequestWaiter<TResult>)state!).Expire(), waiter, limit, Timeout.InfiniteTimeSpan);
                limit = Timeout.InfiniteTimeSpan;
            }

            // The real clock needs no timer: the blocking wait measures the time itself.
            waiter.Block(limit);
        }
        finally
        {
            timer?.Dispose();
            registration.Dispose();
        }
    }

    private ValueTask<TResult> WaitCoreAsync(RequestWaiter<TResult> waiter, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (!waiter.IsCompleted)
        {
            if (limit == TimeSpan.Zero || cancellationToken.IsCancellationRequested)
            {
                Settle(waiter, cancellationToken);
            }
            else if (SpinTicks > 0 && Spinning.HasNoContextOfItsOwn())
            {
                SpinIfItPays(waiter);
            }
        }

        if (waiter.IsCompleted)
        {
            // Decided already: no state machine, no timer.
            return waiter.Outcome(cancellationToken, out var result) is { } error
                ? ValueTask.FromException<TResult>(error)
                : new ValueTask<TResult>(result);
        }

        if (!waiter.TryClaim())
        {
            // Another wait already awaits the waiter itself; this one watches its task.
            return new ValueTask<TResult>(WaitTaskAsync(waiter, limit, cancellationToken));
        }

        // The timer and the token end the waiter itself, so the waiter is all the caller awaits.
        waiter.Arm(limit, _timeProvider, cancellationToken);
        return waiter.AsValueTask();
    }

    /// <summary>Spins until the waiter ends or the spin's time is up, unless spinning has not paid lately for this registry.</summary>
    /// <remarks>
    /// A reply from a thread that is running now comes within microseconds: taking it here saves suspending the caller and
    /// queueing its continuation to the pool. Replies that come over a network never do, so after
    /// <see cref="Spinning.MaxCredit"/> spins in a row end without the reply, waits stop spinning, and only one in
    /// <see cref="Spinning.TrialEvery"/> spins to find out whether replies have become fast again. A spin that gets its
    /// reply restores the full credit.
    /// </remarks>
    private void SpinIfItPays(RequestWaiter<TResult> waiter)
    {
        var credit = _spinCredit;
        if (!Spinning.IsSpinDue(credit))
        {
            _spinCredit = credit - 1;
            return;
        }

        SpinStartingForTests?.Invoke(waiter);
        waiter.SpinUntilCompleted(SpinTicks);
        var next = Spinning.CreditAfter(credit, waiter.IsCompleted);

        // Written only when it changes: while every spin gets its reply, callers on many threads share the field
        // without writing it. Once spinning has stopped, each wait writes it as it counts down, on a registry whose lock
        // each request takes anyway.
        if (next != credit)
        {
            _spinCredit = next;
        }
    }

    private async Task<TResult> WaitTaskAsync(RequestWaiter<TResult> waiter, TimeSpan limit, CancellationToken cancellationToken)
    {
        // SuppressThrowing: the waiter's own outcome, or the timeout or cancellation, is decided by Settle, not by
        // which exception the bounded wait happens to throw.
        await ((Task)waiter.Task.WaitAsync(limit, _timeProvider, cancellationToken)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (!waiter.IsCompleted)
        {
            Settle(waiter, cancellationToken);
        }

        if (waiter.Outcome(cancellationToken, out var result) is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        return result;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TResult> RequestSlowAsync(PendingRequest<TKey, TResult> request, Task sent, TimeSpan limit, CancellationToken cancellationToken)
    {
        try
        {
            await sent.ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            Abandon(request, exception);
            throw;
        }

        return await WaitCoreAsync(request, limit, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gets the number of pending requests, for the metrics.</summary>
    long IPendingCount.PendingCount => Count;
}
