namespace MicroIo.Internal;

/// <summary>A function queued on a loop whose caller awaits its result, and may cancel it before it starts.</summary>
internal sealed class LoopCall<T>(Func<T> func) : ClaimedLoopItem
{
    private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<T> Task => _result.Task;

    /// <summary>Waits for the result; <paramref name="cancellationToken"/> cancels the call only while it has not started.</summary>
    public Task<T> WaitAsync(CancellationToken cancellationToken) =>
        cancellationToken.CanBeCanceled ? WaitCoreAsync(cancellationToken) : _result.Task;

    protected override void Run()
    {
        try
        {
            _result.TrySetResult(func());
        }
        catch (Exception ex)
        {
            _result.TrySetException(ex);
        }
    }

    protected override void Reject(Exception exception) => _result.TrySetException(exception);

    private async Task<T> WaitCoreAsync(CancellationToken cancellationToken)
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
}
