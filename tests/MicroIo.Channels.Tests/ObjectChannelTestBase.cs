using System.Collections.Concurrent;
using System.Threading.Channels;

namespace MicroIo.Tests;

/// <summary>The channel contract, run once per configuration by the sealed subclasses below.</summary>
public abstract class ObjectChannelTestBase
{
    protected static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    protected abstract int? Capacity { get; }

    protected abstract bool SingleReceiver { get; }

    protected (ObjectSendChannel<T> Sender, ObjectReceiveChannel<T> Receiver) Create<T>(LateSendPolicy lateSend = LateSendPolicy.Throw) =>
        ObjectChannel.Create<T>(new ObjectChannelOptions { Capacity = Capacity, SingleReceiver = SingleReceiver, LateSend = lateSend });

    [Fact]
    public async Task Send_BeforeAnyReceive_IsReceivedInOrder()
    {
        var (tx, rx) = Create<int>();

        tx.Send(1).ShouldBeTrue();
        tx.Send(2).ShouldBeTrue();

        (await rx.ReceiveAsync()).ShouldBe(1);
        (await rx.ReceiveAsync()).ShouldBe(2);
        rx.Stats.ShouldBe(new ChannelStats(2, 2, 0, 0, false));
    }

    [Fact]
    public async Task ReceiveAsync_WaitsForSendFromOtherThread()
    {
        var (tx, rx) = Create<string>();

        var receive = rx.ReceiveAsync().AsTask();
        receive.IsCompleted.ShouldBeFalse();
        var sender = new Thread(() => tx.Send("hello"));
        sender.Start();

        (await receive.WaitAsync(Bound)).ShouldBe("hello");
        sender.Join(Bound).ShouldBeTrue();
    }

    [Fact]
    public async Task ReceiveAsync_ContinuationNotInlineOnSendingThread()
    {
        var (tx, rx) = Create<int>();
        var continuation = rx.ReceiveAsync().AsTask().ContinueWith(
            _ => Environment.CurrentManagedThreadId,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        var senderThread = -1;

        var sender = new Thread(() =>
        {
            senderThread = Environment.CurrentManagedThreadId;
            tx.Send(1);
        });
        sender.Start();
        sender.Join(Bound).ShouldBeTrue();

        (await continuation.WaitAsync(Bound)).ShouldNotBe(senderThread);
    }

    [Fact]
    public async Task Close_ThenReceive_DeliversItemsThenEndOfChannelEveryTime()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        tx.Send(2);

        tx.Close().ShouldBeTrue();
        tx.Close().ShouldBeFalse();

        (await rx.ReceiveAsync()).ShouldBe(1);
        (await rx.ReceiveAsync()).ShouldBe(2);
        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());
        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());
        rx.Stats.ShouldBe(new ChannelStats(2, 2, 0, 0, true));
    }

    [Fact]
    public async Task Close_WakesWaitingReceiver()
    {
        var (tx, rx) = Create<int>();
        var receive = rx.ReceiveAsync().AsTask();

        var closer = new Thread(() => tx.Close());
        closer.Start();

        await Should.ThrowAsync<EndOfChannelException>(receive.WaitAsync(Bound));
        closer.Join(Bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Fail_AfterKeptItem_DeliversItemThenOriginalExceptionOnEveryReceive()
    {
        var (tx, rx) = Create<string>();
        var failure = new IOException("peer crashed");
        tx.Send("kept");

        tx.Fail(failure).ShouldBeTrue();
        tx.Fail(new IOException("again")).ShouldBeFalse();
        tx.Close().ShouldBeFalse();

        (await rx.ReceiveAsync()).ShouldBe("kept");
        (await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask())).ShouldBeSameAs(failure);
        (await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask())).ShouldBeSameAs(failure);
        rx.Stats.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public async Task Fail_WakesWaitingReceiverWithOriginalException()
    {
        var (tx, rx) = Create<int>();
        var failure = new InvalidDataException("bad frame");
        var receive = rx.ReceiveAsync().AsTask();

        tx.Fail(failure);

        (await Should.ThrowAsync<InvalidDataException>(receive.WaitAsync(Bound))).ShouldBeSameAs(failure);
    }

    [Fact]
    public void Fail_Null_ThrowsAndLeavesChannelOpen()
    {
        var (tx, rx) = Create<int>();

        Should.Throw<ArgumentNullException>(() => tx.Fail(null!));
        Should.Throw<ArgumentNullException>(() => rx.Fail(null!));

        tx.IsClosed.ShouldBeFalse();
        tx.Send(1).ShouldBeTrue();
    }

    [Fact]
    public void LateSend_ThrowPolicy_ThrowsClosedAndCountsDrop()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Throw);
        tx.Close();

        Should.Throw<ClosedResourceException>(() => tx.Send(1));

        tx.Stats.ShouldBe(new ChannelStats(0, 0, 1, 0, true));
    }

    [Fact]
    public async Task LateSend_ThrowPolicy_AfterFail_ThrowsClosedWithFailureAsInner()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Throw);
        var failure = new IOException("x");
        tx.Fail(failure);

        Should.Throw<ClosedResourceException>(() => tx.Send(1)).InnerException.ShouldBeSameAs(failure);
        (await Should.ThrowAsync<ClosedResourceException>(tx.SendAsync(2).AsTask())).InnerException.ShouldBeSameAs(failure);

        tx.Stats.Dropped.ShouldBe(2);
    }

    [Fact]
    public async Task LateSend_DropPolicy_ReturnsFalseAndCountsDrop()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Drop);
        tx.Send(1);
        rx.Close();

        tx.Send(2).ShouldBeFalse();
        (await tx.SendAsync(3)).ShouldBeFalse();

        tx.Stats.ShouldBe(new ChannelStats(1, 0, 2, 1, true));
        (await rx.ReceiveAsync()).ShouldBe(1);
        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());
    }

    [Fact]
    public async Task ExceptionItem_IsDeliveredAsItem_AndDoesNotFailChannel()
    {
        var (tx, rx) = Create<object>();
        var item = new InvalidOperationException("just data");

        tx.Send(item);
        tx.Send("next");

        (await rx.ReceiveAsync()).ShouldBeSameAs(item);
        (await rx.ReceiveAsync()).ShouldBe("next");
        rx.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public async Task DrainNowait_WithLimit_TakesOldestWithoutWaiting()
    {
        var (tx, rx) = Create<int>();
        for (var i = 0; i < 5; i++)
        {
            tx.Send(i);
        }

        rx.DrainNowait(2).ShouldBe([0, 1]);
        rx.DrainNowait(0).ShouldBeEmpty();
        rx.DrainNowait().ShouldBe([2, 3, 4]);
        rx.DrainNowait().ShouldBeEmpty();
        rx.Stats.ShouldBe(new ChannelStats(5, 5, 0, 0, false));
        (await tx.SendAsync(9)).ShouldBeTrue();
        (await rx.ReceiveAsync()).ShouldBe(9);
    }

    [Fact]
    public async Task DrainNowait_NeverConsumesEndMarker()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        tx.Close();

        rx.DrainNowait().ShouldBe([1]);
        rx.DrainNowait().ShouldBeEmpty();

        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());
        rx.Stats.Queued.ShouldBe(0);
    }

    [Fact]
    public async Task DrainNowait_NeverConsumesFailure()
    {
        var (tx, rx) = Create<int>();
        var failure = new IOException("x");
        tx.Send(1);
        tx.Fail(failure);

        rx.DrainNowait().ShouldBe([1]);
        rx.DrainNowait().ShouldBeEmpty();

        (await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask())).ShouldBeSameAs(failure);
    }

    [Fact]
    public void DrainNowait_NegativeLimit_Throws()
    {
        var (_, rx) = Create<int>();

        Should.Throw<ArgumentOutOfRangeException>(() => rx.DrainNowait(-1));
    }

    [Fact]
    public void TryReceive_TakesQueuedItemOnly()
    {
        var (tx, rx) = Create<int>();

        rx.TryReceive(out _).ShouldBeFalse();
        tx.Send(7);
        rx.TryReceive(out var item).ShouldBeTrue();
        item.ShouldBe(7);
        rx.Stats.Received.ShouldBe(1);
    }

    [Fact]
    public async Task AwaitForeach_EndsQuietlyAtClose()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        tx.Send(2);
        tx.Close();
        var items = new List<int>();

        await foreach (var item in rx)
        {
            items.Add(item);
        }

        items.ShouldBe([1, 2]);
    }

    [Fact]
    public async Task AwaitForeach_ThrowsFailureAfterItems()
    {
        var (tx, rx) = Create<int>();
        var failure = new IOException("x");
        tx.Send(1);
        tx.Fail(failure);
        var items = new List<int>();

        var ex = await Should.ThrowAsync<IOException>(async () =>
        {
            await foreach (var item in rx)
            {
                items.Add(item);
            }
        });

        ex.ShouldBeSameAs(failure);
        items.ShouldBe([1]);
    }

    [Fact]
    public async Task ReceiveAsync_TokenCancelled_Throws()
    {
        var (_, rx) = Create<int>();
        using var cts = new CancellationTokenSource();
        var receive = rx.ReceiveAsync(cts.Token).AsTask();

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(receive.WaitAsync(Bound));
    }

    [Fact]
    public async Task ReceiveAsync_AmbientScopeCancelled_StopsWithoutToken()
    {
        var (tx, rx) = Create<int>();
        var scope = new CancelScope();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async _ =>
        {
            var receive = rx.ReceiveAsync();
            waiting.SetResult();
            await receive;
        });
        await waiting.Task.WaitAsync(Bound);
        scope.Cancel();

        (await run.WaitAsync(Bound)).ShouldBeFalse();
        scope.CancelledCaught.ShouldBeTrue();
        tx.Send(1);
        (await rx.ReceiveAsync()).ShouldBe(1);
    }

    [Fact]
    public async Task ReceiveAsync_InCancelledScope_ThrowsEvenWithItemQueued()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        var scope = new CancelScope();
        scope.Cancel();

        (await scope.RunAsync(async _ => { await rx.ReceiveAsync(); })).ShouldBeFalse();

        rx.Stats.Queued.ShouldBe(1);
    }

    [Fact]
    public async Task ReceiveAndSendAsync_InCancelledScopeWithItemAndRoom_ReturnFaultedTasksCarryingTheScopesToken()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        scope.Cancel();
        ValueTask<int> receive;
        ValueTask<bool> send;

        using (scope.Enter())
        {
            // The caller's live token does not hide the scope's cancellation, and neither call throws synchronously.
            receive = rx.ReceiveAsync(cts.Token);
            send = tx.SendAsync(2, cts.Token);
        }

        receive.IsFaulted.ShouldBeTrue();
        send.IsFaulted.ShouldBeTrue();
        (await CancellationOf(receive.AsTask())).CancellationToken.ShouldBe(scope.Token);
        (await CancellationOf(send.AsTask())).CancellationToken.ShouldBe(scope.Token);
        tx.Stats.ShouldBe(new ChannelStats(1, 0, 0, 1, false));
    }

    [Fact]
    public async Task ReceiveAndSendAsync_CancelledTokenWithItemAndRoom_ReturnFaultedTasksCarryingThatToken()
    {
        var (tx, rx) = Create<int>();
        tx.Send(1);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        var receive = rx.ReceiveAsync(cts.Token);
        var send = tx.SendAsync(2, cts.Token);

        (await CancellationOf(receive.AsTask())).CancellationToken.ShouldBe(cts.Token);
        (await CancellationOf(send.AsTask())).CancellationToken.ShouldBe(cts.Token);
        tx.Stats.ShouldBe(new ChannelStats(1, 0, 0, 1, false));
    }

    [Theory]
    [InlineData(LateSendPolicy.Throw)]
    [InlineData(LateSendPolicy.Drop)]
    public async Task SendAsync_AfterClose_CompletesAtOnceAsThePolicySaysAndCountsTheDrop(LateSendPolicy policy)
    {
        var (tx, _) = Create<int>(policy);
        tx.Close();

        var send = tx.SendAsync(1);

        send.IsCompleted.ShouldBeTrue();
        if (policy == LateSendPolicy.Throw)
        {
            send.IsFaulted.ShouldBeTrue();
            await Should.ThrowAsync<ClosedResourceException>(send.AsTask());
        }
        else
        {
            (await send).ShouldBeFalse();
        }

        tx.Stats.ShouldBe(new ChannelStats(0, 0, 1, 0, true));
    }

    /// <summary>Returns the exact cancellation a completed task holds (Shouldly would wrap it as a TaskCanceledException).</summary>
    private static async Task<OperationCanceledException> CancellationOf(Task task)
    {
        task.IsCompleted.ShouldBeTrue();
        try
        {
            await task;
        }
        catch (OperationCanceledException ex)
        {
            return ex;
        }

        throw new ShouldAssertException("The task did not end in a cancellation.");
    }

    [Fact]
    public async Task Receiver_CanCloseAndFail()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Drop);

        rx.Close().ShouldBeTrue();

        tx.IsClosed.ShouldBeTrue();
        tx.Send(1).ShouldBeFalse();
        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());

        var (tx2, rx2) = Create<int>();
        var failure = new IOException("consumer broke");
        rx2.Fail(failure).ShouldBeTrue();
        tx2.IsClosed.ShouldBeTrue();
        (await Should.ThrowAsync<IOException>(rx2.ReceiveAsync().AsTask())).ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task ChannelReaderAdapter_ReadAllAsync_CountsAndEnds()
    {
        var (tx, rx) = Create<int>();
        var reader = rx.AsChannelReader();
        tx.Send(1);
        tx.Send(2);
        if (reader.CanCount)
        {
            reader.Count.ShouldBe(2);
        }

        tx.Close();
        var items = new List<int>();

        await foreach (var item in reader.ReadAllAsync())
        {
            items.Add(item);
        }

        items.ShouldBe([1, 2]);
        await reader.Completion.WaitAsync(Bound);
        rx.Stats.Received.ShouldBe(2);
    }

    [Fact]
    public async Task ChannelReaderAdapter_Failed_CompletionFaultsWithOriginal()
    {
        var (tx, rx) = Create<int>();
        var reader = rx.AsChannelReader();
        var failure = new IOException("x");

        tx.Fail(failure);

        (await Should.ThrowAsync<IOException>(reader.Completion.WaitAsync(Bound))).ShouldBeSameAs(failure);
        (await Should.ThrowAsync<IOException>(reader.WaitToReadAsync().AsTask())).ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task ChannelWriterAdapter_FeedsChannel_AndFollowsItsContractAfterClose()
    {
        var (tx, rx) = Create<int>();
        var writer = tx.AsChannelWriter();

        writer.TryWrite(1).ShouldBeTrue();
        await writer.WriteAsync(2);
        writer.TryComplete().ShouldBeTrue();

        writer.TryWrite(3).ShouldBeFalse();
        await Should.ThrowAsync<ChannelClosedException>(writer.WriteAsync(4).AsTask());
        (await writer.WaitToWriteAsync()).ShouldBeFalse();
        rx.DrainNowait().ShouldBe([1, 2]);
        rx.Stats.ShouldBe(new ChannelStats(2, 2, 2, 0, true));
    }

    [Fact]
    public async Task ChannelWriterAdapter_TryCompleteWithError_FailsChannel()
    {
        var (tx, rx) = Create<int>();
        var failure = new IOException("x");

        tx.AsChannelWriter().TryComplete(failure).ShouldBeTrue();

        (await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask())).ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task Stats_AreConsistentAtEveryMoment_UnderLoad()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Drop);
        using var stop = new CancellationTokenSource();
        var violations = 0;
        var watcher = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var s = rx.Stats;
                if (s.Sent != s.Received + s.Queued || s.Queued < 0)
                {
                    Interlocked.Increment(ref violations);
                }
            }
        });
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < 50_000; i++)
            {
                await tx.SendAsync(i);
            }

            tx.Close();
        });

        var received = 0;
        await foreach (var _ in rx)
        {
            received++;
        }

        await producer.WaitAsync(Bound);
        await stop.CancelAsync();
        await watcher.WaitAsync(Bound);
        violations.ShouldBe(0);
        received.ShouldBe(50_000);
        rx.Stats.ShouldBe(new ChannelStats(50_000, 50_000, 0, 0, true));
    }

    [Fact]
    public async Task Stats_LateSendsNeverShowAsSentOrQueued()
    {
        var (tx, rx) = Create<int>(LateSendPolicy.Drop);
        tx.Send(1);
        tx.Send(2);
        tx.Close();
        using var stop = new CancellationTokenSource();
        var lateSending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lateSender = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                tx.Send(3).ShouldBeFalse();
                lateSending.TrySetResult();
            }
        });

        // The stats are read while late sends are under way, not before the sender has started.
        await lateSending.Task.WaitAsync(Bound);
        (await rx.ReceiveAsync()).ShouldBe(1);
        for (var i = 0; i < 20_000; i++)
        {
            var s = rx.Stats;
            s.Sent.ShouldBe(2);
            s.Queued.ShouldBe(1);
        }

        (await rx.ReceiveAsync()).ShouldBe(2);
        await Should.ThrowAsync<EndOfChannelException>(rx.ReceiveAsync().AsTask());
        rx.Stats.Queued.ShouldBe(0);
        await stop.CancelAsync();
        await lateSender.WaitAsync(Bound);
        rx.Stats.Dropped.ShouldBeGreaterThan(0);
    }

    [Fact]
    public async Task Cancelled_ReceiveAndWait_CarryTheCallersToken()
    {
        var (_, rx) = Create<int>();
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        Exception? caught = null;

        await scope.RunAsync(async _ =>
        {
            var receive = rx.ReceiveAsync(cts.Token).AsTask();
            await cts.CancelAsync();
            try
            {
                await receive;
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });

        caught.ShouldBeOfType<OperationCanceledException>().CancellationToken.ShouldBe(cts.Token);
    }

    [Fact]
    public async Task Fail_ThrownManyTimes_StackTraceDoesNotGrow()
    {
        var (tx, rx) = Create<int>();
        var failure = new IOException("x");
        tx.Fail(failure);
        await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask());
        var length = failure.StackTrace?.Length ?? 0;

        for (var i = 0; i < 50; i++)
        {
            await Should.ThrowAsync<IOException>(rx.ReceiveAsync().AsTask());
        }

        (failure.StackTrace?.Length ?? 0).ShouldBeLessThanOrEqualTo(length);
    }

    [Fact]
    public async Task ProducersRacingClose_EveryItemReceivedOnceOrCountedDropped()
    {
        const int producers = 4;
        const int perProducer = 100_000;
        foreach (var policy in new[] { LateSendPolicy.Drop, LateSendPolicy.Throw })
        {
            var seed = Environment.TickCount;
            var random = new Random(seed);
            var (tx, rx) = Create<int>(policy);
            var accepted = new ConcurrentBag<int>();
            var refused = 0L;
            var closeAfter = random.Next(0, producers * perProducer);
            var sentSoFar = 0;
            using var start = new Barrier(producers + 1);

            var threads = Enumerable.Range(0, producers).Select(p => new Thread(() =>
            {
                start.SignalAndWait();
                for (var i = 0; i < perProducer; i++)
                {
                    var item = (p * perProducer) + i;
                    if (Interlocked.Increment(ref sentSoFar) == closeAfter)
                    {
                        tx.Close();
                    }

                    bool queued;
                    try
                    {
                        queued = Capacity is null ? tx.Send(item) : tx.SendAsync(item).AsTask().GetAwaiter().GetResult();
                    }
                    catch (ClosedResourceException)
                    {
                        queued = false;
                    }

                    if (queued)
                    {
                        accepted.Add(item);
                    }
                    else
                    {
                        Interlocked.Increment(ref refused);
                    }
                }
            })).ToList();
            threads.ForEach(t => t.Start());

            var receivedTask = Task.Run(async () =>
            {
                var got = new List<int>();
                await foreach (var item in rx)
                {
                    got.Add(item);
                }

                return got;
            });
            start.SignalAndWait();
            threads.ForEach(t => t.Join(TimeSpan.FromSeconds(60)).ShouldBeTrue($"seed {seed}"));
            tx.Close();
            var received = await receivedTask.WaitAsync(TimeSpan.FromSeconds(60));

            received.Count.ShouldBe(received.Distinct().Count(), $"seed {seed}: an item was received twice");
            received.Order().ShouldBe(accepted.Order(), $"seed {seed}: accepted items and received items differ");
            (received.Count + refused).ShouldBe(producers * perProducer, $"seed {seed}");
            rx.Stats.ShouldBe(new ChannelStats(received.Count, received.Count, refused, 0, true), $"seed {seed}");
        }
    }

    [Fact]
    public async Task SeveralReceivers_EachItemReceivedExactlyOnce()
    {
        if (SingleReceiver)
        {
            return;
        }

        var (tx, rx) = Create<int>();
        const int items = 20_000;
        var receivers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            var got = new List<int>();
            try
            {
                while (true)
                {
                    got.Add(await rx.ReceiveAsync());
                }
            }
            catch (EndOfChannelException)
            {
            }

            return got;
        })).ToArray();

        await Task.Run(async () =>
        {
            for (var i = 0; i < items; i++)
            {
                await tx.SendAsync(i);
            }

            tx.Close();
        }).WaitAsync(TimeSpan.FromSeconds(60));
        var all = (await Task.WhenAll(receivers).WaitAsync(TimeSpan.FromSeconds(60))).SelectMany(x => x).ToList();

        all.Count.ShouldBe(items);
        all.Distinct().Count().ShouldBe(items);
        rx.Stats.ShouldBe(new ChannelStats(items, items, 0, 0, true));
    }
}

public sealed class UnboundedChannelTests : ObjectChannelTestBase
{
    protected override int? Capacity => null;

    protected override bool SingleReceiver => false;
}

public sealed class BoundedChannelTests : ObjectChannelTestBase
{
    protected override int? Capacity => 1024;

    protected override bool SingleReceiver => false;
}

public sealed class SingleReceiverChannelTests : ObjectChannelTestBase
{
    protected override int? Capacity => null;

    protected override bool SingleReceiver => true;

    [Fact]
    public async Task SecondWaitingReceive_Throws()
    {
        var (tx, rx) = Create<int>();
        var first = rx.ReceiveAsync().AsTask();

        await Should.ThrowAsync<InvalidOperationException>(rx.ReceiveAsync().AsTask());

        tx.Send(1);
        (await first.WaitAsync(Bound)).ShouldBe(1);
    }
}
