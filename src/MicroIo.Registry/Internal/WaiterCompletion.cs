namespace MicroIo.Internal;

/// <summary>Completes one <see cref="RequestWaiter{TResult}"/> and knows how to take it out of the registry that holds it.</summary>
/// <remarks>
/// The waiter is generic in the result only, but its registry is generic in the key too; this base lets the registry
/// attach its key (without boxing) to the very object that already holds the task, so a waiter completed directly can
/// still leave its registry.
/// </remarks>
/// <typeparam name="TResult">The type of the request's result.</typeparam>
internal abstract class WaiterCompletion<TResult> : TaskCompletionSource<TResult>
{
    // Continuations never run inline on the completing thread (DESIGN rule 6): a reader thread that resolves a request
    // must not be hijacked by the code that awaited it.
    protected WaiterCompletion()
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
    }

    /// <summary>Removes the waiter's key from its registry if the key still maps to this waiter.</summary>
    public abstract void Detach(RequestWaiter<TResult> waiter);
}
