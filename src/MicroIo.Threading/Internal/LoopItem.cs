namespace MicroIo.Internal;

/// <summary>One piece of work queued on a <see cref="LoopSynchronizationContext"/>.</summary>
/// <remarks>
/// Each kind of work (a posted callback, a call whose caller waits, submitted async work) is its own subclass, so queuing
/// it costs one object: no delegate or closure wraps it on the way into the queue.
/// <see cref="Context"/> is the execution context the loop runs the item in, or <see langword="null"/> to run it in the
/// loop's own (await continuations restore their own context; the service's API runs callers' work in the loop's).
/// </remarks>
internal abstract class LoopItem(ExecutionContext? context)
{
    public ExecutionContext? Context => context;

    /// <summary>Gets or sets the item queued next to this one; the loop's queue links its items through it.</summary>
    public LoopItem? Next { get; set; }

    /// <summary>Runs the work on the loop thread.</summary>
    public abstract void Invoke();

    /// <summary>Hands on an item the loop accepted but could not run: by default it runs on the thread pool.</summary>
    /// <remarks>An item with a waiter overrides this to tell the waiter instead (the work then never runs).</remarks>
    public virtual void Abandon() => RunElsewhere();

    /// <summary>Runs the item on the thread pool, for work that can be neither run on the loop nor refused.</summary>
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

    /// <summary>Makes a fresh exception for a waiter whose work the loop ended without running.</summary>
    protected static ClosedResourceException LoopEndedBeforeRun() => new("The event loop ended before it could run the callback.");
}
