namespace MicroIo.Tests.Mutation;

/// <summary>PriorityMailbox contract details that the unit tests left open (found by Stryker survivors): late-submit errors, counters, cancellation and several waiters.</summary>
public sealed class PriorityMailboxMutationTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private static PriorityMailbox<int> Create(LateSendPolicy lateSend = LateSendPolicy.Drop) => new(i => i, lateSend);

    [Fact]
    public void Submit_AfterFailWithThrowPolicy_ThrowsClosedCarryingTheFailure()
    {
        var mailbox = Create(LateSendPolicy.Throw);
        var failure = new IOException("handler broke");
        mailbox.Fail(failure);

        var ex = Should.Throw<ClosedResourceException>(() => mailbox.Submit(1));

        ex.InnerException.ShouldBeSameAs(failure);
        ex.Message.ShouldContain("failed");
        mailbox.Stats.Dropped.ShouldBe(1);
    }

    [Fact]
    public void Submit_AfterCloseWithThrowPolicy_ThrowsClosedWithoutInnerException()
    {
        var mailbox = Create(LateSendPolicy.Throw);
        mailbox.Close();

        var ex = Should.Throw<ClosedResourceException>(() => mailbox.Submit(1));

        ex.InnerException.ShouldBeNull();
        ex.Message.ShouldContain("closed");
        mailbox.Stats.Dropped.ShouldBe(1);
    }

    [Fact]
    public void DrainNowait_SomeOfTheQueue_CountsTheDrainedItemsAsReceived()
    {
        var mailbox = Create();
        mailbox.Submit(1);
        mailbox.Submit(2);
        mailbox.Submit(3);

        var drained = mailbox.DrainNowait(2);

        drained.ShouldBe([3, 2]);
        mailbox.Stats.ShouldBe(new ChannelStats(3, 2, 0, 1, false));
    }

    [Fact]
    public void FloorAndIsClosed_AfterSetAndClose_ReadBackWhatWasSet()
    {
        var mailbox = Create();
        mailbox.Floor.ShouldBeNull();
        mailbox.IsClosed.ShouldBeFalse();

        mailbox.Floor = 3;
        mailbox.Close();

        mailbox.Floor.ShouldBe(3);
        mailbox.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public async Task WaitToGetAsync_CancelledTokenWithAnItemReady_ThrowsAndKeepsTheItem()
    {
        var mailbox = Create();
        mailbox.Submit(1);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var wait = mailbox.WaitToGetAsync(cts.Token).AsTask();

        (await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(Bound))).CancellationToken.ShouldBe(cts.Token);
        mailbox.Stats.Queued.ShouldBe(1);
    }

    [Fact]
    public async Task WaitToGetAsync_TwoWaiters_OneSubmitWakesBoth()
    {
        var mailbox = Create();
        var first = mailbox.WaitToGetAsync().AsTask();
        var second = mailbox.WaitToGetAsync().AsTask();
        first.IsCompleted.ShouldBeFalse();
        second.IsCompleted.ShouldBeFalse();

        mailbox.Submit(1);

        (await first.WaitAsync(Bound)).ShouldBeTrue();
        (await second.WaitAsync(Bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task GetAsyncEnumerator_CancelledAfterFirstItem_StopsAndLeavesTheRestQueued()
    {
        var mailbox = Create();
        mailbox.Submit(3);
        mailbox.Submit(2);
        mailbox.Submit(1);
        using var cts = new CancellationTokenSource();
        var received = new List<int>();

        var enumerate = Task.Run(async () =>
        {
            await foreach (var item in mailbox.WithCancellation(cts.Token))
            {
                received.Add(item);
                await cts.CancelAsync();
            }
        });

        await Should.ThrowAsync<OperationCanceledException>(enumerate.WaitAsync(Bound));
        received.ShouldBe([3]);
        mailbox.Stats.Queued.ShouldBe(2);
    }

    [Fact]
    public async Task WaitToGetAsync_AmbientScopeCancelledWhileCallerTokenLive_ThrowsWithTheScopesToken()
    {
        var mailbox = Create();
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? caught = null;

        var run = scope.RunAsync(async _ =>
        {
            var wait = mailbox.WaitToGetAsync(cts.Token).AsTask();
            waiting.SetResult();
            try
            {
                await wait;
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });
        await waiting.Task.WaitAsync(Bound);
        scope.Cancel();
        await run.WaitAsync(Bound);

        caught.ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(scope.Token);
    }

    [Fact]
    public async Task WaitToGetAsync_CallerTokenCancelledInsideLiveScope_ThrowsWithTheCallersToken()
    {
        var mailbox = Create();
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? caught = null;

        var run = scope.RunAsync(async _ =>
        {
            var wait = mailbox.WaitToGetAsync(cts.Token).AsTask();
            waiting.SetResult();
            try
            {
                await wait.WaitAsync(Bound);
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });
        await waiting.Task.WaitAsync(Bound);
        await cts.CancelAsync();

        (await run.WaitAsync(Bound)).ShouldBeTrue();
        caught.ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        scope.IsCancellationRequested.ShouldBeFalse();
    }
}
