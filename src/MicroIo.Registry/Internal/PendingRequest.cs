using System.Threading.Tasks.Sources;

namespace MicroIo.Internal;

/// <summary>
/// The one object of a request: the <see cref="RequestWaiter{TResult}"/> that its registry maps its key to, which also
/// knows that key and registry (so a waiter completed directly leaves the registry, and a <see cref="ReplyHandle{TKey, TResult}"/>
/// needs no object of its own), and is the source of the value task of its first asynchronous wait.
/// </summary>
/// <typeparam name="TKey">The type of the request ids.</typeparam>
/// <typeparam name="TResult">The type of the request's result.</typeparam>
/// <remarks>
/// Never pooled: a waiter is public and may be held after its request ends, so reusing it could let an old holder
/// complete a newer request. The value task's token is therefore always 0.
/// </remarks>
internal sealed class PendingRequest<TKey, TResult> : RequestWaiter<TResult>, IValueTaskSource<TResult>
    where TKey : notnull
{
    public PendingRequest(RequestRegistry<TKey, TResult> registry, TKey key)
    {
        Registry = registry;
        Key = key;
    }

    /// <summary>Gets the registry the request was registered in.</summary>
    public RequestRegistry<TKey, TResult> Registry { get; }

    /// <summary>Gets the key the request was registered with.</summary>
    public TKey Key { get; }

    /// <inheritdoc/>
    internal override ValueTask<TResult> AsValueTask() => new(this, 0);

    /// <inheritdoc/>
    public ValueTaskSourceStatus GetStatus(short token) => SourceStatus;

    /// <inheritdoc/>
    public TResult GetResult(short token) => SourceResult();

    /// <inheritdoc/>
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        SourceOnCompleted(continuation, state, flags);

    internal override void Expire()
    {
        // The check first spares the exception when an answer has won. Observed: the wait that timed out throws it, so
        // a Task made for a second wait (and never awaited) must not report it as unobserved.
        if (!IsCompleted && Fail(new TimeoutException($"Timed out waiting for the reply to request '{Key}'."), observed: true))
        {
            RegistryMetrics.Add(RegistryMetrics.Timeouts);
        }
    }

    private protected override void Detach() => Registry.Pop(Key, this);
}
