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
    private readonly TaskCompletionSource<T> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _onStarted;

    internal TaskReadiness(Action onStarted)
    {
        _onStarted = onStarted;
    }

    /// <summary>Gets a value indicating whether <see cref="Started(T)"/> has been called.</summary>
    public bool IsStarted { get; private set; }

    internal Task<T> Ready => _ready.Task;

    /// <summary>Signals that the child is ready and hands <paramref name="value"/> to the starter.</summary>
    /// <param name="value">The value that <c>StartAsync</c> returns.</param>
    /// <exception cref="InvalidOperationException">Readiness was already signalled, or the child has already ended.</exception>
    public void Started(T value)
    {
        lock (_ready)
        {
            if (IsStarted || _ready.Task.IsCompleted)
            {
                throw new InvalidOperationException(IsStarted
                    ? "Readiness was already signalled: Started() may be called only once."
                    : "The child has already ended; it can no longer signal readiness.");
            }

            IsStarted = true;
        }

        // The child now belongs to the group alone: what cancels the starter no longer cancels it.
        _onStarted();
        _ready.TrySetResult(value);
    }

    /// <summary>Ends the handshake with the child's failure, if it had not signalled readiness; returns whether it had not.</summary>
    internal bool TryFail(Exception exception)
    {
        lock (_ready)
        {
            if (IsStarted)
            {
                return false;
            }

            return exception is OperationCanceledException canceled
                ? _ready.TrySetCanceled(canceled.CancellationToken)
                : _ready.TrySetException(exception);
        }
    }
}
