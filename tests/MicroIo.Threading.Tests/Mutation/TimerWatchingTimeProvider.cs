using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>A fake clock that signals when code under test creates a timer, so a test knows a timed wait has begun.</summary>
internal sealed class TimerWatchingTimeProvider : FakeTimeProvider
{
    private TaskCompletionSource _timerCreated = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets a task that completes when a timer is created (after the last <see cref="WatchNextTimer"/>, if any).</summary>
    public Task TimerCreated => Volatile.Read(ref _timerCreated).Task;

    /// <summary>Forgets timers created so far (a service's own start-up waits, say): <see cref="TimerCreated"/> waits for the next one.</summary>
    public void WatchNextTimer() => Volatile.Write(ref _timerCreated, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        Volatile.Read(ref _timerCreated).TrySetResult();
        return timer;
    }
}
