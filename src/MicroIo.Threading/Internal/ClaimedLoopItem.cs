namespace MicroIo.Internal;

/// <summary>Work queued on a loop whose caller waits for it, and may give up on it before it starts.</summary>
/// <remarks>
/// Who decides between "run" and "give up" is settled by one compare-and-swap on the item's state: the loop claims the
/// item before running it, and a caller whose wait timed out (or was cancelled), or a loop that ends without running it,
/// claims it to abandon it. Only one of them can win, so work that was reported as timed out, cancelled or refused before
/// it started never runs later.
/// </remarks>
internal abstract class ClaimedLoopItem : LoopItem
{
    private const int Pending = 0;
    private const int Running = 1;
    private const int Abandoned = 2;

    private int _state;

    /// <summary>Runs the work on the loop, unless the caller has given up.</summary>
    public sealed override void Invoke()
    {
        if (Interlocked.CompareExchange(ref _state, Running, Pending) == Pending)
        {
            Run();
        }
    }

    /// <summary>Gives up on the work if it has not started; returns whether it had not (and so never will).</summary>
    public bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Pending) == Pending;

    /// <summary>Tells the waiter that the loop ended before running the work, unless the work has started or been given up.</summary>
    public sealed override void Abandon()
    {
        if (TryAbandon())
        {
            Reject(LoopEndedBeforeRun());
        }
    }

    /// <summary>Runs the work (claimed: it runs once) and hands its outcome to the waiter.</summary>
    protected abstract void Run();

    /// <summary>Hands the waiter the reason the work will never run.</summary>
    protected abstract void Reject(Exception exception);
}
