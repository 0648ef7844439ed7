namespace MicroIo.Tests.Mutation;

/// <summary>
/// Which scopes are counted among those a checkpoint may find cancelled, and which hold the scope they were entered in,
/// read from each scope's own state (the internal <c>IsCounted</c> and <c>HeldByChildren</c>).
/// </summary>
/// <remarks>
/// <see cref="CheckpointNothingCancelledTests"/> checks the same cases through the process-wide count, in a fresh copy of
/// the assembly that mutation runs cannot see; these run in the shared process, where other tests move that count, so
/// they assert on the scopes themselves.
/// </remarks>
public sealed class CancelScopeHoldTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);

    [Fact]
    public void PlainScope_IsCountedFromItsCancelUntilItsExit()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            scope.IsCounted.ShouldBeFalse("nothing cancelled it");
            scope.Cancel();
            scope.IsCounted.ShouldBeTrue();
        }

        scope.IsCounted.ShouldBeFalse("it exited with nothing entered inside it");
        scope.Cancel("again, after the exit");
        scope.IsCounted.ShouldBeFalse("a scope that is neither active nor held is never counted");
    }

    [Fact]
    public void ScopeCancelledBeforeEntering_IsCountedOnlyWhileActive()
    {
        var scope = new CancelScope();
        scope.Cancel();
        scope.IsCounted.ShouldBeFalse();
        using (scope.Enter())
        {
            scope.IsCounted.ShouldBeTrue();
        }

        scope.IsCounted.ShouldBeFalse();
    }

    [Fact]
    public async Task ScopeListeningToACallersToken_IsCountedOnceTheTokenIsCancelled()
    {
        using var caller = new CancellationTokenSource();
        var scope = new CancelScope();
        var counted = new List<bool>();
        await scope.RunAsync(
            async _ =>
            {
                counted.Add(scope.IsCounted);
                await Task.Run(caller.Cancel).ConfigureAwait(false);
                counted.Add(scope.IsCounted);
            },
            caller.Token).WaitAsync(s_bound);

        counted.ShouldBe([false, true], "the link's callback counts it when the token is cancelled");
        scope.IsCounted.ShouldBeFalse();
    }

    [Fact]
    public async Task TaskGroupBodyThatNeverAsksForAToken_IsCountedOnceTheCallersTokenIsCancelled()
    {
        using var caller = new CancellationTokenSource();
        var counted = new List<bool>();
        await TaskGroup.RunAsync(
            async _ =>
            {
                var groupScope = CancelScope.Current!;
                counted.Add(groupScope.IsCounted);
                await Task.Run(caller.Cancel).ConfigureAwait(false);
                counted.Add(groupScope.IsCounted);
            },
            caller.Token).WaitAsync(s_bound);

        counted.ShouldBe([false, true]);
    }

    [Fact]
    public async Task Checkpoint_InAFlowWhoseScopesHaveAllExited_WhileAScopeElsewhereIsCancelled_PassesAndIsNotCancelled()
    {
        // The full check starts from the flow's innermost scope; here every scope of the flow has exited, so it finds none.
        ExecutionContext flow;
        using (new CancelScope().Enter())
        {
            flow = ExecutionContext.Capture()!;
        }

        using var elsewhere = new CancelledElsewhere();
        var cancelled = await Task.Run(() =>
        {
            var result = true;
            ExecutionContext.Run(flow, _ => result = Checkpoint.IsCancelled(), null);
            return result;
        }).WaitAsync(s_bound);
        cancelled.ShouldBeFalse();
    }

    [Fact]
    public void NestedScope_HoldsTheEnclosingOneUntilItExits()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        {
            using (inner.Enter())
            {
                outer.HeldByChildren.ShouldBe(1);
                inner.HeldByChildren.ShouldBe(0);
            }

            outer.HeldByChildren.ShouldBe(0);
        }
    }

    [Fact]
    public void CancelledScope_StaysCountedWhenTheLastScopeEnteredInsideItExits()
    {
        var outer = new CancelScope();
        using (outer.Enter())
        {
            outer.Cancel();
            using (new CancelScope().Enter())
            {
            }

            outer.HeldByChildren.ShouldBe(0);
            outer.IsCounted.ShouldBeTrue("it is still active, and checkpoints in it must still throw");
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }

        outer.IsCounted.ShouldBeFalse();
    }

    [Fact]
    public void ExitWhoseClockThrows_StillReleasesTheEnclosingScopeAndStopsCounting()
    {
        // The clock's code runs when the exit stops the deadline timer; an exception there must not leave the scope
        // counted, or the enclosing scope held, for the life of the process. The exit records the enclosing scope's
        // cancellation first, which counts the scope while it is still active.
        var clock = new ClockWithTimerDisposal(() => throw new InvalidOperationException("the clock failed"));
        var outer = new CancelScope();
        var inner = CancelScope.MoveOnAfter(TimeSpan.FromDays(1), clock);
        using (outer.Enter())
        {
            var entry = inner.Enter();
            outer.Cancel();
            Should.Throw<InvalidOperationException>(() => entry.Dispose());
            inner.IsCancellationRequested.ShouldBeTrue("the exit recorded the enclosing cancellation");
            inner.IsActive.ShouldBeFalse();
            inner.IsCounted.ShouldBeFalse();
            outer.HeldByChildren.ShouldBe(0);
        }
    }

    [Fact]
    public void EntryWhoseLinkCallbackThrows_ExitsTheScopeAgain_NothingStaysHeldOrCounted()
    {
        // The scope's token exists before it is entered, with a callback that throws; entering inside a cancelled scope
        // links the token, which runs the callback at once.
        var outer = new CancelScope();
        var inner = new CancelScope();
        inner.Token.Register(static () => throw new InvalidOperationException("the callback failed"));
        using (outer.Enter())
        {
            outer.Cancel();
            Should.Throw<AggregateException>(() => inner.Enter());
            inner.IsActive.ShouldBeFalse("an entry that throws leaves no active scope behind");
            CancelScope.Current.ShouldBeSameAs(outer);
            outer.HeldByChildren.ShouldBe(0);
            inner.IsCounted.ShouldBeFalse();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ExitedScopeHeldByAScopeInAFlowThatOutlivesIt_StaysCountedUntilThatScopeExits(bool cancelAfterItsExit)
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task outliving;
        using (outer.Enter())
        {
            outliving = await ScopeFlows.EnterInAnOutlivingFlowAsync(inner, exit.Task);
            if (!cancelAfterItsExit)
            {
                outer.Cancel();
            }
        }

        if (cancelAfterItsExit)
        {
            outer.Cancel();
        }

        outer.HeldByChildren.ShouldBe(1);
        outer.IsCounted.ShouldBeTrue("the scope entered inside it is still active and sees its cancellation");
        exit.SetResult();
        await outliving.WaitAsync(s_bound);
        outer.HeldByChildren.ShouldBe(0);
        outer.IsCounted.ShouldBeFalse();
    }

    [Fact]
    public async Task ScopeEnteredInAFlowAfterItsEnclosingScopeExitedCancelled_MakesThatScopeCountedAgain()
    {
        var outer = new CancelScope();
        ExecutionContext flow;
        using (outer.Enter())
        {
            flow = ExecutionContext.Capture()!;
            outer.Cancel();
        }

        outer.IsCounted.ShouldBeFalse();
        var inner = new CancelScope();
        var countedWhileInside = await Task.Run(() =>
        {
            var counted = false;
            ExecutionContext.Run(
                flow,
                _ =>
                {
                    using (inner.Enter())
                    {
                        counted = outer.IsCounted;
                    }
                },
                null);
            return counted;
        }).WaitAsync(s_bound);

        countedWhileInside.ShouldBeTrue();
        outer.IsCounted.ShouldBeFalse();
    }

    [Fact]
    public async Task ShieldRaisedAfterTheEnclosingCancel_RecordMakesTheScopeCountedWhileItIsHeld()
    {
        var outer = new CancelScope();
        var middle = new CancelScope();
        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task outliving;
        using (outer.Enter())
        {
            using (middle.Enter())
            {
                outer.Cancel();
                middle.Shield = true;
                outliving = await ScopeFlows.EnterInAnOutlivingFlowAsync(new CancelScope(), exit.Task);
            }
        }

        middle.IsCounted.ShouldBeTrue("its own record of the cancellation reaches the scope still active inside it");
        outer.IsCounted.ShouldBeFalse("nothing active holds it any more");
        exit.SetResult();
        await outliving.WaitAsync(s_bound);
        middle.IsCounted.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ScopeExitedWhileTheEnclosingOneIsCancelled_IsCountedWhileItIsHeld(bool withToken)
    {
        // With a token, the enclosing cancellation reaches the scope through its link (the token's callback); without
        // one, through the record its exit makes.
        var outer = new CancelScope();
        var middle = new CancelScope();
        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task outliving;
        using (outer.Enter())
        {
            using (middle.Enter())
            {
                if (withToken)
                {
                    _ = middle.Token;
                }

                outliving = await ScopeFlows.EnterInAnOutlivingFlowAsync(new CancelScope(), exit.Task);
                outer.Cancel();
                middle.IsCounted.ShouldBe(withToken, "the link's callback marks it; without a link only its exit records it");
            }
        }

        middle.IsCounted.ShouldBeTrue();
        exit.SetResult();
        await outliving.WaitAsync(s_bound);
        middle.IsCounted.ShouldBeFalse();
    }
}
