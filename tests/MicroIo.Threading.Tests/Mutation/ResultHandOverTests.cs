using MicroIo.Internal;

namespace MicroIo.Tests.Mutation;

/// <summary>The hand-over of a result between the thread that ends a submitted work and its waiting caller: exactly one of them completes the task.</summary>
public sealed class ResultHandOverTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(30);

    [Fact]
    public void TryTake_AfterTryLeave_ReturnsTheResult()
    {
        var handOver = default(ResultHandOver<string>);
        handOver.HasResult.ShouldBeFalse();

        handOver.TryLeave("answer").ShouldBeTrue();

        handOver.HasResult.ShouldBeTrue();
        handOver.TryTake(out var value).ShouldBeTrue();
        value.ShouldBe("answer");
    }

    [Fact]
    public void TryLeave_AfterTryTake_ReturnsFalseAndLeavesNothing()
    {
        var handOver = default(ResultHandOver<string>);

        handOver.TryTake(out _).ShouldBeFalse();

        handOver.TryLeave("answer").ShouldBeFalse();
        handOver.HasResult.ShouldBeFalse();
    }

    [Fact]
    public async Task TryLeaveAndTryTake_Racing_ExactlyOneSideHandsOnEachResultAndItArrivesWhole()
    {
        const int Count = 200_000;
        var handOvers = new ResultHandOver<(long, long, long, long)>[Count];
        var left = new bool[Count];
        var taken = new bool[Count];
        var values = new (long, long, long, long)[Count];
        using var barrier = new Barrier(2);

        var leaver = DedicatedThread.Run(() =>
        {
            barrier.SignalAndWait(s_bound);
            for (var i = 0; i < Count; i++)
            {
                left[i] = handOvers[i].TryLeave((i, i, i, i));
            }
        });
        var taker = DedicatedThread.Run(() =>
        {
            barrier.SignalAndWait(s_bound);
            for (var i = 0; i < Count; i++)
            {
                // A quarter of the results are waited for until left (a spin that yields, so this holds on one core too);
                // the others are taken at once, racing the leaver.
                if (i % 4 == 0)
                {
                    var spinner = default(SpinWait);
                    while (!handOvers[i].HasResult)
                    {
                        spinner.SpinOnce();
                    }
                }

                taken[i] = handOvers[i].TryTake(out values[i]);
            }
        });
        await Task.WhenAll(leaver, taker).WaitAsync(s_bound);

        var takenCount = 0;
        var handedOverByBothOrNeither = 0;
        var torn = 0;
        for (var i = 0; i < Count; i++)
        {
            // Left means the waiter takes it; not left means the waiter had gone and the leaver hands it over itself.
            if (taken[i] != left[i])
            {
                handedOverByBothOrNeither++;
            }

            if (taken[i])
            {
                takenCount++;
                if (values[i] != (i, i, i, i))
                {
                    torn++;
                }
            }
        }

        handedOverByBothOrNeither.ShouldBe(0);
        torn.ShouldBe(0);
        takenCount.ShouldBeGreaterThanOrEqualTo(Count / 4);
    }
}
