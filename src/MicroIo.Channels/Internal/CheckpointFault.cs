using System.Runtime.CompilerServices;

namespace MicroIo.Internal;

/// <summary>Turns the cancellation a checkpoint throws into a value, for the per-item fast paths that return faulted tasks.</summary>
/// <remarks>
/// A fast path that calls <see cref="Checkpoint.ThrowIfCancelled"/> needs a try block to turn the throw into a faulted
/// value task, and a method with one carries a heavier frame on every item. Asking <see cref="Checkpoint.IsCancelled"/>
/// first and taking the checkpoint here only when it is due keeps the fast path free of it, and the cancellation is still
/// the checkpoint's own.
/// </remarks>
internal static class CheckpointFault
{
    /// <summary>Takes the checkpoint and returns what it threw, or <see langword="null"/> if it did not throw after all.</summary>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <returns>The cancellation the checkpoint threw, or <see langword="null"/> (the ambient scope exited in between).</returns>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static OperationCanceledException? Take(CancellationToken cancellationToken)
    {
        try
        {
            Checkpoint.ThrowIfCancelled(cancellationToken);
            return null;
        }
        catch (OperationCanceledException ex)
        {
            return ex;
        }
    }
}
