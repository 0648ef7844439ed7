namespace MicroIo.Tests.Mutation;

/// <summary>ActorCore contract details that the unit tests left open (found by Stryker survivors): the mailbox it is given, and what counts as a cancellation.</summary>
public sealed class ActorCoreMutationTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Constructor_SerialWithMailbox_RunsFromThatMailbox()
    {
        var mailbox = new PriorityMailbox<int>(i => i);
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, _) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        }, mailbox);
        mailbox.Submit(1);
        mailbox.Submit(3);
        mailbox.Submit(2);
        mailbox.Close();

        await actor.RunAsync().WaitAsync(Bound);

        actor.Mailbox.ShouldBeSameAs(mailbox);
        handled.ShouldBe([3, 2, 1]);
    }

    [Fact]
    public async Task Constructor_ConcurrentWithMailbox_RunsFromThatMailbox()
    {
        var mailbox = new PriorityMailbox<int>(i => i);
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, _, _) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        }, mailbox);
        mailbox.Submit(1);
        mailbox.Submit(3);
        mailbox.Close();

        await actor.RunAsync().WaitAsync(Bound);

        actor.Mailbox.ShouldBeSameAs(mailbox);
        handled.ShouldBe([3, 1]);
    }

    [Fact]
    public async Task RunAsync_SerialHandlerThrowsAfterCancellingTheToken_FailsTheMailboxWithThatException()
    {
        using var cts = new CancellationTokenSource();
        var failure = new IOException("handler broke");
        var actor = new ActorCore<int>(async (_, _) =>
        {
            await cts.CancelAsync();
            throw failure;
        });
        actor.Submit(1);
        actor.Submit(2);

        var run = actor.RunAsync(cts.Token);

        (await Should.ThrowAsync<IOException>(run.WaitAsync(Bound))).ShouldBeSameAs(failure);
        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Drain().ShouldBe([2]);
        (await Should.ThrowAsync<IOException>(actor.Mailbox.GetAsync().AsTask().WaitAsync(Bound))).ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task RunAsync_SerialHandlerCancelsTheAmbientScope_StopsWithoutFailingTheMailbox()
    {
        var scope = new CancelScope();
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, _) =>
        {
            handled.Add(item);
            scope.Cancel();
            Checkpoint.ThrowIfCancelled();
            return Task.CompletedTask;
        });
        actor.Submit(1);
        actor.Submit(2);

        var completed = await scope.RunAsync(_ => actor.RunAsync()).WaitAsync(Bound);

        completed.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeTrue();
        handled.ShouldBe([1]);
        actor.Mailbox.IsClosed.ShouldBeFalse();
        actor.Mailbox.Stats.Queued.ShouldBe(1);
    }

    [Fact]
    public async Task RunAsync_SerialTokenCancelledByAHandler_StopsBeforeTheNextQueuedItem()
    {
        using var cts = new CancellationTokenSource();
        var handled = new List<int>();
        var actor = new ActorCore<int>(async (item, _) =>
        {
            handled.Add(item);
            await cts.CancelAsync();
        });
        actor.Submit(1);
        actor.Submit(2);
        actor.Submit(3);

        var run = actor.RunAsync(cts.Token);

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(Bound));
        handled.ShouldBe([1]);
        actor.Mailbox.IsClosed.ShouldBeFalse();
        actor.Drain().ShouldBe([2, 3]);
    }
}
