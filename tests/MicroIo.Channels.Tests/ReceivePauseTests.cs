using System.Diagnostics;
using System.Runtime.CompilerServices;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// A receive that finds its channel empty after a burst pauses briefly and looks once more before it waits: an item that
/// arrived meanwhile is returned without a wait, and a receive cancelled meanwhile takes nothing. A receive after fewer
/// items than a burst, at the end of a closed channel, on a context of its own, or on one processor never pauses.
/// </summary>
/// <remarks>
/// The channel's test hook stands for a producer: it runs when the pause's length has passed, so what it does happens
/// during the pause without any timing. Each channel is given a pause of one tick, so the tests hold on any number of
/// processors; <see cref="DryPauseTests"/> covers when a pause is due. Receives run on the thread pool, where the test
/// framework's synchronization context does not follow them.
/// </remarks>
public class ReceivePauseTests
{
    private const int Burst = DryPause.Burst;

    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    public static TheoryData<int?, bool> Configurations => new()
    {
        { null, false },
        { 2 * Burst, false },
        { null, true },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public async Task ReceiveAsync_ItemArrivingWhenABurstRunsDry_IsReturnedWithoutWaiting(int? capacity, bool singleReceiver)
    {
        var (tx, rx) = Create(capacity, singleReceiver);
        var pauses = CountPauses(rx, () => tx.Send(Burst + 1).ShouldBeTrue());
        await ReceiveBurstAsync(tx, rx, Burst);

        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        // Completed at the call: nothing was listed to wait.
        completedAtCall.ShouldBeTrue();
        (await receive.WaitAsync(s_bound)).ShouldBe(Burst + 1);
        pauses.Value.ShouldBe(1);
        rx.Core.Queue.ListedWaits.ShouldBe(0);
        rx.Stats.ShouldBe(new ChannelStats(Burst + 1, Burst + 1, 0, 0, false));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(Burst - 1)]
    public async Task ReceiveAsync_AfterFewerItemsThanABurst_WaitsWithoutPausing(int items)
    {
        var (tx, rx) = Create(null, false);
        var pauses = CountPauses(rx);
        await ReceiveBurstAsync(tx, rx, items);

        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        completedAtCall.ShouldBeFalse();
        tx.Send(items + 1).ShouldBeTrue();
        (await receive.WaitAsync(s_bound)).ShouldBe(items + 1);
        pauses.Value.ShouldBe(0);
    }

    [Fact]
    public async Task ReceiveAsync_AfterAPause_CountsTheBurstFromThePause()
    {
        var (tx, rx) = Create(null, false);
        var pauses = CountPauses(rx, () => tx.Send(Burst + 1).ShouldBeTrue());
        await ReceiveBurstAsync(tx, rx, Burst);
        (await (await StartReceiveAsync(rx)).Receive.WaitAsync(s_bound)).ShouldBe(Burst + 1);

        // One item since the channel last ran dry: this receive waits.
        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        completedAtCall.ShouldBeFalse();
        pauses.Value.ShouldBe(1);
        rx.Close();
        await Should.ThrowAsync<EndOfChannelException>(receive.WaitAsync(s_bound));
    }

    [Fact]
    public async Task ReceiveAsync_AfterPausesInARowThatCatchNothing_StopsPausing()
    {
        var (tx, rx) = Create(null, false);
        var pauses = CountPauses(rx);

        await SpendTheCreditAsync(tx, rx);

        // The credit ran out after MaxCredit misses: the last burst's run-dry did not pause.
        pauses.Value.ShouldBe(Spinning.MaxCredit);
    }

    [Fact]
    public async Task ReceiveAsync_CreditRunOutOnAnotherChannel_StillPauses()
    {
        var (spentTx, spentRx) = Create(null, false);
        var (tx, rx) = Create(null, false);
        await SpendTheCreditAsync(spentTx, spentRx);
        rx.Core.InPauseForTests = () => tx.Send(Burst + 1).ShouldBeTrue();
        await ReceiveBurstAsync(tx, rx, Burst);

        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        completedAtCall.ShouldBeTrue();
        (await receive.WaitAsync(s_bound)).ShouldBe(Burst + 1);
    }

    [Fact]
    public async Task ReceiveAsync_SecondOnASingleReceiverChannel_ThrowsWithoutPausing()
    {
        // The first receive waits without a pause; then a fresh pause, due at the burst already sent, for the second.
        var (tx, rx) = Create(null, true, pauseTicks: 0);
        await ReceiveBurstAsync(tx, rx, Burst);
        var (firstCompleted, first) = await StartReceiveAsync(rx);
        firstCompleted.ShouldBeFalse();
        rx.Core.PauseTicks = 1;
        var pauses = CountPauses(rx, () => tx.Send(Burst + 1).ShouldBeTrue());

        var (_, second) = await StartReceiveAsync(rx);

        await Should.ThrowAsync<InvalidOperationException>(second.WaitAsync(s_bound));
        pauses.Value.ShouldBe(0);
        tx.Send(Burst + 1).ShouldBeTrue();
        (await first.WaitAsync(s_bound)).ShouldBe(Burst + 1);
    }

    [Fact]
    public async Task ReceiveAsync_AtTheEndOfAClosedChannel_DoesNotPause()
    {
        var (tx, rx) = Create(null, false);
        var pauses = CountPauses(rx);
        await ReceiveBurstAsync(tx, rx, Burst);
        tx.Close();

        await Should.ThrowAsync<EndOfChannelException>(Task.Run(() => rx.ReceiveAsync().AsTask()).WaitAsync(s_bound));

        pauses.Value.ShouldBe(0);
    }

    [Fact]
    public async Task ReceiveAsync_WithoutAPauseLength_WaitsWithoutPausing()
    {
        // As on one processor (Spinning.DefaultTicks).
        var (tx, rx) = Create(null, false, pauseTicks: 0);
        var pauses = CountPauses(rx);
        await ReceiveBurstAsync(tx, rx, Burst);

        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        completedAtCall.ShouldBeFalse();
        pauses.Value.ShouldBe(0);
        tx.Send(Burst + 1).ShouldBeTrue();
        (await receive.WaitAsync(s_bound)).ShouldBe(Burst + 1);
    }

    [Fact]
    public async Task ReceiveAsync_WhenAPauseIsDue_SpinsAtLeastItsLength()
    {
        // A lower bound only, which the clock guarantees however busy the machine is.
        var length = Stopwatch.Frequency / 1_000;
        var (tx, rx) = Create(null, false, pauseTicks: length);
        var start = 0L;
        var elapsed = 0L;
        rx.Core.InPauseForTests = () =>
        {
            elapsed = Stopwatch.GetTimestamp() - start;
            tx.Send(Burst + 1).ShouldBeTrue();
        };
        await ReceiveBurstAsync(tx, rx, Burst);

        start = Stopwatch.GetTimestamp();
        var (completedAtCall, receive) = await StartReceiveAsync(rx);

        completedAtCall.ShouldBeTrue();
        (await receive.WaitAsync(s_bound)).ShouldBe(Burst + 1);
        elapsed.ShouldBeGreaterThanOrEqualTo(length);
    }

    [Fact]
    public void PauseTicks_ByDefault_IsThreeTimesTheDefaultSpinOfThisMachine() =>
        ObjectChannel.Create<int>().Receiver.Core.PauseTicks.ShouldBe(3 * Spinning.DefaultTicks(Environment.ProcessorCount, Stopwatch.Frequency));

    public static TheoryData<string, bool> Places => new()
    {
        // A loop's thread or a scheduler of limited concurrency has other work to run: the receive must not hold it.
        { "a loop's synchronization context", false },
        { "an exclusive task scheduler", false },

        // The plain context posts to the pool, as if there were none: the receive pauses.
        { "the plain synchronization context", true },
    };

    [Theory]
    [MemberData(nameof(Places))]
    public async Task ReceiveAsync_InEachPlace_PausesOnlyOffAContextOrSchedulerOfItsOwn(string place, bool pauses)
    {
        var (tx, rx) = Create(null, false);
        var paused = CountPauses(rx);
        await ReceiveBurstAsync(tx, rx, Burst);
        Func<Task<Task<int>>> receive = () => Task.FromResult(rx.ReceiveAsync().AsTask());

        using var loop = new SingleThreadContext();
        var received = place switch
        {
            "a loop's synchronization context" => await loop.RunAsync(receive),
            "an exclusive task scheduler" => await Task.Factory.StartNew(
                receive, CancellationToken.None, TaskCreationOptions.None, new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler).Unwrap(),
            _ => await Task.Run(() =>
            {
                SynchronizationContext.SetSynchronizationContext(new SynchronizationContext());
                try
                {
                    return receive();
                }
                finally
                {
                    SynchronizationContext.SetSynchronizationContext(null);
                }
            }),
        };

        paused.Value.ShouldBe(pauses ? 1 : 0);
        tx.Send(Burst + 1).ShouldBeTrue();
        (await received.WaitAsync(s_bound)).ShouldBe(Burst + 1);
    }

    public static TheoryData<int?, bool, bool> ConfigurationsAndCancellers
    {
        get
        {
            var data = new TheoryData<int?, bool, bool>();
            foreach (var configuration in Configurations)
            {
                data.Add((int?)configuration[0], (bool)configuration[1]!, false);
                data.Add((int?)configuration[0], (bool)configuration[1]!, true);
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(ConfigurationsAndCancellers))]
    public async Task ReceiveAsync_CancelledDuringThePause_TakesNothing(int? capacity, bool singleReceiver, bool byEnclosingScope)
    {
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var (tx, rx) = Create(capacity, singleReceiver);
        rx.Core.InPauseForTests = () =>
        {
            tx.Send(Burst + 1).ShouldBeTrue();
            if (byEnclosingScope)
            {
                scope.Cancel();
            }
            else
            {
                cts.Cancel();
            }
        };
        await ReceiveBurstAsync(tx, rx, Burst);

        if (byEnclosingScope)
        {
            // The ambient scope's cancellation stops the receive too, and the scope catches it as its own.
            (await Task.Run(() => scope.RunAsync(async _ =>
            {
                await rx.ReceiveAsync();
            })).WaitAsync(s_bound)).ShouldBeFalse();
            scope.CancelledCaught.ShouldBeTrue();
        }
        else
        {
            await Should.ThrowAsync<OperationCanceledException>(Task.Run(() => rx.ReceiveAsync(cts.Token).AsTask()).WaitAsync(s_bound));
        }

        // The item that arrived with the cancellation stays in the channel, and no wait stays listed.
        rx.Core.Queue.ListedWaits.ShouldBe(0);
        rx.Stats.ShouldBe(new ChannelStats(Burst + 1, Burst, 0, 1, false));
        rx.TryReceive(out var left).ShouldBeTrue();
        left.ShouldBe(Burst + 1);
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public async Task GetAsyncEnumerator_ItemsArrivingWhenABurstRunsDry_AreYieldedWithoutWaiting(int? capacity, bool singleReceiver)
    {
        var (tx, rx) = Create(capacity, singleReceiver);
        var pauses = 0;
        rx.Core.InPauseForTests = () =>
        {
            if (++pauses == 1)
            {
                for (var i = Burst + 1; i <= 2 * Burst; i++)
                {
                    tx.Send(i).ShouldBeTrue();
                }

                tx.Close();
            }
        };
        for (var i = 1; i <= Burst; i++)
        {
            tx.Send(i).ShouldBeTrue();
        }

        var received = new List<int>();
        await Task.Run(async () =>
        {
            await foreach (var item in rx)
            {
                received.Add(item);
            }
        }).WaitAsync(s_bound);

        received.ShouldBe(Enumerable.Range(1, 2 * Burst));

        // The one pause that caught the second burst. That burst ran the channel dry again, but closed: no second pause.
        pauses.ShouldBe(1);
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public async Task GetAsyncEnumerator_CancelledDuringThePause_TakesNothing(int? capacity, bool singleReceiver)
    {
        using var cts = new CancellationTokenSource();
        var (tx, rx) = Create(capacity, singleReceiver);
        rx.Core.InPauseForTests = () =>
        {
            tx.Send(Burst + 1).ShouldBeTrue();
            cts.Cancel();
        };
        for (var i = 1; i <= Burst; i++)
        {
            tx.Send(i).ShouldBeTrue();
        }

        var received = new List<int>();
        await Should.ThrowAsync<OperationCanceledException>(Task.Run(async () =>
        {
            await foreach (var item in rx.WithCancellation(cts.Token))
            {
                received.Add(item);
            }
        }).WaitAsync(s_bound));

        received.ShouldBe(Enumerable.Range(1, Burst));
        rx.TryReceive(out var left).ShouldBeTrue();
        left.ShouldBe(Burst + 1);
    }

    // Runs MaxCredit + 1 bursts, each of which runs the channel dry with nothing arriving in the pause, so the receive
    // that found it empty waits for the next item; the last run-dry finds the credit spent.
    private static async Task SpendTheCreditAsync(ObjectSendChannel<int> tx, ObjectReceiveChannel<int> rx)
    {
        var next = 1;
        for (var round = 0; round <= Spinning.MaxCredit; round++)
        {
            for (var i = 0; i < Burst; i++)
            {
                tx.Send(next + i).ShouldBeTrue();
            }

            for (var i = 0; i < Burst; i++)
            {
                (await rx.ReceiveAsync()).ShouldBe(next++);
            }

            var (completedAtCall, receive) = await StartReceiveAsync(rx);
            completedAtCall.ShouldBeFalse();
            tx.Send(next).ShouldBeTrue();
            (await receive.WaitAsync(s_bound)).ShouldBe(next++);
        }
    }

    // Starts a receive on the thread pool, off the test framework's synchronization context, and returns whether it had
    // completed when the call returned, and its task.
    private static async Task<(bool CompletedAtCall, Task<int> Receive)> StartReceiveAsync(ObjectReceiveChannel<int> rx)
    {
        return await Task.Factory.StartNew(
            () =>
            {
                var receive = rx.ReceiveAsync().AsTask();
                return (receive.IsCompleted, receive);
            },
            CancellationToken.None,
            TaskCreationOptions.None,
            TaskScheduler.Default).WaitAsync(s_bound);
    }

    // Counts the channel's pauses, and does in each what a producer would do then, if anything. The count is read on the
    // test's thread after the receive's task has completed, which orders it after the pause.
    private static StrongBox<int> CountPauses(ObjectReceiveChannel<int> rx, Action? inPause = null)
    {
        var pauses = new StrongBox<int>();
        rx.Core.InPauseForTests = () =>
        {
            pauses.Value++;
            inPause?.Invoke();
        };
        return pauses;
    }

    private static (ObjectSendChannel<int> Sender, ObjectReceiveChannel<int> Receiver) Create(int? capacity, bool singleReceiver, long pauseTicks = 1)
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = capacity, SingleReceiver = singleReceiver });
        rx.Core.PauseTicks = pauseTicks;
        return (tx, rx);
    }

    // Every receive here finds an item, so the channel has not run dry since it was made: the next receive that finds it
    // empty counts all these items as its burst.
    private static async Task ReceiveBurstAsync(ObjectSendChannel<int> tx, ObjectReceiveChannel<int> rx, int count)
    {
        for (var i = 1; i <= count; i++)
        {
            tx.Send(i).ShouldBeTrue();
        }

        for (var i = 1; i <= count; i++)
        {
            (await rx.ReceiveAsync()).ShouldBe(i);
        }
    }
}
