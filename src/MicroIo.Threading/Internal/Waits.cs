namespace MicroIo.Internal;

/// <summary>Waits for signal tasks with a timeout measured by a <see cref="TimeProvider"/>.</summary>
/// <remarks>
/// Waiting never throws, even for a task that faults: the caller reads the task's outcome itself. The timeout is a timer
/// of the given clock, so a test can drive it with a fake one; the system clock takes the BCL's own wait.
/// </remarks>
internal static class Waits
{
    /// <summary>Blocks until the signal completes or the timeout elapses; returns whether the signal completed.</summary>
    public static bool Wait(Task signal, TimeSpan timeout, TimeProvider timeProvider)
    {
        if (signal.IsCompleted)
        {
            return true;
        }

        if (timeout == TimeSpan.Zero)
        {
            return false;
        }

        if (timeout == Timeout.InfiniteTimeSpan || ReferenceEquals(timeProvider, TimeProvider.System))
        {
            // WaitAny, unlike Wait, does not throw when the task faults: the caller reads the outcome itself.
            return Task.WaitAny([signal], timeout) == 0;
        }

        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (timeProvider.CreateTimer(static s => ((TaskCompletionSource)s!).TrySetResult(), expired, timeout, Timeout.InfiniteTimeSpan))
        {
            Task.WaitAny(signal, expired.Task);
        }

        return signal.IsCompleted;
    }

    /// <summary>Waits until the signal completes or the timeout elapses; returns whether the signal completed.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public static async Task<bool> WaitAsync(Task signal, TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (signal.IsCompleted)
        {
            return true;
        }

        try
        {
            await signal.WaitAsync(timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return signal.IsCompleted;
        }
    }

    /// <summary>Spins on the calling thread, never yielding its core, until <paramref name="done"/> returns true for <paramref name="state"/> or a few microseconds have passed.</summary>
    /// <remarks>
    /// For work just handed to a loop that was idle and spinning for work: if the loop answers at once, the caller's await
    /// then finds its task done and goes on inline, instead of paying a thread-pool hop for the continuation.
    /// </remarks>
    public static void SpinBriefly<TState>(TState state, Func<TState, bool> done)
    {
        var spinner = default(SpinWait);
        while (!done(state) && !spinner.NextSpinWillYield)
        {
            spinner.SpinOnce();
        }
    }

    /// <summary>Gets the time left until a deadline taken with <see cref="TimeProvider.GetTimestamp"/>, never negative.</summary>
    public static TimeSpan Remaining(TimeProvider timeProvider, long start, TimeSpan timeout)
    {
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return timeout;
        }

        var left = timeout - timeProvider.GetElapsedTime(start);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
