using System.Diagnostics;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// When a reader that finds its queue empty pauses: only after a burst, never without a pause length, and, once its
/// pauses keep catching nothing, only for one trial now and then until one catches an item again.
/// </summary>
public class DryPauseTests
{
    [Fact]
    public void RunsDry_AfterABurst_Pauses_AndTheCountStartsAgain()
    {
        var pause = new DryPause(ticks: 1);
        pause.RunsDry(DryPause.Burst - 1).ShouldBeFalse();

        // Counted from the last run-dry, not from the start.
        pause.RunsDry(DryPause.Burst + (DryPause.Burst - 2)).ShouldBeFalse();
        pause.RunsDry((2 * DryPause.Burst) + (DryPause.Burst - 2)).ShouldBeTrue();

        // The burst counted before this run-dry does not count again.
        pause.RunsDry((3 * DryPause.Burst) - 1).ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_WithoutAPauseLength_NeverPauses()
    {
        var pause = new DryPause(ticks: 0);
        pause.RunsDry(DryPause.Burst * 10).ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_AfterMissedPausesInARow_PausesOnlyAsATrialUntilOneCatches()
    {
        var pause = new DryPause(ticks: 1);
        var count = 0L;
        for (var i = 0; i < Spinning.MaxCredit; i++)
        {
            BurstThenDry(ref pause, ref count).ShouldBeTrue();
            pause.Caught(false);
        }

        // Stopped: the next TrialEvery - 1 bursts do not pause, the one after does.
        for (var i = 1; i < Spinning.TrialEvery; i++)
        {
            BurstThenDry(ref pause, ref count).ShouldBeFalse();
        }

        BurstThenDry(ref pause, ref count).ShouldBeTrue();
        pause.Caught(false);
        BurstThenDry(ref pause, ref count).ShouldBeFalse();

        // A trial that catches an item restores the full credit.
        for (var i = 2; i < Spinning.TrialEvery; i++)
        {
            BurstThenDry(ref pause, ref count).ShouldBeFalse();
        }

        BurstThenDry(ref pause, ref count).ShouldBeTrue();
        pause.Caught(true);
        for (var i = 0; i < Spinning.MaxCredit; i++)
        {
            BurstThenDry(ref pause, ref count).ShouldBeTrue();
            pause.Caught(false);
        }

        BurstThenDry(ref pause, ref count).ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_AMissThenACatch_KeepsPausing()
    {
        var pause = new DryPause(ticks: 1);
        var count = 0L;
        for (var i = 0; i < Spinning.MaxCredit * 4; i++)
        {
            BurstThenDry(ref pause, ref count).ShouldBeTrue();
            pause.Caught(i % 2 == 0);
        }
    }

    [Fact]
    public void Pause_SpinsAtLeastItsLength()
    {
        var length = Stopwatch.Frequency / 1_000;
        var pause = new DryPause(length);
        var start = Stopwatch.GetTimestamp();

        pause.Pause();

        (Stopwatch.GetTimestamp() - start).ShouldBeGreaterThanOrEqualTo(length);
    }

    private static bool BurstThenDry(ref DryPause pause, ref long count)
    {
        count += DryPause.Burst;
        return pause.RunsDry(count);
    }
}
