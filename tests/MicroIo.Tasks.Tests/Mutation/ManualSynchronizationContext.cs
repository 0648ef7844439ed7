namespace MicroIo.Tests.Mutation;

/// <summary>
/// A synchronization context that only queues what is posted to it, until the test runs the queue: it makes "has the
/// continuation run yet?" a deterministic question.
/// </summary>
internal sealed class ManualSynchronizationContext : SynchronizationContext
{
    private readonly Lock _lock = new();
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _queue = new();

    public int Pending
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Installs a new context on the calling thread, runs <paramref name="test"/> and restores the previous one.</summary>
    public static void Run(Action<ManualSynchronizationContext> test)
    {
        var previous = Current;
        var context = new ManualSynchronizationContext();
        SetSynchronizationContext(context);
        try
        {
            test(context);
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }

    public override void Post(SendOrPostCallback d, object? state)
    {
        lock (_lock)
        {
            _queue.Enqueue((d, state));
        }
    }

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs what was posted so far (and anything those callbacks post), on the calling thread.</summary>
    public void RunPending()
    {
        while (true)
        {
            (SendOrPostCallback Callback, object? State) item;
            lock (_lock)
            {
                if (!_queue.TryDequeue(out item))
                {
                    return;
                }
            }

            item.Callback(item.State);
        }
    }
}
