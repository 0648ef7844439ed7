namespace MicroIo.Internal;

/// <summary>A function queued on a loop whose caller waits for its result, and may give up before it starts.</summary>
/// <remarks>
/// Who decides between "run" and "give up" is settled by one compare-and-swap on <see cref="_state"/>: the loop claims
/// the call before running it, and a caller whose wait timed out (or was cancelled) claims it to abandon it. Only one of
/// them can win, so a call that was reported as timed out before it started never runs later.
/// </remarks>
internal sealed class LoopCall<T>(Func<T> func)
{
    private const int Pending = 0;
    private const int Running = 1;
    private const int Abandoned = 2;

    private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state;

    public Task<T> Task => _result.Task;

    /// <summary>Gets a value indicating whether the loop has claimed the call (it is running or has run).</summary>
    public bool HasStarted => Volatile.Read(ref _state) == Running;

    /// <summary>Makes the queue item that runs this call; an item the loop cannot run fails the call instead.</summary>
    public LoopItem ToItem(ExecutionContext? context) =>
        new(static s => ((LoopCall<T>)s!).Run(), this, context, ex => Reject(ex));

    /// <summary>Runs the function on the loop, unless the caller has given up.</summary>
    public void Run()
    {
        if (Interlocked.CompareExchange(ref _state, Running, Pending) != Pending)
        {
            return;
        }

        try
        {
            _result.TrySetResult(func());
        }
        catch (Exception ex)
        {
            _result.TrySetException(ex);
        }
    }

    /// <summary>Gives up on the call if it has not started; returns whether it had not (and so never will).</summary>
    public bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Pending) == Pending;

    /// <summary>Waits for the result; <paramref name="cancellationToken"/> cancels the call only while it has not started.</summary>
    public async Task<T> WaitAsync(CancellationToken cancellationToken)
    {
        // Registered after the call was queued: if the loop has claimed it by then, the cancellation finds nothing to do.
        using var registration = cancellationToken.UnsafeRegister(
            static (s, token) =>
            {
                var call = (LoopCall<T>)s!;
                if (call.TryAbandon())
                {
                    call._result.TrySetCanceled(token);
                }
            },
            this);
        return await _result.Task.ConfigureAwait(false);
    }

    private void Reject(Exception exception)
    {
        if (TryAbandon())
        {
            _result.TrySetException(exception);
        }
    }
}
