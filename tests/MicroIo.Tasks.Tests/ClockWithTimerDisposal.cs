using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

/// <summary>A fake clock whose timers run a given action when disposed, as a clock's own code may.</summary>
internal sealed class ClockWithTimerDisposal(Action onDispose) : TimeProvider
{
    private readonly FakeTimeProvider _fake = new();

    public override DateTimeOffset GetUtcNow() => _fake.GetUtcNow();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new Timer(_fake.CreateTimer(callback, state, dueTime, period), onDispose);

    private sealed class Timer(ITimer inner, Action onDispose) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

        public void Dispose()
        {
            onDispose();
            inner.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
