namespace MicroIo.Tests;

public class PriorityMailboxTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    private sealed record Job(string Name, int Priority);

    private static PriorityMailbox<Job> Create(LateSendPolicy lateSend = LateSendPolicy.Drop) => new(j => j.Priority, lateSend);

    [Fact]
    public void HigherKeysFirst_FifoAmongEqualKeys()
    {
        var mailbox = Create();
        mailbox.Submit(new Job("low1", 1));
        mailbox.Submit(new Job("high1", 5));
        mailbox.Submit(new Job("low2", 1));
        mailbox.Submit(new Job("high2", 5));
        mailbox.Submit(new Job("mid", 3));

        var order = new List<string>();
        while (mailbox.TryGet(out var job))
        {
            order.Add(job.Name);
        }

        order.ShouldBe(["high1", "high2", "mid", "low1", "low2"]);
        mailbox.Stats.ShouldBe(new ChannelStats(5, 5, 0, 0, false));
    }

    [Fact]
    public async Task Floor_HoldsBackAtOrBelow_DrainIgnoresIt()
    {
        var mailbox = Create();
        mailbox.Floor = 3;
        mailbox.Submit(new Job("three", 3));
        mailbox.Submit(new Job("four", 4));
        mailbox.Submit(new Job("one", 1));

        (await mailbox.GetAsync()).Name.ShouldBe("four");
        mailbox.TryGet(out _).ShouldBeFalse();
        mailbox.Stats.Queued.ShouldBe(2);

        mailbox.DrainNowait().Select(j => j.Name).ShouldBe(["three", "one"]);
    }

    [Fact]
    public async Task LoweringFloor_WakesWaitingReceiver()
    {
        var mailbox = Create();
        mailbox.Floor = 5;
        mailbox.Submit(new Job("held", 2));
        var get = mailbox.GetAsync().AsTask();
        get.IsCompleted.ShouldBeFalse();

        var lowerer = new Thread(() => mailbox.Floor = 1);
        lowerer.Start();

        (await get.WaitAsync(s_bound)).Name.ShouldBe("held");
        lowerer.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task LiftingFloor_WakesWaitingReceiver()
    {
        var mailbox = Create();
        mailbox.Floor = 10;
        mailbox.Submit(new Job("held", 2));
        var get = mailbox.GetAsync().AsTask();

        mailbox.Floor = null;

        (await get.WaitAsync(s_bound)).Name.ShouldBe("held");
    }

    [Fact]
    public async Task Close_ReleasesHeldItems_ThenEndIsFinal()
    {
        var mailbox = Create();
        mailbox.Submit(new Job("a", 9));
        mailbox.Submit(new Job("held", 0));
        mailbox.Floor = 0;
        mailbox.TryGet(out _).ShouldBeTrue();
        mailbox.TryGet(out _).ShouldBeFalse();

        mailbox.Close();

        var got = new List<string>();
        await foreach (var job in mailbox)
        {
            got.Add(job.Name);
        }

        got.ShouldBe(["held"]);
        mailbox.Floor = null;
        await Should.ThrowAsync<EndOfChannelException>(mailbox.GetAsync().AsTask());
        mailbox.Stats.ShouldBe(new ChannelStats(2, 2, 0, 0, true));
    }

    [Fact]
    public async Task Close_WakesReceiverWaitingOnHeldItem()
    {
        var mailbox = Create();
        mailbox.Floor = 5;
        mailbox.Submit(new Job("held", 1));
        var get = mailbox.GetAsync().AsTask();

        mailbox.Close();

        (await get.WaitAsync(s_bound)).Name.ShouldBe("held");
    }

    [Fact]
    public async Task Actor_OverFlooredMailbox_HandlesEverythingBeforeReturning()
    {
        var mailbox = Create();
        mailbox.Floor = 5;
        var handled = new List<string>();
        var actor = new ActorCore<Job>((job, ct) =>
        {
            handled.Add(job.Name);
            return Task.CompletedTask;
        }, mailbox);
        actor.Submit(new Job("low", 3));
        actor.Submit(new Job("high", 10));
        actor.Close();

        await actor.RunAsync().WaitAsync(s_bound);

        handled.ShouldBe(["high", "low"]);
        mailbox.Stats.Queued.ShouldBe(0);
    }

    [Fact]
    public async Task Fail_ThrownManyTimes_StackTraceDoesNotGrow()
    {
        var mailbox = Create();
        var failure = new IOException("x");
        mailbox.Fail(failure);
        await Should.ThrowAsync<IOException>(mailbox.GetAsync().AsTask());
        var length = failure.StackTrace?.Length ?? 0;

        for (var i = 0; i < 50; i++)
        {
            await Should.ThrowAsync<IOException>(mailbox.GetAsync().AsTask());
        }

        (failure.StackTrace?.Length ?? 0).ShouldBeLessThanOrEqualTo(length);
    }

    [Fact]
    public async Task Fail_DeliversThenThrowsOriginal()
    {
        var mailbox = Create();
        var failure = new IOException("x");
        mailbox.Submit(new Job("a", 1));
        var waiting = Create();
        var get = waiting.GetAsync().AsTask();

        mailbox.Fail(failure).ShouldBeTrue();
        waiting.Fail(failure);

        (await mailbox.GetAsync()).Name.ShouldBe("a");
        (await Should.ThrowAsync<IOException>(mailbox.GetAsync().AsTask())).ShouldBeSameAs(failure);
        (await Should.ThrowAsync<IOException>(get.WaitAsync(s_bound))).ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task Submit_WakesWaitingReceiver_AndCloseWakesWithEnd()
    {
        var mailbox = Create();
        var first = mailbox.GetAsync().AsTask();

        mailbox.Submit(new Job("x", 1));
        (await first.WaitAsync(s_bound)).Name.ShouldBe("x");

        var second = mailbox.GetAsync().AsTask();
        mailbox.Close();
        await Should.ThrowAsync<EndOfChannelException>(second.WaitAsync(s_bound));
    }

    [Fact]
    public void LateSubmit_PerPolicy()
    {
        var dropping = Create();
        dropping.Close();
        dropping.Submit(new Job("late", 1)).ShouldBeFalse();
        dropping.Stats.Dropped.ShouldBe(1);

        var throwing = Create(LateSendPolicy.Throw);
        throwing.Close();
        Should.Throw<ClosedResourceException>(() => throwing.Submit(new Job("late", 1)));
        throwing.Stats.Dropped.ShouldBe(1);
    }

    [Fact]
    public async Task GetAsync_Cancelled_Throws()
    {
        var mailbox = Create();
        using var cts = new CancellationTokenSource();
        var get = mailbox.GetAsync(cts.Token).AsTask();

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(get.WaitAsync(s_bound));
    }

    [Fact]
    public void BadArguments_Throw()
    {
        Should.Throw<ArgumentNullException>(() => new PriorityMailbox<int>(null!));
        Should.Throw<ArgumentOutOfRangeException>(() => new PriorityMailbox<int>(x => x, (LateSendPolicy)5));
        Should.Throw<ArgumentNullException>(() => Create().Fail(null!));
        Should.Throw<ArgumentOutOfRangeException>(() => Create().DrainNowait(-1));
    }

    [Fact]
    public async Task ConcurrentProducers_EveryItemOnceInPriorityOrderPerKey()
    {
        var mailbox = new PriorityMailbox<(int Key, int Seq, int Producer)>(x => x.Key);
        const int perProducer = 5_000;
        var producers = Enumerable.Range(0, 4).Select(p => new Thread(() =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                mailbox.Submit((i % 3, i, p));
            }
        })).ToList();
        var consumer = Task.Run(async () =>
        {
            var got = new List<(int Key, int Seq, int Producer)>();
            await foreach (var item in mailbox)
            {
                got.Add(item);
            }

            return got;
        });

        producers.ForEach(t => t.Start());
        producers.ForEach(t => t.Join(s_bound).ShouldBeTrue());
        mailbox.Close();
        var all = await consumer.WaitAsync(s_bound);

        all.Count.ShouldBe(4 * perProducer);
        all.Distinct().Count().ShouldBe(4 * perProducer);
        foreach (var group in all.GroupBy(x => (x.Key, x.Producer)))
        {
            group.Select(x => x.Seq).ShouldBeInOrder();
        }
    }
}
