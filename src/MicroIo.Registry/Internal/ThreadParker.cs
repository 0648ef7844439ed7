namespace MicroIo.Internal;

/// <summary>Gives each thread one event to block on, so a blocking wait allocates nothing per request.</summary>
/// <remarks>
/// A thread blocks on at most one waiter at a time, so one event per thread is enough. The event lives as long as the
/// thread; it never creates a kernel handle, since nothing reads its <see cref="ManualResetEventSlim.WaitHandle"/>.
/// </remarks>
internal static class ThreadParker
{
    [ThreadStatic]
    private static ManualResetEventSlim? t_current;

    /// <summary>Gets the calling thread's event, which does not spin (the caller spins before it blocks).</summary>
    public static ManualResetEventSlim Current => t_current ??= new ManualResetEventSlim(false, 0);
}
