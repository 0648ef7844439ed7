using System.Collections.Concurrent;

namespace MicroIo.Tests;

/// <summary>Collects the exceptions that <see cref="TaskScheduler.UnobservedTaskException"/> reports while tasks made by a test are finalized.</summary>
internal static class UnobservedTaskExceptions
{
    /// <summary>
    /// Runs <paramref name="fill"/> and a full collection with finalizers, up to <paramref name="rounds"/> times or until
    /// <paramref name="enough"/> holds, and returns every exception reported as unobserved meanwhile.
    /// </summary>
    /// <param name="fill">Makes the tasks; they must be unreachable once it returns (so keep them in its own method).</param>
    /// <param name="enough">Stops the rounds early once the exceptions seen so far satisfy it.</param>
    /// <param name="rounds">How many rounds at most: a finalizer is not bound to run in the first one.</param>
    /// <remarks>The event is process-wide: match the exceptions by a message only this test uses.</remarks>
    public static IReadOnlyList<Exception> Collect(Action fill, Func<IReadOnlyList<Exception>, bool>? enough = null, int rounds = 1)
    {
        var seen = new ConcurrentQueue<Exception>();
        EventHandler<UnobservedTaskExceptionEventArgs> handler = (_, e) =>
        {
            foreach (var exception in e.Exception.InnerExceptions)
            {
                seen.Enqueue(exception);
            }
        };
        TaskScheduler.UnobservedTaskException += handler;
        try
        {
            for (var round = 0; round < rounds && !(enough?.Invoke([.. seen]) ?? false); round++)
            {
                fill();
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= handler;
        }

        return [.. seen];
    }
}
