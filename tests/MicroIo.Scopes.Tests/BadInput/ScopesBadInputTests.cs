namespace MicroIo.Tests.BadInput;

/// <summary>Gives every public member of MicroIo.Scopes bad input, and checks the documented exception and the state after it.</summary>
public class ScopesBadInputTests
{
    public static TheoryData<TimeSpan> BadTimeouts => new()
    {
        TimeSpan.FromMilliseconds(-2),
        TimeSpan.FromTicks(-1),
        TimeSpan.MinValue,
        TimeSpan.FromMilliseconds((double)int.MaxValue + 1),
        TimeSpan.MaxValue,
    };

    [Theory]
    [MemberData(nameof(BadTimeouts))]
    public void CloseScopeWait_BadTimeout_ThrowsAndScopeStaysUsable(TimeSpan timeout)
    {
        var scope = new CloseScope();

        var ex = Should.Throw<ArgumentOutOfRangeException>(() => scope.Wait(timeout));
        Should.Throw<ArgumentOutOfRangeException>(() => scope.Wait(timeout, CancellationToken.None)).ParamName.ShouldBe("timeout");

        ex.ParamName.ShouldBe("timeout");
        scope.IsClosed.ShouldBeFalse();
        scope.Close("ok").ShouldBeTrue();
        scope.Wait(TimeSpan.Zero).ShouldBeTrue();
    }

    [Theory]
    [MemberData(nameof(BadTimeouts))]
    public void CloseScopeWait_BadTimeoutOnClosedScope_StillThrows(TimeSpan timeout)
    {
        var scope = new CloseScope();
        scope.Close();

        Should.Throw<ArgumentOutOfRangeException>(() => scope.Wait(timeout));
    }

    [Fact]
    public void CloseScopeWait_InfiniteAndZeroAndMaxTimeouts_AreAccepted()
    {
        var scope = new CloseScope();

        scope.Wait(TimeSpan.Zero).ShouldBeFalse();
        scope.Wait(TimeSpan.FromMilliseconds(1)).ShouldBeFalse();
        scope.Close();

        scope.Wait(Timeout.InfiniteTimeSpan).ShouldBeTrue();
        scope.Wait(TimeSpan.FromMilliseconds(int.MaxValue)).ShouldBeTrue();
    }

    [Fact]
    public void CloseScopeFail_Null_ThrowsAndScopeStaysOpen()
    {
        var scope = new CloseScope();

        Should.Throw<ArgumentNullException>(() => scope.Fail(null!)).ParamName.ShouldBe("exception");

        scope.IsClosed.ShouldBeFalse();
        scope.Token.IsCancellationRequested.ShouldBeFalse();
        scope.Fail(new InvalidOperationException("real")).ShouldBeTrue();
        scope.IsFailed.ShouldBeTrue();
    }

    [Fact]
    public void CloseScopeFail_NullAfterClose_StillThrowsArgumentNull()
    {
        var scope = new CloseScope();
        scope.Close("done");

        Should.Throw<ArgumentNullException>(() => scope.Fail(null!));

        scope.Reason.ShouldBe("done");
        scope.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void CloseScopeClose_Twice_SecondReturnsFalseAndKeepsFirstState()
    {
        var scope = new CloseScope();
        var first = new InvalidOperationException("first");

        scope.Fail(first, "first").ShouldBeTrue();
        scope.Close("second").ShouldBeFalse();
        scope.Fail(new InvalidOperationException("third")).ShouldBeFalse();

        scope.Reason.ShouldBe("first");
        scope.Exception.ShouldBeSameAs(first);
    }

    [Fact]
    public void CloseScopeFail_EmptyReason_UsesExceptionMessage()
    {
        var scope = new CloseScope();

        scope.Fail(new InvalidOperationException("from message"), string.Empty);

        scope.Reason.ShouldBe("from message");
    }

    [Fact]
    public async Task CloseScopeClose_ThrowingTokenCallback_ThrowsAggregateButScopeIsClosedAndWaitersWake()
    {
        var scope = new CloseScope();
        var wait = scope.WaitAsync();
        scope.Token.Register(() => throw new InvalidOperationException("callback"));

        var ex = Should.Throw<AggregateException>(() => scope.Close("closing"));

        ex.InnerExceptions.ShouldHaveSingleItem().Message.ShouldBe("callback");
        scope.IsClosed.ShouldBeTrue();
        scope.Reason.ShouldBe("closing");
        await wait.WaitAsync(StressRun.HangBound);
        scope.Close().ShouldBeFalse();
    }

    [Fact]
    public async Task CloseScopeWaitAsync_CancelledToken_ThrowsAndScopeStaysUsable()
    {
        var scope = new CloseScope();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(() => scope.WaitAsync(cts.Token));
        scope.Wait(cts.Token).ShouldBeFalse();
        scope.Wait(TimeSpan.FromSeconds(1), cts.Token).ShouldBeFalse();

        scope.IsClosed.ShouldBeFalse();
        scope.Close();
        scope.Wait(cts.Token).ShouldBeTrue();
        await scope.WaitAsync(cts.Token);
    }

    [Fact]
    public void CloseScopeThrowIfClosed_OpenThenClosedThenFailed_ThrowsDocumentedTypes()
    {
        var open = new CloseScope();
        open.ThrowIfClosed();

        var closed = new CloseScope();
        closed.Close("why");
        Should.Throw<ClosedResourceException>(closed.ThrowIfClosed).Message.ShouldBe("why");

        var failed = new CloseScope();
        var cause = new IOException("io");
        failed.Fail(cause);
        var broken = Should.Throw<BrokenResourceException>(failed.ThrowIfClosed);
        broken.InnerException.ShouldBeSameAs(cause);
        broken.Message.ShouldBe("io");
    }

    [Fact]
    public void CloseScopeThrowIfClosed_ClosedWithExceptionThroughClose_ThrowsBroken()
    {
        var scope = new CloseScope();
        var cause = new IOException("io");

        scope.Close(null, cause);

        scope.IsFailed.ShouldBeTrue();
        Should.Throw<BrokenResourceException>(scope.ThrowIfClosed).Message.ShouldBe("io");
    }

    [Fact]
    public void WorkTrackerDone_WithoutAdd_ThrowsAndCountStaysZero()
    {
        var tracker = new WorkTracker();

        Should.Throw<InvalidOperationException>(tracker.Done);

        tracker.Count.ShouldBe(0);
        tracker.IsBusy.ShouldBeFalse();
        tracker.Add();
        tracker.Count.ShouldBe(1);
        tracker.Done();
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeTrue();
    }

    [Fact]
    public void WorkTrackerDone_MoreThanAdd_ThrowsOnTheExtraAndStaysAtZero()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        tracker.Done();

        Should.Throw<InvalidOperationException>(tracker.Done);

        tracker.Count.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(BadTimeouts))]
    public void WorkTrackerWaitIdle_BadTimeout_ThrowsAndTrackerStaysUsable(TimeSpan timeout)
    {
        var tracker = new WorkTracker();
        tracker.Add();

        Should.Throw<ArgumentOutOfRangeException>(() => tracker.WaitIdle(timeout)).ParamName.ShouldBe("timeout");

        tracker.Count.ShouldBe(1);
        tracker.Done();
        tracker.WaitIdle(Timeout.InfiniteTimeSpan).ShouldBeTrue();
    }

    [Fact]
    public async Task WorkTrackerWaitIdle_CancelledTokenWhileBusy_ThrowsOperationCanceled()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Should.Throw<OperationCanceledException>(() => tracker.WaitIdle(Timeout.InfiniteTimeSpan, cts.Token));
        await Should.ThrowAsync<OperationCanceledException>(() => tracker.WaitIdleAsync(cts.Token));

        tracker.Count.ShouldBe(1);
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeFalse();
        tracker.Done();
        await tracker.WaitIdleAsync(CancellationToken.None);
    }

    [Fact]
    public void WorkTrackerTrack_DisposedTwice_EndsOnlyOnce()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        var handle = tracker.Track();

        handle.Dispose();
        handle.Dispose();

        tracker.Count.ShouldBe(1);
        tracker.IsBusy.ShouldBeTrue();
    }

    [Fact]
    public async Task WorkTrackerWaitIdle_BusyThenIdleAgain_NewWaitersWaitForTheNewWork()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        var first = tracker.WaitIdleAsync();
        tracker.Done();
        await first.WaitAsync(StressRun.HangBound);

        tracker.Add();
        tracker.Add();
        var second = tracker.WaitIdleAsync();
        tracker.Done();

        second.IsCompleted.ShouldBeFalse();
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeFalse();
        tracker.Done();
        await second.WaitAsync(StressRun.HangBound);
    }

    [Fact]
    public void Exceptions_Constructors_KeepMessageAndInner()
    {
        var inner = new IOException("inner");

        new ClosedResourceException().Message.ShouldNotBeNullOrEmpty();
        new ClosedResourceException("m").Message.ShouldBe("m");
        new ClosedResourceException("m", inner).InnerException.ShouldBeSameAs(inner);
        new BrokenResourceException().Message.ShouldNotBeNullOrEmpty();
        new BrokenResourceException("m").Message.ShouldBe("m");
        new BrokenResourceException("m", inner).InnerException.ShouldBeSameAs(inner);
        new EndOfChannelException().Message.ShouldNotBeNullOrEmpty();
        new EndOfChannelException("m").Message.ShouldBe("m");
        new EndOfChannelException("m", inner).InnerException.ShouldBeSameAs(inner);
    }
}
