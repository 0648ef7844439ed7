using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class ScopeGroupTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void New_IsInactiveAndUnlatched()
    {
        var group = new ScopeGroup();

        group.IsActive.ShouldBeFalse();
        group.IsLatched.ShouldBeFalse();
        group.Cancel().ShouldBeFalse();
    }

    [Fact]
    public async Task Cancel_CancelsEveryActiveScope_AndEachCatchesItsOwn()
    {
        var group = new ScopeGroup();
        var a = group.CreateScope();
        var b = group.CreateScope();
        var idle = group.CreateScope();
        var bothWaiting = new CountdownEvent(2);

        var runA = a.RunAsync(async ct =>
        {
            bothWaiting.Signal();
            await Task.Delay(Timeout.Infinite, ct);
        });
        var runB = b.RunAsync(async ct =>
        {
            bothWaiting.Signal();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await Task.Run(() => bothWaiting.Wait(s_bound)).WaitAsync(s_bound);
        group.IsActive.ShouldBeTrue();

        group.Cancel("reconnect").ShouldBeTrue();

        (await runA.WaitAsync(s_bound)).ShouldBeFalse();
        (await runB.WaitAsync(s_bound)).ShouldBeFalse();
        a.CancelledCaught.ShouldBeTrue();
        b.CancelledCaught.ShouldBeTrue();
        a.Reason.ShouldBe("reconnect");
        idle.CancelCalled.ShouldBeFalse();
        group.IsActive.ShouldBeFalse();
    }

    [Fact]
    public async Task Cancel_WithLatch_LaterScopesStartCancelledUntilClear()
    {
        var group = new ScopeGroup();
        var before = group.CreateScope();

        group.Cancel("down", latch: true).ShouldBeFalse();
        group.IsLatched.ShouldBeTrue();
        var during = group.CreateScope();

        during.CancelCalled.ShouldBeTrue();
        during.Reason.ShouldBe("down");
        (await during.RunAsync(async ct => await Checkpoint.YieldAsync())).ShouldBeFalse();
        (await before.RunAsync(async ct => await Checkpoint.YieldAsync())).ShouldBeFalse();

        group.Clear();
        group.IsLatched.ShouldBeFalse();
        var after = group.CreateScope();
        (await after.RunAsync(async ct => await Checkpoint.YieldAsync())).ShouldBeTrue();
    }

    [Fact]
    public async Task Cancel_WithoutLatch_DoesNotAffectLaterScopes()
    {
        var group = new ScopeGroup();
        group.Cancel("once");

        var later = group.CreateScope();

        (await later.RunAsync(async ct => await Checkpoint.YieldAsync())).ShouldBeTrue();
    }

    [Fact]
    public async Task Scope_NestedInOuter_OuterCancelPassesThrough()
    {
        var group = new ScopeGroup();
        var outer = new CancelScope();
        var inner = group.CreateScope();

        var completed = await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                outer.Cancel();
                await Checkpoint.YieldAsync();
            });
        });

        completed.ShouldBeFalse();
        inner.CancelledCaught.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task CreateScope_UsesGroupTimeProviderForDeadlines()
    {
        var time = new FakeTimeProvider();
        var group = new ScopeGroup(time);
        var scope = group.CreateScope();
        scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(1);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async ct =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await started.Task.WaitAsync(s_bound);
        time.Advance(TimeSpan.FromSeconds(1));

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task LatchRacingEnter_EveryScopeEnteredAfterLatchIsCancelled()
    {
        for (var i = 0; i < 300; i++)
        {
            var group = new ScopeGroup();
            var scope = group.CreateScope();
            using var go = new ManualResetEventSlim();
            var latcher = new Thread(() =>
            {
                go.Wait();
                group.Cancel("latched", latch: true);
            });
            latcher.Start();

            go.Set();
            var completed = await scope.RunAsync(async ct =>
            {
                await Task.Run(() => latcher.Join(s_bound));
                await Checkpoint.YieldAsync();
            });

            // Whether the latch came before or during the scope, it must have cancelled it.
            completed.ShouldBeFalse($"iteration {i}");
        }
    }
}
