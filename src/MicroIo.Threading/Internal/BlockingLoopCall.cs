using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace MicroIo.Internal;

/// <summary>A function queued on a loop whose caller blocks until it has run, and may give up before it starts.</summary>
/// <remarks>
/// <para>
/// The call is its own queue item and its own signal: the caller spins briefly (a loop that is not busy answers within
/// microseconds, far sooner than a blocked thread can be woken), then sleeps with <see cref="Monitor.Wait(object)"/> on the
/// call. The loop wakes it only if it went to sleep, so a round trip costs one object and, in the fast case, no system call.
/// </para>
/// <para>
/// Publishing and going to sleep are a Dekker handshake: the loop sets <see cref="_done"/> and then reads
/// <see cref="_sleeping"/>; the caller sets <see cref="_sleeping"/> and then reads <see cref="_done"/>, both with full
/// fences, so at least one of them sees the other's write and no wake-up is lost.
/// </para>
/// </remarks>
/// <param name="func">The function to run on the loop.</param>
/// <param name="context">The execution context to run it in (a <c>Send</c>er's), or null to run it in the loop thread's.</param>
internal sealed class BlockingLoopCall<T>(Func<T> func, ExecutionContext? context) : ClaimedLoopItem
{
    // SpinWait.SpinOnce rounds before the caller sleeps: as many as Task.Wait spins (SpinWait.SpinCountforSpinBeforeWait).
    private const int Spins = 35;

    private T? _result;
    private ExceptionDispatchInfo? _error;
    private int _done;
    private int _sleeping;
    private bool _expired;

    /// <summary>Gets a value indicating whether the outcome is there (the function ran, or the loop refused it).</summary>
    public bool IsCompleted => Volatile.Read(ref _done) != 0;

    /// <summary>Blocks until the outcome is there or the timeout (measured by <paramref name="timeProvider"/>) elapses; returns whether it is there.</summary>
    public bool Wait(TimeSpan timeout, TimeProvider timeProvider)
    {
        if (IsCompleted)
        {
            return true;
        }

        if (timeout == TimeSpan.Zero)
        {
            return false;
        }

        // Stopwatch time, not Environment.TickCount64: the tick count moves in steps of several milliseconds on Linux,
        // which would end a short timeout early or late by a whole step.
        var start = Stopwatch.GetTimestamp();
        // Spins as Task.Wait does before it blocks: busy at first, then yielding the core (to the loop thread, when they
        // share one), so a loop that answers within microseconds never has to wake the caller.
        var spinner = default(SpinWait);
        while (spinner.Count < Spins)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
            if (IsCompleted)
            {
                return true;
            }
        }

        if (timeout == Timeout.InfiniteTimeSpan || ReferenceEquals(timeProvider, TimeProvider.System))
        {
            return Sleep(timeout == Timeout.InfiniteTimeSpan ? -1 : start + (long)(timeout.TotalSeconds * Stopwatch.Frequency));
        }

        // Another clock (a fake one in tests) decides when the wait expires: its timer wakes the caller.
        using (timeProvider.CreateTimer(static s => ((BlockingLoopCall<T>)s!).Expire(), this, timeout, Timeout.InfiniteTimeSpan))
        {
            return Sleep(deadline: -1);
        }
    }

    /// <summary>Returns the function's result or rethrows its exception (or the loop's refusal) as is; only once <see cref="IsCompleted"/>.</summary>
    public T GetResult()
    {
        _error?.Throw();
        return _result!;
    }

    protected override void Run()
    {
        if (context is not null)
        {
            ExecutionContext.Run(context, static s => ((BlockingLoopCall<T>)s!).RunHere(), this);
        }
        else
        {
            RunHere();
        }
    }

    private void RunHere()
    {
        try
        {
            _result = func();
        }
        catch (Exception ex)
        {
            _error = ExceptionDispatchInfo.Capture(ex);
        }

        Publish();
    }

    protected override void Reject(Exception exception)
    {
        _error = ExceptionDispatchInfo.Capture(exception);
        Publish();
    }

    private void Publish()
    {
        Interlocked.Exchange(ref _done, 1);
        if (Volatile.Read(ref _sleeping) != 0)
        {
            lock (this)
            {
                Monitor.PulseAll(this);
            }
        }
    }

    /// <summary>Sleeps until the outcome is there, the deadline (a <see cref="Stopwatch.GetTimestamp"/> value, or -1 for none) passes, or the timer expires the wait.</summary>
    private bool Sleep(long deadline)
    {
        lock (this)
        {
            Interlocked.Exchange(ref _sleeping, 1);
            while (!IsCompleted)
            {
                if (_expired)
                {
                    return false;
                }

                if (deadline < 0)
                {
                    Monitor.Wait(this);
                    continue;
                }

                var left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0)
                {
                    return false;
                }

                // Rounded up: a wait of less than a millisecond still waits, instead of returning before the deadline.
                Monitor.Wait(this, (int)Math.Min(Math.Ceiling(left * 1000.0 / Stopwatch.Frequency), int.MaxValue));
            }

            return true;
        }
    }

    private void Expire()
    {
        lock (this)
        {
            _expired = true;
            Monitor.PulseAll(this);
        }
    }
}
