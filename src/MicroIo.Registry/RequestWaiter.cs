using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Represents the caller's side of one pending request of a <see cref="RequestRegistry{TKey, TResult}"/>: it ends
/// exactly once, with a value, an exception or a cancellation.
/// </summary>
/// <typeparam name="TResult">The type of the request's result.</typeparam>
/// <remarks>
/// <para>
/// Waiters are created by <see cref="RequestRegistry{TKey, TResult}.Register(TKey)"/> and
/// <see cref="RequestRegistry{TKey, TResult}.Reply(TKey)"/>. Usually the registry completes them
/// (<see cref="RequestRegistry{TKey, TResult}.Resolve(TKey, TResult)"/>, <see cref="RequestRegistry{TKey, TResult}.Fail(TKey, Exception)"/>,
/// a timeout), but whoever holds a waiter may also complete it directly with <see cref="TrySetResult(TResult)"/>,
/// <see cref="TrySetException(Exception)"/> or <see cref="TrySetCanceled(CancellationToken)"/>. Completing a waiter,
/// by any path, first removes its key from the registry if the key still maps to this waiter, so a completed waiter is
/// never counted as pending.
/// </para>
/// <para>
/// Every member may be called from any thread; only the first completion wins. Continuations of <see cref="Task"/>
/// never run inline on the thread that completes the waiter: a reader thread that answers a request is not hijacked by
/// the code that awaited it.
/// </para>
/// </remarks>
public sealed class RequestWaiter<TResult>
{
    private readonly WaiterCompletion<TResult> _completion;

    internal RequestWaiter(WaiterCompletion<TResult> completion)
    {
        _completion = completion;
    }

    /// <summary>Gets the task that completes when the waiter ends.</summary>
    /// <value>A task that ends with the result, the failure or the cancellation the waiter was completed with.</value>
    /// <remarks>
    /// Awaiting the task does not remove the key from the registry on a timeout; use
    /// <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/> for that.
    /// </remarks>
    public Task<TResult> Task => _completion.Task;

    /// <summary>Gets a value indicating whether the waiter has ended.</summary>
    /// <value><see langword="true"/> if the waiter was completed with a value, an exception or a cancellation; otherwise, <see langword="false"/>.</value>
    public bool IsCompleted => _completion.Task.IsCompleted;

    /// <summary>Attempts to complete the waiter with a value.</summary>
    /// <param name="result">The value; an <see cref="Exception"/> given here is delivered as a value, not thrown.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetResult(TResult result)
    {
        if (IsCompleted)
        {
            return false;
        }

        _completion.Detach(this);
        return _completion.TrySetResult(result);
    }

    /// <summary>Attempts to complete the waiter with a failure, which its wait rethrows.</summary>
    /// <param name="exception">The failure.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetException(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (IsCompleted)
        {
            return false;
        }

        _completion.Detach(this);
        return _completion.TrySetException(exception);
    }

    /// <summary>Attempts to complete the waiter as cancelled, so its wait throws <see cref="OperationCanceledException"/>.</summary>
    /// <param name="cancellationToken">The token the cancellation is reported with.</param>
    /// <returns><see langword="true"/> if this call completed the waiter; <see langword="false"/> if it had already ended.</returns>
    /// <remarks>May be called from any thread. The waiter's key leaves the registry, if it still maps to this waiter.</remarks>
    public bool TrySetCanceled(CancellationToken cancellationToken = default)
    {
        if (IsCompleted)
        {
            return false;
        }

        _completion.Detach(this);
        return _completion.TrySetCanceled(cancellationToken);
    }

    // The registry calls these after it has removed the key itself, under its lock; detaching again would only cost a
    // second lookup.
    internal bool SetResultDetached(TResult result) => _completion.TrySetResult(result);

    internal bool SetExceptionDetached(Exception exception) => _completion.TrySetException(exception);
}
