using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Provides checkpoints that stop at once when the ambient <see cref="CancelScope"/> (or a given token) is cancelled,
/// even in code that was not handed a token.
/// </summary>
/// <remarks>
/// The ambient scope is <see cref="CancelScope.Current"/>, whose token also carries the cancellation of every enclosing
/// scope that is not shielded from. A checkpoint throws <see cref="OperationCanceledException"/>; the scope that caused
/// it catches it. May be called from any thread.
/// <para>
/// Cost: while no live scope in the process is cancelled (live: active, or enclosing an active one), a checkpoint is one
/// static read, inside a scope or not; otherwise it also reads the ambient scope from its <see cref="AsyncLocal{T}"/>.
/// A checkpoint that does not throw never allocates.
/// </para>
/// </remarks>
public static class Checkpoint
{
    /// <summary>Throws if the ambient scope or the given token is cancelled; otherwise returns at once without allocating.</summary>
    /// <param name="cancellationToken">A token to check besides the ambient scope.</param>
    /// <exception cref="OperationCanceledException">The ambient scope or <paramref name="cancellationToken"/> is cancelled.</exception>
    public static void ThrowIfCancelled(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        AmbientCancelled()?.Token.ThrowIfCancellationRequested();
    }

    /// <summary>Returns whether a checkpoint would throw now: the ambient scope or the given token is cancelled.</summary>
    /// <param name="cancellationToken">A token to check besides the ambient scope.</param>
    /// <returns><see langword="true"/> if <see cref="ThrowIfCancelled"/> would throw; otherwise, <see langword="false"/>.</returns>
    /// <remarks>
    /// For a fast path that must not throw, e.g. one that returns a faulted task instead; never allocates. May be called
    /// from any thread.
    /// </remarks>
    public static bool IsCancelled(CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested || AmbientCancelled() is not null;

    // One static read while no live scope anywhere (active, or held by an active scope entered inside it) is cancelled;
    // one comparison while nothing can have been cancelled since a checkpoint last found the ambient scope uncancelled;
    // otherwise the full check, which asks the scope first (a scope whose token nobody has used answers without creating
    // the token's source).
    private static CancelScope? AmbientCancelled() =>
        CancelScope.MayBeCancelled && CancelScope.Innermost is { } scope && !scope.IsQuiet
            ? CancelScope.AmbientCancelled(scope)
            : null;

    /// <summary>Checks for cancellation, yields once to the scheduler (or the current synchronization context), and checks again.</summary>
    /// <param name="cancellationToken">A token to check besides the ambient scope.</param>
    /// <returns>A task that completes after the yield.</returns>
    /// <exception cref="OperationCanceledException">The ambient scope or <paramref name="cancellationToken"/> is cancelled.</exception>
    public static async Task YieldAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfCancelled(cancellationToken);
        await Task.Yield();
        ThrowIfCancelled(cancellationToken);
    }

    /// <summary>Waits for a delay, stopping at once when the ambient scope or the given token is cancelled.</summary>
    /// <param name="delay">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that also stops the wait.</param>
    /// <returns>A task that completes after the delay.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">The ambient scope or <paramref name="cancellationToken"/> was cancelled.</exception>
    public static Task SleepAsync(TimeSpan delay, CancellationToken cancellationToken = default) =>
        SleepAsync(delay, TimeProvider.System, cancellationToken);

    /// <summary>Waits for a delay measured by the given clock, stopping at once when the ambient scope or the given token is cancelled.</summary>
    /// <param name="delay">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="timeProvider">The clock that measures the delay.</param>
    /// <param name="cancellationToken">A token that also stops the wait.</param>
    /// <returns>A task that completes after the delay.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="timeProvider"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delay"/> is negative and not infinite.</exception>
    /// <exception cref="OperationCanceledException">The ambient scope or <paramref name="cancellationToken"/> was cancelled.</exception>
    public static async Task SleepAsync(TimeSpan delay, TimeProvider timeProvider, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        Timeouts.Validate(delay, nameof(delay));
        ThrowIfCancelled(cancellationToken);

        var ambient = CancelScope.Current?.Token ?? CancellationToken.None;
        try
        {
            if (!cancellationToken.CanBeCanceled || !ambient.CanBeCanceled)
            {
                await Task.Delay(delay, timeProvider, cancellationToken.CanBeCanceled ? cancellationToken : ambient).ConfigureAwait(false);
            }
            else
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, ambient);
                await Task.Delay(delay, timeProvider, linked.Token).ConfigureAwait(false);
            }
        }
        catch (TaskCanceledException)
        {
            // Report the token that was cancelled (not a linked one) as a plain OperationCanceledException, as the checks do.
            ThrowIfCancelled(cancellationToken);
            throw;
        }

        ThrowIfCancelled(cancellationToken);
    }
}
