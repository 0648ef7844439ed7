using MicroIo.Internal;

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
/// <para>
/// The handle is a small value that refers to its request's waiter, so creating and passing it allocates nothing; copies
/// of a handle are interchangeable and equal. A <see langword="default"/> handle refers to no request: every member
/// except equality throws <see cref="InvalidOperationException"/>.
/// </para>
/// <para>Every member may be called from any thread.</para>
/// </remarks>
public readonly struct ReplyHandle<TKey, TResult> : IEquatable<ReplyHandle<TKey, TResult>>
    where TKey : notnull
{
    private readonly PendingRequest<TKey, TResult>? _request;

    internal ReplyHandle(PendingRequest<TKey, TResult> request)
    {
        _request = request;
    }

    /// <summary>Gets the key of the request.</summary>
    /// <value>The key the request was registered with.</value>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    public TKey Key => Request.Key;

    /// <summary>Gets the waiter of the request.</summary>
    /// <value>The waiter that the registry created for this request.</value>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    public RequestWaiter<TResult> Waiter => Request;

    private PendingRequest<TKey, TResult> Request =>
        _request ?? throw new InvalidOperationException("This reply handle is default and refers to no request; use one that RequestRegistry.Reply or a request's send callback gave.");

    /// <summary>Determines whether two handles refer to the same request.</summary>
    /// <param name="left">The first handle.</param>
    /// <param name="right">The second handle.</param>
    /// <returns><see langword="true"/> if both refer to the same request, or both are <see langword="default"/>; otherwise, <see langword="false"/>.</returns>
    public static bool operator ==(ReplyHandle<TKey, TResult> left, ReplyHandle<TKey, TResult> right) => left.Equals(right);

    /// <summary>Determines whether two handles refer to different requests.</summary>
    /// <param name="left">The first handle.</param>
    /// <param name="right">The second handle.</param>
    /// <returns><see langword="true"/> if the handles refer to different requests; otherwise, <see langword="false"/>.</returns>
    public static bool operator !=(ReplyHandle<TKey, TResult> left, ReplyHandle<TKey, TResult> right) => !left.Equals(right);

    /// <summary>Completes this handle's request with a value, if it is still pending.</summary>
    /// <param name="value">The result; an <see cref="Exception"/> given here is delivered as a value, not thrown.</param>
    /// <returns><see langword="true"/> if this call answered the request; <see langword="false"/> if it is no longer pending, even if its key is pending again for a newer request.</returns>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <remarks>The waiter's continuations do not run on the calling thread.</remarks>
    public bool Resolve(TResult value)
    {
        var request = Request;
        return request.Registry.ResolveIfCurrent(request, value);
    }

    /// <summary>Completes this handle's request with a failure, which its wait rethrows, if it is still pending.</summary>
    /// <param name="exception">The failure; the wait throws this very exception.</param>
    /// <returns><see langword="true"/> if this call failed the request; <see langword="false"/> if it is no longer pending, even if its key is pending again for a newer request.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <remarks>The waiter's continuations do not run on the calling thread.</remarks>
    public bool Fail(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var request = Request;
        return request.Registry.FailIfCurrent(request, exception);
    }

    /// <summary>Removes this handle's request from the registry without completing its waiter.</summary>
    /// <returns><see langword="true"/> if the request was pending and is now removed; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Pop(TKey, RequestWaiter{TResult})"/>.</remarks>
    public bool Pop()
    {
        var request = Request;
        return request.Registry.Pop(request.Key, request);
    }

    /// <summary>Blocks the calling thread until the request is answered or the token is cancelled, then removes the request.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Wait(CancellationToken cancellationToken) => Wait(null, cancellationToken);

    /// <summary>Blocks the calling thread until the request is answered, the timeout elapses or the token is cancelled, then removes the request.</summary>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>The value the request was resolved with.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.Wait(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public TResult Wait(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var request = Request;
        return request.Registry.Wait(request.Key, request, timeout, cancellationToken);
    }

    /// <summary>Waits asynchronously until the request is answered or the token is cancelled, then removes the request.</summary>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public ValueTask<TResult> WaitAsync(CancellationToken cancellationToken) => WaitAsync(null, cancellationToken);

    /// <summary>Waits asynchronously until the request is answered, the timeout elapses or the token is cancelled, then removes the request.</summary>
    /// <param name="timeout">How long to wait; <see langword="null"/> or <see cref="Timeout.InfiniteTimeSpan"/> to wait forever.</param>
    /// <param name="cancellationToken">A token that ends the wait early.</param>
    /// <returns>A value task that ends with the value the request was resolved with; await it once.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The handle is <see langword="default"/>.</exception>
    /// <exception cref="TimeoutException">The timeout elapsed before the request was answered; the message names the key.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the request was answered.</exception>
    /// <exception cref="Exception">The request failed with this exception.</exception>
    /// <remarks>See <see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</remarks>
    public ValueTask<TResult> WaitAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var request = Request;
        return request.Registry.WaitAsync(request.Key, request, timeout, cancellationToken);
    }

    /// <summary>Determines whether this handle refers to the same request as another.</summary>
    /// <param name="other">The other handle.</param>
    /// <returns><see langword="true"/> if both refer to the same request, or both are <see langword="default"/>; otherwise, <see langword="false"/>.</returns>
    public bool Equals(ReplyHandle<TKey, TResult> other) => ReferenceEquals(_request, other._request);

    /// <summary>Determines whether an object is a handle that refers to the same request as this one.</summary>
    /// <param name="obj">The object to compare with.</param>
    /// <returns><see langword="true"/> if <paramref name="obj"/> is a <see cref="ReplyHandle{TKey, TResult}"/> equal to this one; otherwise, <see langword="false"/>.</returns>
    public override bool Equals(object? obj) => obj is ReplyHandle<TKey, TResult> other && Equals(other);

    /// <summary>Returns a hash code for the request this handle refers to.</summary>
    /// <returns>A hash code; equal handles have equal hash codes.</returns>
    public override int GetHashCode() => _request?.GetHashCode() ?? 0;
}
