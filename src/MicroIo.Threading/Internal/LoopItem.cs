namespace MicroIo.Internal;

/// <summary>One callback queued on a <see cref="LoopSynchronizationContext"/>.</summary>
/// <remarks>
/// <see cref="Context"/> is the caller's execution context for work queued through the service's API (so the callback
/// runs in the caller's logical flow, as <see cref="ThreadPool.QueueUserWorkItem(WaitCallback)"/> would run it), and
/// <see langword="null"/> for <see cref="SynchronizationContext.Post"/>, whose await continuations restore their own.
/// </remarks>
internal sealed class LoopItem(SendOrPostCallback callback, object? state, ExecutionContext? context, Action<Exception>? reject)
{
    public ExecutionContext? Context => context;

    public void Invoke() => callback(state);

    /// <summary>Runs the callback on the thread pool, for work that can be neither run on the loop nor refused.</summary>
    public void RunElsewhere() =>
        ThreadPool.UnsafeQueueUserWorkItem(
            static s =>
            {
                var item = (LoopItem)s!;
                if (item.Context is { } ec)
                {
                    ExecutionContext.Run(ec, static i => ((LoopItem)i!).Invoke(), item);
                }
                else
                {
                    item.Invoke();
                }
            },
            this,
            preferLocal: false);

    /// <summary>Hands on an item the loop accepted but could not run: its waiter is told, or else it runs elsewhere.</summary>
    public void Abandon()
    {
        if (reject is not null)
        {
            reject(new ClosedResourceException("The event loop ended before it could run the callback."));
        }
        else
        {
            RunElsewhere();
        }
    }
}
