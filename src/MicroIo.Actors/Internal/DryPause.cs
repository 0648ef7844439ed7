using System.Diagnostics;

namespace MicroIo.Internal;

/// <summary>Decides when a serial actor's run, finding its mailbox empty, pauses before it waits; one per run, used by the run alone.</summary>
/// <remarks>
/// <para>
/// A run that empties its mailbox while a producer streams into it has likely caught the producer up: from then on it
/// finds the mailbox empty every few messages, and each time lists a wait that the producer must wake through the thread
/// pool (in docs/benchmarks.md, family 2, the slow rounds were those in which the reader found the queue empty tens of
/// thousands of times in a million messages). A pause of about a microsecond lets the producer run ahead, so the run
/// reads the next messages in a burst.
/// </para>
/// <para>
/// Only after a burst of at least <see cref="Burst"/> messages, so that a run handling one message at a time (a request
/// and its reply) never pauses. A pause that catches nothing costs its length, so pauses keep a credit by the same rule
/// as the registry's spin (<see cref="Spinning.IsSpinDue"/>).
/// </para>
/// </remarks>
internal struct DryPause
{
    /// <summary>How many messages a run must take in a row, since its mailbox last ran dry, before it pauses the next time it does.</summary>
    internal const int Burst = 4;

    private readonly long _ticks;
    private int _taken;
    private int _credit;

    /// <summary>Initializes the pause of one run.</summary>
    /// <param name="ticks">How long a pause lasts, in ticks of <see cref="Stopwatch"/>; 0 for a run that never pauses.</param>
    public DryPause(long ticks)
    {
        Debug.Assert(ticks >= 0, "A pause cannot last less than nothing.");
        _ticks = ticks;
        _credit = Spinning.MaxCredit;
    }

    /// <summary>Counts a message the run took.</summary>
    public void Took() => _taken++;

    /// <summary>Returns whether the run, which has just found its mailbox empty, pauses now; the count of messages taken starts again.</summary>
    public bool RunsDry()
    {
        var afterBurst = _taken >= Burst;
        _taken = 0;
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

    /// <summary>Spins for the pause's length, reading only the clock, so the run keeps off the cache lines the producer writes.</summary>
    public readonly void Pause() => Spinning.For(_ticks);

    /// <summary>Records whether the pause caught a message.</summary>
    public void Caught(bool message) => _credit = Spinning.CreditAfter(_credit, message);
}
