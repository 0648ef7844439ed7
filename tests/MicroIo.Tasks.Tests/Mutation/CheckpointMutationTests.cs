using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// Checkpoint contract details that the unit tests left open (found by Stryker survivors): that YieldAsync checks, yields
/// and checks again, argument checks before cancellation, which token stops a sleep, and a sleep that must not return
/// normally once cancelled.
/// </summary>
public sealed class CheckpointMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void YieldAsync_TokenAlreadyCancelled_EndsCancelledWithoutYielding()
    {
        ManualSynchronizationContext.Run(context =>
        {
            var cancelled = new CancellationToken(canceled: true);

            var yield = Checkpoint.YieldAsync(cancelled);

            yield.IsCanceled.ShouldBeTrue();
            context.Pending.ShouldBe(0);
        });
    }

    [Fact]
    public void YieldAsync_PostsItsContinuationToTheCurrentSynchronizationContext()
    {
        ManualSynchronizationContext.Run(context =>
        {
            var yield = Checkpoint.YieldAsync();

            yield.IsCompleted.ShouldBeFalse();
            context.Pending.ShouldBe(1);
            context.RunPending();
            yield.IsCompletedSuccessfully.ShouldBeTrue();
        });
    }

    [Fact]
    public void YieldAsync_TokenCancelledWhileYielded_EndsCancelledWithThatToken()
    {
        ManualSynchronizationContext.Run(context =>
        {
            using var cts = new CancellationTokenSource();

            var yield = Checkpoint.YieldAsync(cts.Token);
            yield.IsCompleted.ShouldBeFalse();
            cts.Cancel();
            context.RunPending();

            yield.IsCanceled.ShouldBeTrue();
            var ex = Should.Throw<OperationCanceledException>(() => yield.GetAwaiter().GetResult());
            ex.CancellationToken.ShouldBe(cts.Token);
        });
    }

    [Fact]
    public void YieldAsync_AmbientScopeCancelledWhileYielded_EndsCancelled()
    {
        ManualSynchronizationContext.Run(context =>
        {
            var scope = new CancelScope();
            Task yield;
            using (scope.Enter())
            {
                yield = Checkpoint.YieldAsync();
                yield.IsCompleted.ShouldBeFalse();
                scope.Cancel();
                context.RunPending();
            }

            yield.IsCanceled.ShouldBeTrue();
        });
    }

    [Fact]
    public async Task SleepAsync_NullClock_ThrowsArgumentNullEvenWhenAlreadyCancelled()
    {
        var ex = await Should.ThrowAsync<ArgumentNullException>(
            () => Checkpoint.SleepAsync(TimeSpan.FromSeconds(1), null!, new CancellationToken(canceled: true)));

        ex.ParamName.ShouldBe("timeProvider");
    }

    [Fact]
    public async Task SleepAsync_WithCancellableTokenInsideAScope_StopsAtOnceWhenTheScopeIsCancelled()
    {
        var time = new FakeTimeProvider();
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        Exception? caught = null;

        var completed = await scope.RunAsync(async _ =>
        {
            var sleep = Checkpoint.SleepAsync(TimeSpan.FromHours(1), time, cts.Token);
            scope.Cancel();
            try
            {
                // No time passes: only the scope's cancellation can end the sleep.
                await sleep.WaitAsync(s_bound);
            }
            catch (Exception ex)
            {
                caught = ex;
                throw;
            }
        });

        completed.ShouldBeFalse();
        caught.ShouldNotBeNull().GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)caught).CancellationToken.ShouldBe(scope.Token);
        cts.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task SleepAsync_StoppedByAScopeThatHasSinceExited_StillEndsCancelled()
    {
        var time = new FakeTimeProvider();
        var scope = new CancelScope();

        // Its own flow, so that the scope left entered in it stays out of the test's flow.
        var sleep = await Task.Run(async () =>
        {
            var entry = scope.Enter();
            var sleeping = Checkpoint.SleepAsync(TimeSpan.FromHours(1), time);

            // A child flow sees the scope as current, so it may exit it; this flow then has no current scope.
            await Task.Run(entry.Dispose);
            CancelScope.Current.ShouldBeNull();
            return sleeping;
        }).WaitAsync(s_bound);
        scope.IsActive.ShouldBeFalse();
        sleep.IsCompleted.ShouldBeFalse();

        scope.Cancel("after exit");

        var ex = await Caught.ExceptionAsync(sleep);
        ex.ShouldBeAssignableTo<OperationCanceledException>();
        sleep.IsCanceled.ShouldBeTrue();
    }

    [Fact]
    public async Task SleepAsync_DelayElapsingAsTheTokenIsCancelled_ReportsTheCancellation()
    {
        using var cts = new CancellationTokenSource();
        var time = new ElapseAtOnceTimeProvider(cts.Cancel);

        var ex = await Caught.ExceptionAsync(Checkpoint.SleepAsync(TimeSpan.FromSeconds(1), time, cts.Token));

        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(cts.Token);
    }

    [Fact]
    public async Task SleepAsync_LongestFiniteDelay_IsAccepted()
    {
        var time = new FakeTimeProvider();
        var longest = TimeSpan.FromMilliseconds(int.MaxValue);

        var sleep = Checkpoint.SleepAsync(longest, time);
        sleep.IsCompleted.ShouldBeFalse();
        time.Advance(longest);

        await sleep.WaitAsync(s_bound);
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => Checkpoint.SleepAsync(longest + TimeSpan.FromMilliseconds(1), time));
    }
}
