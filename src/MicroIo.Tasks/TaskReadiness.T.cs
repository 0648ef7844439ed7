namespace MicroIo;

/// <summary>
/// Lets a child started with <see cref="TaskGroup.StartAsync{T}(Func{TaskReadiness{T}, CancellationToken, Task}, CancellationToken)"/>
/// tell its starter that it is ready, with a value.
/// </summary>
/// <typeparam name="T">The type of the value handed to the starter.</typeparam>
/// <remarks>
/// The readiness handshake of Trio's and AnyIO's <c>task_status</c> (microio's <c>TaskStatus</c>, renamed so as not to clash
/// with <see cref="TaskStatus"/>). <see cref="Started(T)"/> may be called from any thread, once.
/// </remarks>
public sealed class TaskReadiness<T>
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource<T> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Func<bool> _moveToGroup;
    private volatile bool _started;

    internal TaskReadiness(Func<bool> moveToGroup)
    {
        _moveToGroup = moveToGroup;
    }

    /// <summary>Gets a value indicating whether <see cref="Started(T)"/> has been called.</summary>
    public bool IsStarted => _started;

    internal Task<T> Ready => _ready.Task;

    /// <summary>Signals that the child is ready and hands <paramref name="value"/> to the starter.</summary>
    /// <param name="value">The value that <c>StartAsync</c> returns.</param>
    /// <exception cref="InvalidOperationException">Readiness was already signalled, or the child has already ended.</exception>
    /// <remarks>
    /// If the starter was cancelled before this call, the child stays cancelled and <c>StartAsync</c> throws
    /// <see cref="OperationCanceledException"/> instead of returning the value; the child's cancellation then ends it
    /// quietly, without failing the group.
    /// </remarks>
    public void Started(T value)
    {
        lock (_lock)
        {
            if (_started || _ready.Task.IsCompleted)
            {
                throw new InvalidOperationException(_started
                    ? "Readiness was already signalled: Started() may be called only once."
                    : "The child has already ended; it can no longer signal readiness.");
            }

            _started = true;
        }

        // From here the child belongs to the group alone: what cancels the starter no longer reaches it.
        if (_moveToGroup())
        {
            _ready.TrySetResult(value);
        }
        else
        {
            _ready.TrySetException(new OperationCanceledException("The starter was cancelled before the child signalled readiness."));
        }
    }

    /// <summary>Ends the handshake with the child's own exception, if it had not signalled readiness; returns whether it had not.</summary>
    internal bool TryFail(Exception exception)
    {
        lock (_lock)
        {
            return !_started && _ready.TrySetException(exception);
        }
    }
}
