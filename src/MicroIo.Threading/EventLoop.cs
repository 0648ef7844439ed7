using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Runs an async function on the calling thread with a single-threaded event loop, until it completes, as Nito.AsyncEx's
/// <c>AsyncContext.Run</c> does.
/// </summary>
/// <remarks>
/// <para>
/// While the function runs, <see cref="SynchronizationContext.Current"/> is the loop: every continuation it awaits without
/// <c>ConfigureAwait(false)</c>, every child of a <see cref="TaskGroup"/> it starts, and every <c>async void</c> method it
/// calls runs on the calling thread, one callback at a time. The loop is the same one a <see cref="LoopServiceThread"/> runs.
/// </para>
/// <para>
/// <c>Run</c> returns once the function's task has completed and every <c>async void</c> method started on the loop has
/// completed. An exception thrown by a callback on the loop (such as an <c>async void</c> method's) ends the loop at once
/// and is thrown from <c>Run</c>, rather than being lost; anything still queued, or posted to the loop after it has ended,
/// runs on the thread pool, so no awaiting code is stranded.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// // In a console program's synchronous Main, or a test: everything below runs on this thread.
/// int total = EventLoop.Run(async () =&gt;
/// {
///     await Task.Yield();
///     return 42;
/// });
/// </code>
/// </example>
public static class EventLoop
{
    /// <summary>Runs an async function on the calling thread until it completes, and rethrows its exception.</summary>
    /// <param name="function">The function; it starts on the calling thread, with the loop as the current synchronization context.</param>
    /// <exception cref="ArgumentNullException"><paramref name="function"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="function"/> returned a <see langword="null"/> task.</exception>
    /// <remarks>The function's own exception (or <see cref="OperationCanceledException"/>) is rethrown as is, not wrapped.</remarks>
    public static void Run(Func<Task> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        new LoopSynchronizationContext(onError: null).Run(function).GetAwaiter().GetResult();
    }

    /// <summary>Runs an async function on the calling thread until it completes, and returns its result.</summary>
    /// <typeparam name="T">The type of the result.</typeparam>
    /// <param name="function">The function; it starts on the calling thread, with the loop as the current synchronization context.</param>
    /// <returns>The function's result.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="function"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="function"/> returned a <see langword="null"/> task.</exception>
    /// <remarks>The function's own exception (or <see cref="OperationCanceledException"/>) is rethrown as is, not wrapped.</remarks>
    public static T Run<T>(Func<Task<T>> function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return new LoopSynchronizationContext(onError: null).Run(function).GetAwaiter().GetResult();
    }
}
