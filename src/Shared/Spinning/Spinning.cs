using System.Diagnostics;

namespace MicroIo.Internal;

/// <summary>When a thread may spin for work that another thread is about to hand it, rather than suspend or wait.</summary>
/// <remarks>Linked into the packages that spin (<c>UsesSpinning</c>), as runtime's Common sources are, so neither depends on another for it.</remarks>
internal static class Spinning
{
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
