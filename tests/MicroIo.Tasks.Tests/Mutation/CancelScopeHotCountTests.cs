namespace MicroIo.Tests.Mutation;

/// <summary>Runs the tests that read the process-wide count of cancelled, live scopes alone, so no other test moves it meanwhile.</summary>
[CollectionDefinition(nameof(HotCountRunsAlone), DisableParallelization = true)]
public sealed class HotCountRunsAlone;

/// <summary>
/// The process-wide count of cancelled, live scopes (the internal <c>HotCount</c>), read as a difference before and after
/// each step: scopes that other tests left behind stay as they were while these run alone.
/// </summary>
/// <remarks>
/// <see cref="CheckpointNothingCancelledTests"/> checks that the count is zero when it must be, in a fresh copy of the
/// assembly that mutation runs leave out; these check that each scope adds one to it, once, and takes it back.
/// </remarks>
[Collection(nameof(HotCountRunsAlone))]
public sealed class CancelScopeHotCountTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);

    [Fact]
    public void CancelledScope_AddsOneWhileActive_OnceHowEverOftenItIsCancelled()
    {
        var before = CancelScope.HotCount;
        var scope = new CancelScope();
        using (scope.Enter())
        {
            CancelScope.HotCount.ShouldBe(before);
            scope.Cancel();
            CancelScope.HotCount.ShouldBe(before + 1);
            scope.Cancel("again");
            scope.Deadline = DateTimeOffset.MinValue;
            CancelScope.HotCount.ShouldBe(before + 1);
        }

        CancelScope.HotCount.ShouldBe(before);
    }

    [Fact]
    public void ScopeCancelledBeforeEntering_AddsOneOnlyWhileActive()
    {
        var before = CancelScope.HotCount;
        var scope = new CancelScope();
        scope.Cancel();
        CancelScope.HotCount.ShouldBe(before);
        using (scope.Enter())
        {
            CancelScope.HotCount.ShouldBe(before + 1);
        }

        CancelScope.HotCount.ShouldBe(before);
    }

    [Fact]
    public void CancelledScopeWithScopesEnteredInsideIt_AddsOneUntilItAndThenTheyExit()
    {
        var before = CancelScope.HotCount;
        var outer = new CancelScope();
        using (outer.Enter())
        {
            outer.Cancel();
            using (new CancelScope().Enter())
            {
                CancelScope.HotCount.ShouldBe(before + 1, "only the cancelled scope counts");
            }

            CancelScope.HotCount.ShouldBe(before + 1);
        }

        CancelScope.HotCount.ShouldBe(before);
    }

    [Fact]
    public async Task CancelledScopeHeldByAFlowThatOutlivesIt_AddsOneUntilThatFlowsScopeExits()
    {
        var before = CancelScope.HotCount;
        var outer = new CancelScope();
        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task outliving;
        using (outer.Enter())
        {
            outliving = await ScopeFlows.EnterInAnOutlivingFlowAsync(new CancelScope(), exit.Task);
        }

        outer.Cancel();
        CancelScope.HotCount.ShouldBe(before + 1);
        exit.SetResult();
        await outliving.WaitAsync(s_bound);
        CancelScope.HotCount.ShouldBe(before);
    }

    [Fact]
    public async Task CancelRacingTheExit_TheCountComesBackEveryTime()
    {
        var before = CancelScope.HotCount;
        for (var i = 0; i < 2_000; i++)
        {
            var scope = new CancelScope();
            using var start = new Barrier(2);
            Task cancel;
            using (scope.Enter())
            {
                cancel = ScopeFlows.CancelAtTheBarrier(() => scope.Cancel(), start);
                start.SignalAndWait(s_bound).ShouldBeTrue();
            }

            await cancel.WaitAsync(s_bound);
            CancelScope.HotCount.ShouldBe(before, $"iteration {i}");
        }
    }
}
