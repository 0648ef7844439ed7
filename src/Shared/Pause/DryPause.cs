using System.Diagnostics;

namespace MicroIo.Internal;

/// <summary>Decides when a reader that finds its queue empty pauses before it waits: an actor's serial run, or a channel's receive.</summary>
/// <remarks>
/// <para>
/// A reader that empties its queue while a producer streams into it has likely caught the producer up: from then on it
/// finds the queue empty every few items, and each time lists a wait that the producer must wake through the thread pool
/// (in docs/benchmarks.md, family 2, the slow rounds were those in which the reader found the queue empty tens of
/// thousands of times in a million items). A short pause lets the producer run ahead, so the reader takes the next items
/// in a burst.
/// </para>
/// <para>
/// Only after a burst of at least <see cref="Burst"/> items since the reader last found the queue empty, so a reader
/// taking one item at a time (a request and its reply) never pauses. A pause that catches nothing costs its length, so
/// pauses keep a credit by the same rule as the registry's spin (<see cref="Spinning.IsSpinDue"/>).
/// </para>
/// <para>
/// The caller counts the items; the pause keeps only the count at the last run-dry. Not thread-safe: an actor's run
/// keeps its own, and a channel's receivers share one without a lock, so that receives racing on it only blur when the
/// next pause is due. Linked into the packages that set <c>UsesDryPause</c>.
/// </para>
/// </remarks>
internal struct DryPause
{
    /// <summary>How many items must have been taken since the queue last ran dry before the reader pauses the next time it does.</summary>
    internal const int Burst = 4;

    private readonly long _ticks;
    private long _countAtDry;
    private int _credit;

    /// <summary>Initializes a pause.</summary>
    /// <param name="ticks">How long a pause lasts, in ticks of <see cref="Stopwatch"/>; 0 for a reader that never pauses.</param>
    public DryPause(long ticks)
    {
        Debug.Assert(ticks >= 0, "A pause cannot last less than nothing.");
        _ticks = ticks;
        _credit = Spinning.MaxCredit;
    }

    /// <summary>Gets how long a pause lasts, in ticks of <see cref="Stopwatch"/>.</summary>
    public readonly long Ticks => _ticks;

    /// <summary>Returns whether the reader, which has just found its queue empty, pauses now.</summary>
    /// <param name="count">How many items have been taken from the queue so far (or sent to it, for a queue found empty); a count older than the one given last, from a racing reader, means no pause.</param>
    public bool RunsDry(long count)
    {
        var afterBurst = count - _countAtDry >= Burst;
        _countAtDry = count;
        if (!afterBurst || _ticks == 0)
        {
            return false;
        }

        if (!Spinning.IsSpinDue(_credit))
        {
            _credit--;
            return false;
        }

        return true;
    }

    /// <summary>Spins for the pause's length, reading only the clock, so the reader keeps off the cache lines the producer writes.</summary>
    public readonly void Pause() => Spinning.For(_ticks);

    /// <summary>Records whether the pause caught an item.</summary>
    public void Caught(bool item) => _credit = Spinning.CreditAfter(_credit, item);
}
