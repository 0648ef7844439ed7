using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// A fake clock that records every timer created through it, to check that a scope stops the timers it no longer needs
/// and to deliver a timer's callback late, as a timer whose tick was already on its way when it was disposed would.
/// </summary>
internal sealed class TrackingTimeProvider : TimeProvider
{
    private readonly Lock _lock = new();
    private readonly List<TrackedTimer> _timers = [];

    public FakeTimeProvider Fake { get; } = new();

    /// <summary>Gets a snapshot of every timer created so far, in creation order.</summary>
    public IReadOnlyList<TrackedTimer> Timers
    {
        get
        {
            lock (_lock)
            {
                return [.. _timers];
            }
        }
    }

    /// <summary>Gets the number of timers created and not yet disposed.</summary>
    public int LiveTimers
    {
        get
        {
            lock (_lock)
            {
                return _timers.Count(t => !t.IsDisposed);
            }
        }
    }

    public override TimeZoneInfo LocalTimeZone => Fake.LocalTimeZone;

    public override long TimestampFrequency => Fake.TimestampFrequency;

    public override DateTimeOffset GetUtcNow() => Fake.GetUtcNow();

    public override long GetTimestamp() => Fake.GetTimestamp();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new TrackedTimer(Fake.CreateTimer(callback, state, dueTime, period), callback, state);
        lock (_lock)
        {
            _timers.Add(timer);
        }

        return timer;
    }

    /// <summary>A timer of the fake clock that remembers whether it was disposed and can run its callback on demand.</summary>
    internal sealed class TrackedTimer(ITimer inner, TimerCallback callback, object? state) : ITimer
    {
        private int _disposed;

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        /// <summary>Runs the callback now, even if the timer was disposed: a tick that was already on its way.</summary>
        public void DeliverLateTick() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

        public void Dispose()
        {
            Volatile.Write(ref _disposed, 1);
            inner.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
