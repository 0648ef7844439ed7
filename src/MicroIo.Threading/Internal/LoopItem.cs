namespace MicroIo.Internal;

/// <summary>One piece of work queued on a <see cref="LoopSynchronizationContext"/>.</summary>
/// <remarks>
/// Each kind of work (a posted callback, a call whose caller waits, submitted async work) is its own subclass, so queuing
/// it costs one object: no delegate or closure wraps it on the way into the queue. The loop runs every item in the loop
/// thread's execution context; an item that needs another (a <c>Send</c>er's, a task group's) enters it itself.
/// </remarks>
internal abstract class LoopItem
{
    /// <summary>Gets or sets the item queued next to this one; the loop's queue links its items through it.</summary>
    public LoopItem? Next { get; set; }

    /// <summary>Runs the work on the loop thread.</summary>
    public abstract void Invoke();

    /// <summary>Hands on an item the loop accepted but could not run: by default it runs on the thread pool.</summary>
    /// <remarks>An item with a waiter overrides this to tell the waiter instead (the work then never runs).</remarks>
    public virtual void Abandon() => RunElsewhere();

    /// <summary>Runs the item on the thread pool, for work that can be neither run on the loop nor refused.</summary>
    public void RunElsewhere() =>
        ThreadPool.UnsafeQueueUserWorkItem(static s => ((LoopItem)s!).Invoke(), this, preferLocal: false);

    /// <summary>Makes a fresh exception for a waiter whose work the loop ended without running.</summary>
    protected static ClosedResourceException LoopEndedBeforeRun() => new("The event loop ended before it could run the callback.");
}
