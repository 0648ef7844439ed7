namespace MicroIo;

/// <summary>
/// Lets a child started with <see cref="TaskGroup.StartAsync(Func{TaskReadiness, CancellationToken, Task}, CancellationToken)"/>
/// tell its starter that it is ready.
/// </summary>
/// <remarks><see cref="Started"/> may be called from any thread, once.</remarks>
public sealed class TaskReadiness
{
    private readonly TaskReadiness<bool> _inner;

    internal TaskReadiness(TaskReadiness<bool> inner)
    {
        _inner = inner;
    }

    /// <summary>Gets a value indicating whether <see cref="Started"/> has been called.</summary>
    public bool IsStarted => _inner.IsStarted;

    /// <summary>Signals that the child is ready; its starter's <c>StartAsync</c> returns.</summary>
    /// <exception cref="InvalidOperationException">Readiness was already signalled, or the child has already ended.</exception>
    public void Started() => _inner.Started(true);
}
