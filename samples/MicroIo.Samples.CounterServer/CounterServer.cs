namespace MicroIo.Samples.CounterServer;

/// <summary>
/// Keeps a counter on a loop thread of its own: requests come in through an <see cref="ObjectChannel"/>, replies go back
/// through a <see cref="RequestRegistry{TKey, TResult}"/>, and a stop through its <see cref="CloseScope"/> fails any
/// request still pending.
/// </summary>
/// <remarks>
/// The counter is touched only on the loop thread, so it needs no lock: every request is handled there, and
/// <see cref="Peek"/> reads it there through <see cref="LoopServiceThread.CallSync{T}(Func{T}, TimeSpan)"/>.
/// <see cref="Request"/> and <see cref="Peek"/> may be called from any other thread.
/// </remarks>
public sealed class CounterServer : LoopServiceThread
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);

    private readonly ObjectSendChannel<CounterRequest> _requests;
    private readonly ObjectReceiveChannel<CounterRequest> _inbox;
    private readonly RequestRegistry<int, int> _replies = new();
    private int _lastId;
    private int _count;

    /// <summary>Initializes a server that has not started yet.</summary>
    public CounterServer()
        : base(new ServiceThreadOptions { Name = "counter-server" })
    {
        (_requests, _inbox) = ObjectChannel.Create<CounterRequest>(new ObjectChannelOptions { SingleReceiver = true });
    }

    /// <summary>Sends a request and waits for its reply: the counter after the operation.</summary>
    /// <param name="operation">The operation: <c>add</c> or <c>get</c>.</param>
    /// <param name="argument">What <c>add</c> adds.</param>
    /// <returns>The counter after the operation.</returns>
    /// <exception cref="InvalidOperationException">The server does not know the operation.</exception>
    /// <exception cref="ClosedResourceException">The server has stopped, or stopped while the request was pending.</exception>
    /// <exception cref="TimeoutException">No reply came within five seconds.</exception>
    public int Request(string operation, int argument = 0) =>
        _replies.Request(
            Interlocked.Increment(ref _lastId),
            reply => _requests.Send(new CounterRequest(reply.Key, operation, argument)),
            s_timeout);

    /// <summary>Reads the counter on the loop thread.</summary>
    /// <returns>The counter.</returns>
    public int Peek() => CallSync(() => _count, s_timeout);

    /// <inheritdoc/>
    protected override async Task RunAsync(CancellationToken cancellationToken)
    {
        Started();
        try
        {
            await foreach (var request in _inbox.WithCancellation(cancellationToken))
            {
                Handle(request);
            }
        }
        finally
        {
            // Whatever ends the loop, no caller is left waiting for its timeout.
            _requests.Close();
            _replies.Close(new ClosedResourceException($"The counter server stopped ({Scope.Reason ?? "its loop ended"})."));
        }
    }

    private void Handle(CounterRequest request)
    {
        switch (request.Operation)
        {
            case "add":
                _count += request.Argument;
                _replies.Resolve(request.Id, _count);
                break;
            case "get":
                _replies.Resolve(request.Id, _count);
                break;
            default:
                _replies.Fail(request.Id, new InvalidOperationException($"unknown operation: {request.Operation}"));
                break;
        }
    }
}
