using System.Runtime.CompilerServices;

namespace MicroIo.Internal;

/// <summary>The test <see cref="Checkpoint.ThrowIfCancelled"/> makes, split from the throw, for the per-item fast paths.</summary>
/// <remarks>
/// A fast path that calls <see cref="Checkpoint.ThrowIfCancelled"/> needs a try block to turn the throw into a faulted
/// value task, and a method with one carries a heavier frame on every item. Testing first and taking the checkpoint only
/// when the test says it is due keeps the fast path free of it, and the cancellation thrown is still the checkpoint's own.
/// </remarks>
internal static class CheckpointTest
{
    /// <summary>Tells whether <paramref name="cancellationToken"/> or the ambient scope is cancelled, without throwing.</summary>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <returns><see langword="true"/> if a checkpoint would throw now.</returns>
    public static bool IsDue(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested || CancelScope.Current is { IsCancellationRequested: true };

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
