namespace MicroIo.Tests.Mutation;

/// <summary>
/// A clock whose timers elapse the moment they are created, after which it runs <c>onElapsed</c>: it puts "the delay
/// elapsed, then the token was cancelled, before the waiter resumed" into one deterministic order.
/// </summary>
internal sealed class ElapseAtOnceTimeProvider(Action onElapsed) : TimeProvider
{
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        callback(state);
        onElapsed();
        return new ElapsedTimer();
    }

    private sealed class ElapsedTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => false;

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
