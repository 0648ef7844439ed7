using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class CheckpointTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void ThrowIfCancelled_OutsideAnyScope_DoesNothing()
    {
        Should.NotThrow(() => Checkpoint.ThrowIfCancelled());
    }

    [Fact]
    public void ThrowIfCancelled_GivenCancelledToken_Throws()
    {
        Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled(new CancellationToken(true)));
    }

    [Fact]
    public void IsCancelled_OutsideAnyScope_AnswersForTheTokenOnly()
    {
        Checkpoint.IsCancelled().ShouldBeFalse();
        Checkpoint.IsCancelled(new CancellationToken(true)).ShouldBeTrue();
    }

    [Fact]
    public void IsCancelled_AmbientScope_FollowsItsCancellationAndItsEnclosingScopes()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        using (inner.Enter())
        {
            // Asked twice while nothing is cancelled, so the second answer may come from the scope's quiet mark.
            Checkpoint.IsCancelled().ShouldBeFalse();
            Checkpoint.IsCancelled().ShouldBeFalse();
            outer.Cancel();
            Checkpoint.IsCancelled().ShouldBeTrue();
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
            inner.Shield = true;
            Checkpoint.IsCancelled().ShouldBeTrue("a cancellation that reached the scope stays when it is shielded later");
        }

        Checkpoint.IsCancelled().ShouldBeFalse();
    }

    [Fact]
    public void ThrowIfCancelled_AmbientScopeCancelled_Throws()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            Should.NotThrow(() => Checkpoint.ThrowIfCancelled());
            scope.Cancel();
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void ThrowIfCancelled_NothingCancelled_AllocatesNothing()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            Checkpoint.ThrowIfCancelled();
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                Checkpoint.ThrowIfCancelled(CancellationToken.None);
            }

            (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
        }
    }

    [Fact]
    public async Task YieldAsync_StopsInCancelledScope()
    {
        var scope = new CancelScope();
        var after = false;

        await scope.RunAsync(async _ =>
        {
            scope.Cancel();
            await Checkpoint.YieldAsync();
            after = true;
        });

        after.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task YieldAsync_Uncancelled_Completes()
    {
        await Checkpoint.YieldAsync().WaitAsync(s_bound);
    }

    [Fact]
    public async Task SleepAsync_StopsAtOnceWhenEnclosingScopeCancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var sleeping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async _ =>
            {
                sleeping.SetResult();
                await Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan);
            });
        });
        await sleeping.Task.WaitAsync(s_bound);
        outer.Cancel();

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task SleepAsync_WithTokenAndScope_EitherStopsIt()
    {
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var sleeping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async _ =>
        {
            sleeping.SetResult();
            await Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan, cts.Token);
        });
        await sleeping.Task.WaitAsync(s_bound);
        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
    }

    [Fact]
    public async Task SleepAsync_FakeTime_CompletesWhenAdvanced()
    {
        var time = new FakeTimeProvider();

        var sleep = Checkpoint.SleepAsync(TimeSpan.FromSeconds(5), time);
        sleep.IsCompleted.ShouldBeFalse();
        time.Advance(TimeSpan.FromSeconds(5));

        await sleep.WaitAsync(s_bound);
    }

    [Fact]
    public async Task SleepAsync_BadArguments_Throw()
    {
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => Checkpoint.SleepAsync(TimeSpan.FromSeconds(-1)));
        await Should.ThrowAsync<ArgumentNullException>(() => Checkpoint.SleepAsync(TimeSpan.Zero, null!));
    }

    [Fact]
    public async Task SleepAsync_TokenCancelled_ThrowsPlainOperationCanceledWithThatToken()
    {
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        Exception? caught = null;

        await scope.RunAsync(async _ =>
        {
            var sleep = Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan, cts.Token);
            await cts.CancelAsync();
            try
            {
                await sleep;
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });

        caught.ShouldNotBeNull().GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)caught).CancellationToken.ShouldBe(cts.Token);
    }
}
