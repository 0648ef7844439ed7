using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Represents the caller's side of one pending request of a <see cref="RequestRegistry{TKey, TResult}"/>: it ends
/// exactly once, with a value, an exception or a cancellation.
/// </summary>
/// <typeparam name="TResult">The type of the request's result.</typeparam>
/// <remarks>
/// <para>
/// Waiters are created by <see cref="RequestRegistry{TKey, TResult}.Register(TKey)"/> and
/// <see cref="RequestRegistry{TKey, TResult}.Reply(TKey)"/>; no other code can derive from this class. Usually the
/// registry completes them (<see cref="RequestRegistry{TKey, TResult}.Resolve(TKey, TResult)"/>,
/// <see cref="RequestRegistry{TKey, TResult}.Fail(TKey, Exception)"/>, a timeout), but whoever holds a waiter may also
/// complete it directly with <see cref="TrySetResult(TResult)"/>, <see cref="TrySetException(Exception)"/> or
/// <see cref="TrySetCanceled(CancellationToken)"/>. Completing a waiter, by any path, first removes its key from the
/// registry if the key still maps to this waiter, so a completed waiter is never counted as pending.
/// </para>
/// <para>
/// Every member may be called from any thread; only the first completion wins. Continuations of <see cref="Task"/>
/// and of the registry's waits never run inline on the thread that completes the waiter: a reader thread that answers
/// a request is not hijacked by the code that awaited it.
/// </para>
/// <para>
/// The waiter is the only object a request allocates: the registry's blocking waits block on it, and its first
/// asynchronous wait awaits it directly. <see cref="Task"/> is created only when it is first read.
/// </para>
/// </remarks>
public abstract class RequestWaiter<TResult>
{
    private const int Pending = 0;
    private const int Succeeded = 1;
    private const int Faulted = 2;
    private const int Canceled = 3;

    // Task.Wait's spin count before it blocks: a reply that comes within microseconds is taken without a kernel wait.
    // Unlike an asynchronous wait's spin (RequestRegistry.SpinIfItPays), it is neither timed nor adaptive: a thread
    // that is about to block has nothing else to run, so spinning costs it only its core, as it does Task.Wait.
    private const int SpinsBeforeBlocking = 35;

    // The outcome: written once, under the lock on this, before _status (a volatile write) publishes it. A cancelled
    // waiter keeps an OperationCanceledException with the token it was cancelled with in _error.
    private TResult _result = default!;
    private Exception? _error;
    private bool _errorObserved;
    private volatile int _status;

    // The wake-up event of the one thread blocked in Block (see ThreadParker), which Complete sets.
    private ManualResetEventSlim? _parker;

    // Created on the first read of Task; completed under the lock on this, like the outcome.
    private volatile TaskCompletionSource<TResult>? _task;

    // The one asynchronous wait that awaits the waiter itself (see TryClaim), and its timeout and cancellation, which
    // live apart since most waits have neither.
    private ManualResetValueTaskSourceCore<bool> _signal;
    private int _claimed;
    private ArmedWait? _armed;

    private protected RequestWaiter()
    {
        // DESIGN rule 6: the awaiter's continuation is queued, never run inline on the thread that answers.
        _signal.RunContinuationsAsynchronously = true;
    }

    /// <summary>Gets a task that completes when the waiter ends.</summary>
    /// <value>A task that ends with the result, the failure or the cancellation the waiter was completed with; the same task on every read.</value>
    /// <remarks>
    /// The task is created on the first read. Awaiting it does not remove the key from the registry on a timeout; use
    /// <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/> for that.
    /// </remarks>
    public Task<TResult> Task => (_task ?? CreateTask()).Task;

    /// <summary>Gets a value indicating whether the waiter has ended.</summary>
    /// <value><see langword="true"/> if the waiter was completed with a value, an exception or a cancellation; otherwise, <see langword="false"/>.</value>
    public bool IsCompleted => _status != Pending;

    /// <summary>Attempts to complete the waiter with a value.</summary>
    /// <param name="result">The value; an <see cref="Exception"/> given here is delivered as a value, not thrown.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetResult(TResult result)
    {
        if (IsCompleted)
        {
            return false;
        }

        Detach();
        return Complete(Succeeded, result, null);
    }

    /// <summary>Attempts to complete the waiter with a failure, which its wait rethrows.</summary>
    /// <param name="exception">The failure.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetException(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return Fail(exception, observed: false);
    }

    /// <summary>Attempts to complete the waiter as cancelled, so its wait throws <see cref="OperationCanceledException"/>.</summary>
    /// <param name="cancellationToken">The token the cancellation is reported with.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetCanceled(CancellationToken cancellationToken = default)
    {
        if (IsCompleted)
        {
            return false;
        }

        Detach();
        return Complete(Canceled, default!, new OperationCanceledException(cancellationToken));
    }

    // The registry calls these after it has removed the key itself, under its lock; detaching again would only cost a
    // second lookup.
    internal bool SetResultDetached(TResult result) => Complete(Succeeded, result, null);

    /// <summary>Fails the waiter whose key the registry removed; <paramref name="observed"/> keeps a failure that nobody awaits from being reported as an unobserved task exception.</summary>
    internal bool SetExceptionDetached(Exception exception, bool observed) => Complete(Faulted, default!, exception, observed);

    /// <summary>Fails the waiter and takes its key out of the registry; <paramref name="observed"/> marks a failure that a waiting caller is given directly, so a <see cref="Task"/> nobody awaits does not report it as unobserved.</summary>
    internal bool Fail(Exception exception, bool observed)
    {
        if (IsCompleted)
        {
            return false;
        }

        Detach();
        return Complete(Faulted, default!, exception, observed);
    }

    /// <summary>Returns the value task of the claimed asynchronous wait (see <see cref="TryClaim"/>), which this waiter completes.</summary>
    internal abstract ValueTask<TResult> AsValueTask();

    /// <summary>Ends the waiter with a <see cref="TimeoutException"/> that names its key, unless it has ended; counts the timeout.</summary>
    internal abstract void Expire();

    /// <summary>Returns what a wait that ends now reports: <see langword="null"/> for the value in <paramref name="result"/>, or the exception to throw.</summary>
    /// <param name="waitToken">The waiting caller's token: a cancelled waiter is reported with it when it is cancelled, so the caller sees its own token.</param>
    /// <param name="result">The value, when the waiter succeeded.</param>
    internal Exception? Outcome(CancellationToken waitToken, out TResult result)
    {
        // The status first: it is published (volatile) after the result, so reading it first makes the result visible.
        var status = _status;
        Debug.Assert(status != Pending, "Outcome is read only once the waiter has ended.");
        result = _result;
        return status switch
        {
            Succeeded => null,
            Faulted => _error,

            // A plain OperationCanceledException (awaiting a cancelled task throws the subclass TaskCanceledException),
            // so `catch (OperationCanceledException e) when (e.CancellationToken == ct)` and exact-type checks match.
            _ => new OperationCanceledException(waitToken.IsCancellationRequested ? waitToken : CanceledWith),
        };
    }

    /// <summary>Blocks the calling thread until the waiter ends or <paramref name="limit"/> elapses on the real clock.</summary>
    internal void Block(TimeSpan limit)
    {
        var spinner = default(SpinWait);
        for (var i = 0; i < SpinsBeforeBlocking && !IsCompleted; i++)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }

        if (IsCompleted)
        {
            return;
        }

        var parker = ThreadParker.Current;
        if (Interlocked.CompareExchange(ref _parker, parker, null) is not null)
        {
            // Another thread already blocks on this waiter (rare): this one blocks on the waiter's task instead.
            try
            {
                Task.Wait(limit);
            }
            catch (AggregateException)
            {
                // The waiter failed or was cancelled: the caller reads the outcome.
            }

            return;
        }

        try
        {
            var infinite = limit == Timeout.InfiniteTimeSpan;
            // Rounded up: a wait shorter than a millisecond still blocks, rather than returning before it began.
            var deadline = Environment.TickCount64 + (long)Math.Ceiling(limit.TotalMilliseconds);
            while (true)
            {
                // Reset before the check, so a Set that comes after the check is never lost; a late Set meant for a
                // waiter this thread blocked on before only costs one more turn.
                parker.Reset();
                var left = infinite ? Timeout.Infinite : deadline - Environment.TickCount64;
                if (IsCompleted || (!infinite && left <= 0))
                {
                    return;
                }

                parker.Wait((int)left);
            }
        }
        finally
        {
            Volatile.Write(ref _parker, null);
        }
    }

    /// <summary>Spins on the calling thread, without yielding it, until the waiter ends or <paramref name="budget"/> ticks of <see cref="Stopwatch"/> pass.</summary>
    /// <param name="budget">The most time to spin, in <see cref="Stopwatch"/> ticks; 0 or less spins not at all.</param>
    /// <remarks>The real clock bounds the spin, never the registry's: a fake clock that never advances must not spin forever.</remarks>
    internal void SpinUntilCompleted(long budget)
    {
        var start = Stopwatch.GetTimestamp();
        while (!IsCompleted && Stopwatch.GetTimestamp() - start < budget)
        {
            Thread.SpinWait(1);
        }
    }

    /// <summary>Gets a value indicating whether a thread is blocked in <see cref="Block(TimeSpan)"/> on its own event (for tests).</summary>
    internal bool HasBlockedThread => Volatile.Read(ref _parker) is not null;

    /// <summary>Gets a value indicating whether <see cref="Task"/> has been made (for tests).</summary>
    internal bool HasTask => _task is not null;

    /// <summary>Makes the caller the one asynchronous wait that awaits the waiter itself; <see langword="false"/> if another wait already is.</summary>
    internal bool TryClaim() => Interlocked.Exchange(ref _claimed, 1) == 0;

    /// <summary>Starts the claimed wait's timeout and cancellation; either ends the waiter (and so the wait) when it fires.</summary>
    internal void Arm(TimeSpan limit, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var infinite = limit == Timeout.InfiniteTimeSpan;
        if (infinite && !cancellationToken.CanBeCanceled)
        {
            return;
        }

        var armed = new ArmedWait(cancellationToken);
        _armed = armed;
        if (cancellationToken.CanBeCanceled)
        {
            armed.Registration = cancellationToken.UnsafeRegister(static (state, token) => ((RequestWaiter<TResult>)state!).TrySetCanceled(token), this);
        }

        if (!infinite)
        {
            armed.Timer = timeProvider.CreateTimer(static state => ((RequestWaiter<TResult>)state!).Expire(), this, limit, Timeout.InfiniteTimeSpan);

            // Complete disposes the timer, but if the waiter ended before the timer was stored it saw none. With a full
            // fence on each side, at least one of the two sees the other's write.
            Interlocked.MemoryBarrier();
            if (IsCompleted)
            {
                Interlocked.Exchange(ref armed.Timer, null)?.Dispose();
            }
        }
    }

    /// <summary>Gets the claimed wait's status, for <see cref="IValueTaskSource{TResult}.GetStatus(short)"/>.</summary>
    private protected ValueTaskSourceStatus SourceStatus => _status switch
    {
        Pending => ValueTaskSourceStatus.Pending,
        Succeeded => ValueTaskSourceStatus.Succeeded,
        Faulted => ValueTaskSourceStatus.Faulted,
        _ => ValueTaskSourceStatus.Canceled,
    };

    /// <summary>Ends the claimed wait, for <see cref="IValueTaskSource{TResult}.GetResult(short)"/>: releases its token registration and returns the value or throws.</summary>
    private protected TResult SourceResult()
    {
        if (!IsCompleted)
        {
            throw new InvalidOperationException("The request has not ended; await the value task instead of reading its result.");
        }

        var armed = _armed;
        armed?.Registration.Unregister();
        if (Outcome(armed?.Token ?? default, out var result) is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        return result;
    }

    /// <summary>Registers the claimed wait's continuation, for <see cref="IValueTaskSource{TResult}.OnCompleted"/>.</summary>
    private protected void SourceOnCompleted(Action<object?> continuation, object? state, ValueTaskSourceOnCompletedFlags flags) =>
        _signal.OnCompleted(continuation, state, _signal.Version, flags);

    /// <summary>Removes the waiter's key from its registry if the key still maps to this waiter.</summary>
    private protected abstract void Detach();

    private bool Complete(int status, TResult result, Exception? error, bool observed = false)
    {
        lock (this)
        {
            if (_status != Pending)
            {
                return false;
            }

            _result = result;
            _error = error;
            _errorObserved = observed;
            _status = status;
            if (_task is { } task)
            {
                CopyOutcome(task);
            }
        }

        // Only the one call that ended the waiter gets here, so the signal is set exactly once.
        _signal.SetResult(true);

        // With a full fence on each side (this barrier; Block's compare-exchange, Arm's barrier), either Block sees the
        // status, or this sees Block's event and wakes it; the same holds for Arm and its timer.
        Interlocked.MemoryBarrier();
        _parker?.Set();
        if (_armed is { } armed)
        {
            Interlocked.Exchange(ref armed.Timer, null)?.Dispose();

            // Released here too, not only when the value task is awaited: a wait that is never awaited must not keep the
            // waiter (and its registry) alive on a long-lived token. Unregistering twice, or from the callback itself, is harmless.
            armed.Registration.Unregister();
        }

        return true;
    }

    private CancellationToken CanceledWith => ((OperationCanceledException)_error!).CancellationToken;

    private TaskCompletionSource<TResult> CreateTask()
    {
        lock (this)
        {
            if (_task is null)
            {
                var task = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
                if (IsCompleted)
                {
                    CopyOutcome(task);
                }

                _task = task;
            }

            return _task;
        }
    }

    private void CopyOutcome(TaskCompletionSource<TResult> task)
    {
        switch (_status)
        {
            case Succeeded:
                task.TrySetResult(_result);
                break;
            case Faulted:
                task.TrySetException(_error!);
                if (_errorObserved)
                {
                    _ = task.Task.Exception;
                }

                break;
            default:
                task.TrySetCanceled(CanceledWith);
                break;
        }
    }

    /// <summary>The timeout and cancellation of the claimed asynchronous wait.</summary>
    private sealed class ArmedWait(CancellationToken token)
    {
        /// <summary>The timer that ends the waiter when the time is up; whoever takes it out disposes it.</summary>
        public ITimer? Timer;

        /// <summary>The registration that ends the waiter when the token is cancelled.</summary>
        public CancellationTokenRegistration Registration;

        /// <summary>Gets the token of the wait, which a cancelled waiter is reported with.</summary>
        public CancellationToken Token { get; } = token;
    }
}
