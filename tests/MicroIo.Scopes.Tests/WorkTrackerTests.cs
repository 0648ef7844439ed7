namespace MicroIo.Tests;

public class WorkTrackerTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void New_IsIdle()
    {
        var tracker = new WorkTracker();

        tracker.Count.ShouldBe(0);
        tracker.IsBusy.ShouldBeFalse();
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeTrue();
        tracker.WaitIdleAsync().IsCompletedSuccessfully.ShouldBeTrue();
    }

    [Fact]
    public void AddAndDone_TrackCount()
    {
        var tracker = new WorkTracker();

        tracker.Add();
        tracker.Add();

        tracker.Count.ShouldBe(2);
        tracker.IsBusy.ShouldBeTrue();

        tracker.Done();
        tracker.Count.ShouldBe(1);
        tracker.Done();
        tracker.Count.ShouldBe(0);
        tracker.IsBusy.ShouldBeFalse();
    }

    [Fact]
    public void Done_WithoutAdd_ThrowsAndLeavesCountIntact()
    {
        var tracker = new WorkTracker();

        Should.Throw<InvalidOperationException>(tracker.Done);
        tracker.Count.ShouldBe(0);

        tracker.Add();
        tracker.Done();
        Should.Throw<InvalidOperationException>(tracker.Done);
        tracker.Count.ShouldBe(0);
        tracker.IsBusy.ShouldBeFalse();
    }

    [Fact]
    public void Done_MoreThanAdded_StillUsable()
    {
        var tracker = new WorkTracker();
        Should.Throw<InvalidOperationException>(tracker.Done);

        tracker.Add();

        tracker.Count.ShouldBe(1);
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeFalse();
        tracker.Done();
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeTrue();
    }

    [Fact]
    public void Track_DisposeReleases_AndDoubleDisposeIsHarmless()
    {
        var tracker = new WorkTracker();

        var handle = tracker.Track();
        tracker.Count.ShouldBe(1);
        handle.Dispose();
        handle.Dispose();

        tracker.Count.ShouldBe(0);
    }

    [Fact]
    public void Track_ReleasesOnException()
    {
        var tracker = new WorkTracker();

        Should.Throw<IOException>(() =>
        {
            using (tracker.Track())
            {
                tracker.Count.ShouldBe(1);
                throw new IOException("work failed");
            }
        });

        tracker.Count.ShouldBe(0);
        tracker.IsBusy.ShouldBeFalse();
    }

    [Fact]
    public async Task Track_ReleasesOnExceptionInAsyncWork()
    {
        var tracker = new WorkTracker();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var handle = tracker.Track();
        var work = Task.Run(async () =>
        {
            using (handle)
            {
                await gate.Task;
                throw new IOException("async failure");
            }
        });

        var idle = tracker.WaitIdleAsync();
        idle.IsCompleted.ShouldBeFalse();
        gate.SetResult();

        await Should.ThrowAsync<IOException>(work.WaitAsync(s_bound));
        await idle.WaitAsync(s_bound);
        tracker.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitIdleAsync_CompletesWhenLastDone()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        tracker.Add();
        var idle = tracker.WaitIdleAsync();

        tracker.Done();
        idle.IsCompleted.ShouldBeFalse();
        tracker.Done();

        await idle.WaitAsync(s_bound);
    }

    [Fact]
    public async Task WaitIdleAsync_HonoursCancellation()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        using var cts = new CancellationTokenSource();
        var idle = tracker.WaitIdleAsync(cts.Token);

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(idle.WaitAsync(s_bound));
        tracker.Count.ShouldBe(1);
    }

    [Fact]
    public void WaitIdle_OnOtherThread_IsWokenByDone()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        bool? result = null;
        var waiting = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            waiting.Set();
            result = tracker.WaitIdle(Timeout.InfiniteTimeSpan);
        });
        thread.Start();
        waiting.Wait(s_bound).ShouldBeTrue();

        tracker.Done();

        thread.Join(s_bound).ShouldBeTrue();
        result.ShouldBe(true);
    }

    [Fact]
    public void WaitIdle_Timeout_ReturnsFalseWhileBusy()
    {
        var tracker = new WorkTracker();
        tracker.Add();

        tracker.WaitIdle(TimeSpan.FromMilliseconds(1)).ShouldBeFalse();
    }

    [Fact]
    public void WaitIdle_NegativeTimeout_Throws()
    {
        var tracker = new WorkTracker();

        Should.Throw<ArgumentOutOfRangeException>(() => tracker.WaitIdle(TimeSpan.FromSeconds(-5)));
    }

    [Fact]
    public void WaitIdle_Cancelled_Throws()
    {
        var tracker = new WorkTracker();
        tracker.Add();

        Should.Throw<OperationCanceledException>(() => tracker.WaitIdle(Timeout.InfiniteTimeSpan, new CancellationToken(true)));
    }

    [Fact]
    public async Task WaitIdleAsync_WaitsAgainAfterBusyAgain()
    {
        var tracker = new WorkTracker();
        tracker.Add();
        tracker.Done();

        tracker.Add();
        var idle = tracker.WaitIdleAsync();

        idle.IsCompleted.ShouldBeFalse();
        tracker.Done();
        await idle.WaitAsync(s_bound);
    }

    [Fact]
    public void ConcurrentAddDone_EndsIdleWithZeroCount()
    {
        var tracker = new WorkTracker();

        Parallel.For(0, 10_000, _ =>
        {
            using (tracker.Track())
            {
                tracker.IsBusy.ShouldBeTrue();
            }
        });

        tracker.Count.ShouldBe(0);
        tracker.WaitIdle(TimeSpan.Zero).ShouldBeTrue();
    }
}
