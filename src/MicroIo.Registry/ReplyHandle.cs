namespace MicroIo;

/// <summary>
/// Answers, waits for or withdraws one request of a <see cref="RequestRegistry{TKey, TResult}"/>, and only that one.
/// </summary>
/// <typeparam name="TKey">The type of the request ids.</typeparam>
/// <typeparam name="TResult">The type of the request's result.</typeparam>
/// <remarks>
/// <para>
/// <see cref="RequestRegistry{TKey, TResult}.Reply(TKey)"/> creates the handle; hand it to whoever will answer. The
/// handle is bound to its key and to its <see cref="Waiter"/>: once its request has timed out or been removed, and the
/// same key is registered again, <see cref="Resolve(TResult)"/> and <see cref="Fail(Exception)"/> return
/// <see langword="false"/> and leave the new request alone.
/// </para>
/// <para>Every member may be called from any thread.</para>
/// </remarks>
public sealed class ReplyHandle<TKey, TResult>
    where TKey : notnull
{
    private readonly RequestRegistry<TKey, TResult> _registry;

    internal ReplyHandle(RequestRegistry<TKey, TResult> registry, TKey key, RequestWaiter<TResult> waiter)
    {
        _registry = registry;
        Key = key;
        Waiter = waiter;
    }

    /// <summary>Gets the key of the request.</summary>
    /// <value>The key the request was registered with.</value>
    public TKey Key { get; }

    /// <summary>Gets the waiter of the request.</summary>
    /// <value>The waiter that the registry created for this request.</value>
    public RequestWaiter<TResult> Waiter { get; }

    /// <summary>Completes this handle's request with a value, if it is still pending.</summary>
    /// <param name="value">The result; an <see cref="Exception"/> given here is delivered as a value, not thrown.</param>
    /// <returns><see langword="true"/> if this call answered the request; <see langword="false"/> if it is no longer pending, even if its key is pending again for a newer request.</returns>
    /// <remarks>The waiter's continuations do not run on the calling thread.</remarks>
    public bool Resolve(TResult value) => _registry.ResolveIfCurrent(Key, Waiter, value);

    /// <summary>Completes this handle's request with a failure, which its wait rethrows, if it is still pending.</summary>
    /// <param name="exception">The failure; the wait throws this very exception.</param>
    /// <returns><see langword="true"/> if this call failed the request; <see langword="false"/> if it is no longer pending, even if its key is pending again for a newer request.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <remarks>The waiter's continuations do not run on the calling thread.</remarks>
    public bool Fail(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return _registry.FailIfCurrent(Key, Waiter, exception);
    }

    /// <summary>Removes this handle's request from the registry without completing its waiter.</summary>
    /// <returns><see langword="true"/> if the request was pending and is now removed; otherwise, <see langword="false"/>.</returns>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Pop(TKey, RequestWaiter{TResult})"/>.</remarks>
    public bool Pop() => _registry.Pop(Key, Waiter);

    /// <summary>Blocks the calling thread until the request is answered or the token is cancelled, then removes the request.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Wait(CancellationToken cancellationToken) => _registry.Wait(Key, Waiter, null, cancellationToken);

    /// <summary>Blocks the calling thread until the request is answered, the timeout elapses or the token is cancelled, then removes the request.</summary>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Wait(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        _registry.Wait(Key, Waiter, timeout, cancellationToken);

    /// <summary>Waits asynchronously until the request is answered or the token is cancelled, then removes the request.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A task that ends with the value the request was resolved with.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public Task<TResult> WaitAsync(CancellationToken cancellationToken) => _registry.WaitAsync(Key, Waiter, null, cancellationToken);

    /// <summary>Waits asynchronously until the request is answered, the timeout elapses or the token is cancelled, then removes the request.</summary>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A task that ends with the value the request was resolved with.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public Task<TResult> WaitAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        _registry.WaitAsync(Key, Waiter, timeout, cancellationToken);
}
