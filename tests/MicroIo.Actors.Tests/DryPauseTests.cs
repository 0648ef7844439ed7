using System.Diagnostics;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// When a serial run that finds its mailbox empty pauses: only after a burst, never without a pause length, and, once
/// its pauses keep catching nothing, only for one trial now and then until one catches a message again.
/// </summary>
public class DryPauseTests
{
    [Fact]
    public void RunsDry_AfterABurst_Pauses_AndTheCountStartsAgain()
    {
        var pause = new DryPause(ticks: 1);
        Take(ref pause, DryPause.Burst - 1);
        pause.RunsDry().ShouldBeFalse();

        Take(ref pause, DryPause.Burst);
        pause.RunsDry().ShouldBeTrue();

        // The burst counted before this run-dry does not count again.
        Take(ref pause, DryPause.Burst - 1);
        pause.RunsDry().ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_WithoutAPauseLength_NeverPauses()
    {
        var pause = new DryPause(ticks: 0);
        Take(ref pause, DryPause.Burst * 10);
        pause.RunsDry().ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_AfterMissedPausesInARow_PausesOnlyAsATrialUntilOneCatches()
    {
        var pause = new DryPause(ticks: 1);
        for (var i = 0; i < Spinning.MaxCredit; i++)
        {
            BurstThenDry(ref pause).ShouldBeTrue();
            pause.Caught(false);
        }

        // Stopped: the next TrialEvery - 1 bursts do not pause, the one after does.
        for (var i = 1; i < Spinning.TrialEvery; i++)
        {
            BurstThenDry(ref pause).ShouldBeFalse();
        }

        BurstThenDry(ref pause).ShouldBeTrue();
        pause.Caught(false);
        BurstThenDry(ref pause).ShouldBeFalse();

        // A trial that catches a message restores the full credit.
        for (var i = 2; i < Spinning.TrialEvery; i++)
        {
            BurstThenDry(ref pause).ShouldBeFalse();
        }

        BurstThenDry(ref pause).ShouldBeTrue();
        pause.Caught(true);
        for (var i = 0; i < Spinning.MaxCredit; i++)
        {
            BurstThenDry(ref pause).ShouldBeTrue();
            pause.Caught(false);
        }

        BurstThenDry(ref pause).ShouldBeFalse();
    }

    [Fact]
    public void RunsDry_AMissThenACatch_KeepsPausing()
    {
        var pause = new DryPause(ticks: 1);
        for (var i = 0; i < Spinning.MaxCredit * 4; i++)
        {
            BurstThenDry(ref pause).ShouldBeTrue();
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

    private static bool BurstThenDry(ref DryPause pause)
    {
        Take(ref pause, DryPause.Burst);
        return pause.RunsDry();
    }

    private static void Take(ref DryPause pause, int messages)
    {
        for (var i = 0; i < messages; i++)
        {
            pause.Took();
        }
    }
}
