using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Holds a thread-safe, one-way close state with a reason and an optional failure, and wakes everything
/// that waits for the close.
/// </summary>
/// <remarks>
/// <para>
/// A scope starts open and is closed at most once, by <see cref="Close(string?, Exception?)"/> or
/// <see cref="Fail(Exception, string?)"/>; only the first call wins, even when many threads race. Every member
/// may be called from any thread.
/// </para>
/// <para>
/// The close is observable in every way a .NET caller may need: poll <see cref="IsClosed"/>, block in
/// <see cref="Wait(TimeSpan)"/>, await <see cref="WaitAsync(CancellationToken)"/>, or hand <see cref="Token"/> to any
/// API that takes a <see cref="CancellationToken"/>.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var scope = new CloseScope();
/// var reader = Task.Run(async () =&gt;
/// {
///     while (true) { var frame = await socket.ReceiveAsync(buffer, scope.Token); /* ... */ }
/// });
/// scope.Close("shutdown");   // the pending receive is cancelled; scope.Reason says why
/// </code>
/// </example>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "The source has no timer and no links, so it holds no resource that needs disposing; a disposable scope would force every owner to dispose it.")]
public sealed class CloseScope
{
    // Published once, atomically: readers see the reason and the exception of the close together, never one without the other.
    private sealed record CloseState(string? Reason, Exception? Exception);

    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _cts = new();
    private volatile CloseState? _state;

    /// <summary>Gets a value indicating whether the scope is closed (normally or by a failure).</summary>
    /// <value><see langword="true"/> if the scope is closed; otherwise, <see langword="false"/>.</value>
    public bool IsClosed => _state is not null;

    /// <summary>Gets a value indicating whether the scope was closed with an exception.</summary>
    /// <value><see langword="true"/> if the scope was closed with an exception; otherwise, <see langword="false"/>.</value>
    public bool IsFailed => _state?.Exception is not null;

    /// <summary>Gets the reason given when the scope was closed, or <see langword="null"/> while it is open or when none was given.</summary>
    public string? Reason => _state?.Reason;

    /// <summary>Gets the exception the scope was closed with, or <see langword="null"/> while it is open or when it closed normally.</summary>
    public Exception? Exception => _state?.Exception;

    /// <summary>Gets a token that is cancelled when the scope closes, so any .NET API can observe the close.</summary>
    /// <remarks>The token is cancelled exactly once, after <see cref="IsClosed"/> turns true and waiters are released.</remarks>
    public CancellationToken Token => _cts.Token;

    /// <summary>Closes the scope, unless it is already closed.</summary>
    /// <param name="reason">Why the scope is closing, or <see langword="null"/>.</param>
    /// <param name="exception">The failure that closes the scope, or <see langword="null"/> for a normal close.</param>
    /// <returns><see langword="true"/> for the call that closed the scope; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="AggregateException">A callback registered on <see cref="Token"/> threw; the scope is closed regardless.</exception>
    /// <remarks>
    /// May be called from any thread. Callbacks registered on <see cref="Token"/> run on the calling thread before this
    /// method returns, as <see cref="CancellationTokenSource.Cancel()"/> runs them; awaiting continuations never do.
    /// </remarks>
    public bool Close(string? reason = null, Exception? exception = null)
    {
        if (Interlocked.CompareExchange(ref _state, new CloseState(reason, exception), null) is not null)
        {
            return false;
        }

        // Release waiters before running token callbacks: a callback that throws must not leave anyone waiting.
        _closed.TrySetResult();
        _cts.Cancel();
        return true;
    }

    /// <summary>Closes the scope with a failure, unless it is already closed.</summary>
    /// <param name="exception">The failure that closes the scope.</param>
    /// <param name="reason">Why the scope is closing; when null or empty, the exception's message.</param>
    /// <returns><see langword="true"/> for the call that closed the scope; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <exception cref="AggregateException">A callback registered on <see cref="Token"/> threw; the scope is closed regardless.</exception>
    /// <remarks>May be called from any thread.</remarks>
    public bool Fail(Exception exception, string? reason = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return Close(string.IsNullOrEmpty(reason) ? exception.Message : reason, exception);
    }

    /// <summary>Blocks the calling thread until the scope closes or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns><see langword="true"/> if the scope closed; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    public bool Wait(TimeSpan timeout) => Wait(timeout, CancellationToken.None);

    /// <summary>Blocks the calling thread until the scope closes or the token is cancelled.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns><see langword="true"/> if the scope closed; <see langword="false"/> if the token was cancelled first.</returns>
    public bool Wait(CancellationToken cancellationToken) => Wait(Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Blocks the calling thread until the scope closes, the timeout elapses, or the token is cancelled.</summary>
    /// <param name="timeout">How long to wait, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns><see langword="true"/> if the scope closed; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken)
    {
        Timeouts.Validate(timeout);
        if (IsClosed)
        {
            return true;
        }

        try
        {
            return _closed.Task.Wait(timeout, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return IsClosed;
        }
    }

    /// <summary>Waits asynchronously until the scope closes.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A task that completes when the scope closes.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the scope closed.</exception>
    /// <remarks>The continuation never runs inline on the thread that closes the scope.</remarks>
    public Task WaitAsync(CancellationToken cancellationToken = default) => _closed.Task.WaitAsync(cancellationToken);

    /// <summary>Throws if the scope is closed: <see cref="BrokenResourceException"/> after a failure, else <see cref="ClosedResourceException"/>.</summary>
    /// <exception cref="ClosedResourceException">The scope was closed normally; the message is the reason.</exception>
    /// <exception cref="BrokenResourceException">The scope was closed with a failure, which is the inner exception.</exception>
    public void ThrowIfClosed()
    {
        var state = _state;
        if (state is null)
        {
            return;
        }

        if (state.Exception is not null)
        {
            throw new BrokenResourceException(state.Reason ?? state.Exception.Message, state.Exception);
        }

        throw new ClosedResourceException(state.Reason);
    }
}
