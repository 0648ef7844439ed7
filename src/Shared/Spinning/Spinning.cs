using System.Diagnostics;

namespace MicroIo.Internal;

/// <summary>When a thread may spin for work that another thread is about to hand it, rather than suspend or wait.</summary>
/// <remarks>Linked into the packages that spin (<c>UsesSpinning</c>), as runtime's Common sources are, so neither depends on another for it.</remarks>
internal static class Spinning
{
    /// <summary>How many spins in a row may miss before spinning stops.</summary>
    public const int MaxCredit = 8;

    /// <summary>How often, once spinning has stopped, a spin is tried again to learn whether it pays again.</summary>
    public const int TrialEvery = 32;

    // The credit at which a spin is tried again: after a missed spin has brought the credit to 0, the next
    // TrialEvery - 1 chances count down to it without spinning.
    private const int TrialCredit = 1 - TrialEvery;

    /// <summary>Returns whether a spin is due at <paramref name="credit"/>; when it is not, the caller counts the credit down by one.</summary>
    /// <remarks>
    /// Spinning that keeps missing costs its length each time, so after <see cref="MaxCredit"/> misses in a row only one
    /// chance in <see cref="TrialEvery"/> spins, until a spin pays again (<see cref="CreditAfter"/>). A credit starts at
    /// <see cref="MaxCredit"/>.
    /// </remarks>
    public static bool IsSpinDue(int credit) => credit > 0 || credit <= TrialCredit;

    /// <summary>Returns the credit after a spin made at <paramref name="credit"/>: full if it paid, one less (and at most 0) if it missed.</summary>
    public static int CreditAfter(int credit, bool paid) => paid ? MaxCredit : Math.Max(credit, 1) - 1;

    /// <summary>Returns how long a spin lasts by default on a machine with <paramref name="processors"/> processors, in ticks of a clock of <paramref name="frequency"/>.</summary>
    /// <remarks>
    /// About what suspending and resuming on the thread pool costs (1-3 µs on the development machine): work that comes
    /// within it skips the hop, and a spin it misses costs at most about twice what the hop would have. One processor
    /// cannot hand anything over while the spinner spins, so there it is 0.
    /// </remarks>
    public static long DefaultTicks(int processors, long frequency) => processors > 1 ? frequency / 1_000_000 : 0;

    /// <summary>Returns whether the caller runs with neither a synchronization context nor a task scheduler of its own, as code on the thread pool does.</summary>
    /// <remarks>
    /// An event loop, a UI thread or a scheduler of limited concurrency has other work to run, and what the spinner waits
    /// for may have to come from that very thread or scheduler, so code there never spins.
    /// </remarks>
    public static bool HasNoContextOfItsOwn() =>
        (SynchronizationContext.Current is not { } context || context.GetType() == typeof(SynchronizationContext))
        && TaskScheduler.Current == TaskScheduler.Default;

    /// <summary>Spins on the calling thread, never yielding its core, for at least <paramref name="ticks"/> ticks of <see cref="Stopwatch"/>.</summary>
    /// <remarks>Reads only the clock, not what the caller waits for: a spinner that read another core's cache line would pull it back and forth.</remarks>
    public static void For(long ticks)
    {
        var until = Stopwatch.GetTimestamp() + ticks;
        do
        {
            Thread.SpinWait(8);
        }
        while (Stopwatch.GetTimestamp() < until);
    }
}
