using MicroIo.Internal;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>The internal wait helpers every blocking member relies on: a done signal, a clock's timer, the time left.</summary>
public sealed class WaitsTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Wait_SignalAlreadyDone_IsTrueEvenWithZeroTimeout()
    {
        Waits.Wait(Task.CompletedTask, TimeSpan.Zero, TimeProvider.System).ShouldBeTrue();
        Waits.Wait(Task.FromException(new InvalidDataException()), TimeSpan.Zero, new FakeTimeProvider()).ShouldBeTrue();
    }

    [Fact]
    public async Task Wait_FakeClock_BlocksUntilTheSignalCompletesWhileTheClockStandsStill()
    {
        var clock = new TimerWatchingTimeProvider();
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var waiting = Task.Factory.StartNew(() => Waits.Wait(signal.Task, TimeSpan.FromMinutes(1), clock), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await clock.TimerCreated.WaitAsync(s_bound);
        signal.SetResult();

        (await waiting.WaitAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task Wait_FakeClock_ReturnsFalseOnceTheClockPassesTheTimeout()
    {
        var clock = new TimerWatchingTimeProvider();
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var waiting = Task.Factory.StartNew(() => Waits.Wait(signal.Task, TimeSpan.FromMinutes(1), clock), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await clock.TimerCreated.WaitAsync(s_bound);
        clock.Advance(TimeSpan.FromMinutes(1));

        (await waiting.WaitAsync(s_bound)).ShouldBeFalse();
    }

    [Fact]
    public void Remaining_CountsDownToZeroAndNeverBelow()
    {
        var clock = new FakeTimeProvider();
        var start = clock.GetTimestamp();

        clock.Advance(TimeSpan.FromSeconds(3));
        Waits.Remaining(clock, start, TimeSpan.FromSeconds(10)).ShouldBe(TimeSpan.FromSeconds(7));
        clock.Advance(TimeSpan.FromSeconds(7));
        Waits.Remaining(clock, start, TimeSpan.FromSeconds(10)).ShouldBe(TimeSpan.Zero);
        clock.Advance(TimeSpan.FromSeconds(5));
        Waits.Remaining(clock, start, TimeSpan.FromSeconds(10)).ShouldBe(TimeSpan.Zero);
        Waits.Remaining(clock, start, Timeout.InfiniteTimeSpan).ShouldBe(Timeout.InfiniteTimeSpan);
    }

    [Fact]
    public void SpinBriefly_StopsAtTheFirstTrueCheckOrAfterABoundedSpinWithout()
    {
        var checksOfDone = 0;
        Waits.SpinBriefly(0, _ => ++checksOfDone > 0);
        checksOfDone.ShouldBe(1);

        // On one processor a spin cannot help, so it checks once and returns.
        var checksOfNever = 0;
        Waits.SpinBriefly(0, _ => ++checksOfNever < 0);
        checksOfNever.ShouldBeGreaterThanOrEqualTo(Environment.ProcessorCount > 1 ? 2 : 1);
        checksOfNever.ShouldBeLessThan(100);
    }
}
