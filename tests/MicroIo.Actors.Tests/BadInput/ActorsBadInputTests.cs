namespace MicroIo.Tests.BadInput;

/// <summary>Gives every public member of MicroIo.Actors bad input, and checks the documented exception and the state after it.</summary>
public class ActorsBadInputTests
{
    public static TheoryData<Func<IMailbox<int>>> Mailboxes => new()
    {
        () => new Mailbox<int>(),
        () => new PriorityMailbox<int>(i => i),
    };

    [Fact]
    public void Constructors_NullOrUndefined_ThrowTheDocumentedExceptions()
    {
        Should.Throw<ArgumentNullException>(() => new ActorCore<int>((Func<int, CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => new ActorCore<int>((Func<int, Action, CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => new PriorityMailbox<int>(null!));
        Should.Throw<ArgumentOutOfRangeException>(() => new Mailbox<int>((LateSendPolicy)9));
        Should.Throw<ArgumentOutOfRangeException>(() => new PriorityMailbox<int>(i => i, (LateSendPolicy)9));
    }

    [Theory]
    [MemberData(nameof(Mailboxes))]
    public async Task Mailbox_BadArgumentsAndUseAfterClose_ThrowDocumentedAndStayConsistent(Func<IMailbox<int>> create)
    {
        var mailbox = create();
        mailbox.Submit(1).ShouldBeTrue();

        Should.Throw<ArgumentNullException>(() => mailbox.Fail(null!));
        Should.Throw<ArgumentOutOfRangeException>(() => mailbox.DrainNowait(-1));

        mailbox.IsClosed.ShouldBeFalse();
        mailbox.Close().ShouldBeTrue();
        mailbox.Close().ShouldBeFalse();
        mailbox.Fail(new IOException()).ShouldBeFalse();
        mailbox.Submit(2).ShouldBeFalse();
        (await mailbox.GetAsync()).ShouldBe(1);
        await Should.ThrowAsync<EndOfChannelException>(() => mailbox.GetAsync().AsTask());
        (await mailbox.WaitToGetAsync()).ShouldBeFalse();
        mailbox.TryGet(out _).ShouldBeFalse();
        mailbox.Stats.Dropped.ShouldBe(1);
    }

    [Theory]
    [MemberData(nameof(Mailboxes))]
    public async Task Mailbox_Failed_DeliversWhatWasQueuedThenTheSameException(Func<IMailbox<int>> create)
    {
        var mailbox = create();
        var failure = new IOException("failed");
        mailbox.Submit(1);

        mailbox.Fail(failure).ShouldBeTrue();

        (await mailbox.GetAsync()).ShouldBe(1);
        (await Should.ThrowAsync<IOException>(() => mailbox.GetAsync().AsTask())).ShouldBeSameAs(failure);
        (await Should.ThrowAsync<IOException>(() => mailbox.WaitToGetAsync().AsTask())).ShouldBeSameAs(failure);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MailboxThrowPolicy_SubmitAfterClose_ThrowsClosedAndCounts(bool priority)
    {
        IMailbox<int> mailbox = priority ? new PriorityMailbox<int>(i => i, LateSendPolicy.Throw) : new Mailbox<int>(LateSendPolicy.Throw);
        mailbox.Close();

        Should.Throw<ClosedResourceException>(() => mailbox.Submit(1));

        mailbox.Stats.Dropped.ShouldBe(1);
        await Should.ThrowAsync<EndOfChannelException>(() => mailbox.GetAsync().AsTask());
    }

    [Fact]
    public async Task PriorityMailboxSubmit_KeySelectorThrows_PropagatesAndNothingIsQueued()
    {
        var failure = new IOException("key");
        var mailbox = new PriorityMailbox<int>(i => i < 0 ? throw failure : i);

        Should.Throw<IOException>(() => mailbox.Submit(-1)).ShouldBeSameAs(failure);

        mailbox.Stats.Sent.ShouldBe(0);
        mailbox.Submit(1).ShouldBeTrue();
        (await mailbox.GetAsync()).ShouldBe(1);
    }

    [Fact]
    public async Task ActorCoreRunAsync_Twice_ThrowsInvalidOperationAndTheFirstRunGoesOn()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var actor = new ActorCore<int>(async (_, _) => await gate.Task);
        actor.Submit(1);
        var first = actor.RunAsync();

        await Should.ThrowAsync<InvalidOperationException>(() => actor.RunAsync());

        gate.SetResult();
        actor.Close();
        await first.WaitAsync(StressRun.HangBound);
        Should.Throw<ArgumentOutOfRangeException>(() => actor.Drain(-1));
        Should.Throw<ArgumentNullException>(() => actor.Fail(null!));
    }

    [Fact]
    public async Task ActorCoreRunAsync_CancelledToken_ThrowsOperationCanceledAndTheActorCanRunAgain()
    {
        var handled = 0;
        var actor = new ActorCore<int>((_, _) =>
        {
            handled++;
            return Task.CompletedTask;
        });
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(() => actor.RunAsync(cts.Token));

        actor.Submit(1);
        actor.Close();
        await actor.RunAsync();
        handled.ShouldBe(1);
    }

    [Fact]
    public async Task ActorCore_SerialHandlerThrows_RunAsyncThrowsTheOriginalAndTheRestStaysForDrain()
    {
        var failure = new IOException("handler");
        var actor = new ActorCore<int>((item, _) => item == 2 ? throw failure : Task.CompletedTask);
        foreach (var i in new[] { 1, 2, 3, 4 })
        {
            actor.Submit(i);
        }

        (await Should.ThrowAsync<IOException>(() => actor.RunAsync())).ShouldBeSameAs(failure);

        actor.Drain().ShouldBe([3, 4]);
        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Submit(5).ShouldBeFalse();
    }
}
