using Microsoft.Extensions.Logging;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// LoopServiceThread bridges in detail (found by Stryker survivors): submitted work that ends at once or later, before and
/// after the body has returned; calls that time out by another clock, wait asleep, or are refused when the loop ends; and
/// what the loop's own thread gets inline.
/// </summary>
public sealed class LoopServiceThreadMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    /// <summary>Starts a loop service; with <paramref name="bodyReturns"/>, its body returns at once and a child keeps the group (and the loop) running.</summary>
    private static LoopServiceThread StartService(bool bodyReturns, ServiceThreadOptions? options = null)
    {
        var service = bodyReturns
            ? new LoopServiceThread(
                (s, ct) =>
                {
                    s.TaskGroup.StartSoon(token => Task.Delay(Timeout.InfiniteTimeSpan, token));
                    s.Started();
                    return Task.CompletedTask;
                },
                options)
            : new LoopServiceThread(options);
        service.Start();
        service.WaitStarted(s_bound);
        return service;
    }

    private static bool IsBlocked(Thread thread) => (thread.ThreadState & ThreadState.WaitSleepJoin) != 0;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_WorkThatEndsAtOnce_HandsTheCallerItsOutcome(bool bodyReturns)
    {
        var service = StartService(bodyReturns);
        var boom = new InvalidDataException("boom");

        (await service.Submit(_ => Task.FromResult(5)).WaitAsync(s_bound)).ShouldBe(5);
        (await Should.ThrowAsync<InvalidDataException>(service.Submit<int>(_ => throw boom).WaitAsync(s_bound))).ShouldBeSameAs(boom);
        (await Should.ThrowAsync<InvalidDataException>(service.Submit(_ => Task.FromException<int>(boom)).WaitAsync(s_bound))).ShouldBeSameAs(boom);
        var cancelled = service.Submit(_ => Task.FromCanceled<int>(new CancellationToken(canceled: true)));
        await Should.ThrowAsync<OperationCanceledException>(cancelled.WaitAsync(s_bound));
        cancelled.IsCanceled.ShouldBeTrue();
        var thrownCancellation = service.Submit<int>(_ => throw new OperationCanceledException());
        await Should.ThrowAsync<OperationCanceledException>(thrownCancellation.WaitAsync(s_bound));
        thrownCancellation.IsCanceled.ShouldBeTrue();
        await service.Submit(_ => Task.CompletedTask).WaitAsync(s_bound);
        await service.Submit(() => Task.CompletedTask).WaitAsync(s_bound);

        service.IsFailed.ShouldBeFalse();
        service.TaskGroup.IsFinished.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_WorkThatEndsLater_HandsTheCallerItsOutcome(bool bodyReturns)
    {
        var service = StartService(bodyReturns);
        var boom = new InvalidDataException("boom");

        (await service.Submit(async _ =>
        {
            await Task.Yield();
            return 5;
        }).WaitAsync(s_bound)).ShouldBe(5);
        (await Should.ThrowAsync<InvalidDataException>(service.Submit<int>(async _ =>
        {
            await Task.Yield();
            throw boom;
        }).WaitAsync(s_bound))).ShouldBeSameAs(boom);

        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_Work_RunsOnTheLoopWithTheGroupsTokenAndScope(bool bodyReturns)
    {
        var service = StartService(bodyReturns);
        var loopThread = service.CallSync(() => Environment.CurrentManagedThreadId, s_bound);
        var group = service.TaskGroup;

        var atOnce = await service.Submit(ct => Task.FromResult((ct == group.Token, CancelScope.Current == group.CancelScope, Environment.CurrentManagedThreadId))).WaitAsync(s_bound);
        var later = await service.Submit(async ct =>
        {
            await Task.Yield();
            return (ct == group.Token, CancelScope.Current == group.CancelScope, Environment.CurrentManagedThreadId);
        }).WaitAsync(s_bound);

        atOnce.ShouldBe((true, true, loopThread));
        later.ShouldBe((true, true, loopThread));
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_ServiceStopsWhileTheWorkRuns_CallerIsCancelledAndTheServiceWaitsForTheWork(bool bodyReturns)
    {
        var service = StartService(bodyReturns);
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var work = service.Submit(async _ =>
        {
            running.SetResult();
            await release.Task;
            return 1;
        });
        await running.Task.WaitAsync(s_bound);
        service.Stop();

        await Should.ThrowAsync<OperationCanceledException>(work.WaitAsync(s_bound));
        service.IsStopped.ShouldBeFalse();
        service.TaskGroup.IsFinished.ShouldBeFalse();
        release.SetResult();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_WorkStopsTheService_CallerGetsTheOutcomeTheWorkReturnedOrIsCancelledIfItRunsOn(bool bodyReturns)
    {
        // An outcome the work has when it returns is handed over as is, even though the work stopped the service; work that
        // still runs when it returns is cancelled for the caller, and its later failure is still observed.
        var errors = UnobservedTaskExceptions.Collect(
            () => StopFromInsideTheWork(bodyReturns).GetAwaiter().GetResult(),
            rounds: 2);

        errors.Where(e => e.Message == StoppedFromInside).ShouldBeEmpty();
    }

    private const string StoppedFromInside = "failed after the stop it caused";

    private static async Task StopFromInsideTheWork(bool bodyReturns)
    {
        var service = StartService(bodyReturns);
        var succeeded = service.Submit(_ =>
        {
            service.Stop();
            return Task.FromResult(1);
        });
        (await succeeded.WaitAsync(s_bound)).ShouldBe(1);
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();

        var second = StartService(bodyReturns);
        var failed = second.Submit(_ =>
        {
            second.Stop();
            return Task.FromException<int>(new InvalidDataException(StoppedFromInside));
        });
        (await Should.ThrowAsync<InvalidDataException>(failed.WaitAsync(s_bound))).Message.ShouldBe(StoppedFromInside);
        second.Join(s_bound).ShouldBeTrue();
        second.IsFailed.ShouldBeFalse();

        var third = StartService(bodyReturns);
        var thrown = third.Submit<int>(_ =>
        {
            third.Stop();
            throw new InvalidDataException(StoppedFromInside);
        });
        (await Should.ThrowAsync<InvalidDataException>(thrown.WaitAsync(s_bound))).Message.ShouldBe(StoppedFromInside);
        third.Join(s_bound).ShouldBeTrue();
        third.IsFailed.ShouldBeFalse();

        var fourth = StartService(bodyReturns);
        var cancelledOwn = fourth.Submit<int>(_ =>
        {
            fourth.Stop();
            throw new OperationCanceledException(StoppedFromInside);
        });
        await Should.ThrowAsync<OperationCanceledException>(cancelledOwn.WaitAsync(s_bound));
        cancelledOwn.IsCanceled.ShouldBeTrue();
        fourth.Join(s_bound).ShouldBeTrue();
        fourth.IsFailed.ShouldBeFalse();

        var fifth = StartService(bodyReturns);
        var failsLater = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var runsOn = fifth.Submit(_ =>
        {
            fifth.Stop();
            return failsLater.Task;
        });
        await Should.ThrowAsync<OperationCanceledException>(runsOn.WaitAsync(s_bound));
        runsOn.IsCanceled.ShouldBeTrue();
        fifth.IsStopped.ShouldBeFalse();
        failsLater.SetException(new InvalidDataException(StoppedFromInside));
        fifth.Join(s_bound).ShouldBeTrue();
        fifth.IsFailed.ShouldBeFalse();

        // The stop cancels the caller at once, though the work it leaves running later succeeds (a task's outcome never
        // changes once set, so only the cancellation arriving before the result is checked), and the late success fails
        // nothing.
        var sixth = StartService(bodyReturns);
        var succeedsLater = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelledFirst = sixth.Submit(_ =>
        {
            sixth.Stop();
            return succeedsLater.Task;
        });
        await Should.ThrowAsync<OperationCanceledException>(cancelledFirst.WaitAsync(s_bound));
        succeedsLater.SetResult(5);
        sixth.Join(s_bound).ShouldBeTrue();
        sixth.IsFailed.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task Submit_WorkReturnsANullTask_CallerGetsInvalidOperationException(bool bodyReturns, bool withoutResult)
    {
        var service = StartService(bodyReturns);

        var work = withoutResult ? service.Submit(_ => (Task)null!) : service.Submit<int>(_ => null!);

        (await Should.ThrowAsync<InvalidOperationException>(work.WaitAsync(s_bound))).Message.ShouldContain("null task");
        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_AcceptedBeforeTheStopButRunAfterIt_NeverStarts()
    {
        var service = StartService(bodyReturns: false);
        using var blockLoop = new ManualResetEventSlim();
        var ran = false;
        service.CallSoon(() => blockLoop.Wait(s_bound));

        var work = service.Submit(_ =>
        {
            ran = true;
            return Task.FromResult(1);
        });
        service.Stop();
        blockLoop.Set();

        await Should.ThrowAsync<OperationCanceledException>(work.WaitAsync(s_bound));
        work.IsCanceled.ShouldBeTrue();
        ran.ShouldBeFalse();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_AcceptedBeforeTheGroupFinishedButRunAfterIt_FailsWithClosedResourceAndNeverStarts()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread((s, ct) =>
        {
            // The only child ends off the loop, so the group can finish while the loop is busy.
            s.TaskGroup.StartSoon(async _ => await release.Task.ConfigureAwait(false));
            s.Started();
            return Task.CompletedTask;
        });
        service.Start();
        service.WaitStarted(s_bound);

        // The group's body ends one loop turn after the body returns (RunMainAsync): let that turn pass first, or the
        // blocked loop below would hold the group open instead of the child.
        SpinWait.SpinUntil(() => !service.CallSync(() => service.IsBodyHeld, s_bound), s_bound).ShouldBeTrue();
        using var blockLoop = new ManualResetEventSlim();
        service.CallSoon(() => blockLoop.Wait(s_bound));
        var ran = false;
        var work = service.Submit(_ =>
        {
            ran = true;
            return Task.FromResult(1);
        });

        release.SetResult();
        SpinWait.SpinUntil(() => service.TaskGroup.IsFinished, s_bound).ShouldBeTrue();
        blockLoop.Set();

        await Should.ThrowAsync<ClosedResourceException>(work.WaitAsync(s_bound));
        ran.ShouldBeFalse();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task CallSync_TimeoutOnAFakeClock_ThrowsWhenTheClockPassesItAndTheCallNeverRuns()
    {
        var clock = new TimerWatchingTimeProvider();
        var service = StartService(bodyReturns: false, new ServiceThreadOptions { TimeProvider = clock });
        using var blockLoop = new ManualResetEventSlim();
        var ran = 0;
        service.CallSoon(() => blockLoop.Wait(s_bound));
        clock.WatchNextTimer();

        var call = DedicatedThread.Run(() => service.CallSync(() => Interlocked.Exchange(ref ran, 1), TimeSpan.FromMinutes(1)));
        await clock.TimerCreated.WaitAsync(s_bound);
        clock.Advance(TimeSpan.FromMinutes(1));

        await Should.ThrowAsync<TimeoutException>(call.WaitAsync(s_bound));
        blockLoop.Set();
        service.CallSync(() => Volatile.Read(ref ran), s_bound).ShouldBe(0);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_ZeroTimeoutWhileTheLoopIsBusy_ThrowsAtOnceAndTheCallNeverRuns()
    {
        var service = StartService(bodyReturns: false);
        using var blockLoop = new ManualResetEventSlim();
        var ran = 0;
        service.CallSoon(() => blockLoop.Wait(s_bound));

        Should.Throw<TimeoutException>(() => service.CallSync(() => Interlocked.Exchange(ref ran, 1), TimeSpan.Zero));

        blockLoop.Set();
        service.CallSync(() => Volatile.Read(ref ran), s_bound).ShouldBe(0);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(60_000)]
    public async Task CallSync_CallerAsleepWhenTheCallEnds_IsWokenWithTheResult(int timeoutMs)
    {
        var service = StartService(bodyReturns: false);
        using var blockLoop = new ManualResetEventSlim();
        service.CallSoon(() => blockLoop.Wait(s_bound));
        Thread? caller = null;
        var result = 0;

        var call = DedicatedThread.Run(() =>
        {
            caller = Thread.CurrentThread;
            result = service.CallSync(() => 42, TimeSpan.FromMilliseconds(timeoutMs));
        });
        SpinWait.SpinUntil(() => caller is { } t && IsBlocked(t), s_bound).ShouldBeTrue();
        blockLoop.Set();

        await call.WaitAsync(s_bound);
        result.ShouldBe(42);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Loop_EndsWhileCallsAreQueued_EveryQueuedCallerIsToldAndNoneHangs()
    {
        // A logger that throws when the loop reports its second failure makes the loop itself end with work still queued.
        var service = StartService(bodyReturns: false, new ServiceThreadOptions { Logger = new ThrowingLogger() });
        using var blockLoop = new ManualResetEventSlim();
        service.CallSoon(() => blockLoop.Wait(s_bound));
        service.CallSoon(() => throw new InvalidDataException("first"));
        service.CallSoon(() => throw new InvalidDataException("second"));
        var ran = 0;
        var callAsync = service.CallSyncAsync(() => Interlocked.Increment(ref ran));
        var submitted = service.Submit(_ =>
        {
            Interlocked.Increment(ref ran);
            return Task.FromResult(1);
        });
        Thread? caller = null;
        Exception? callSyncError = null;
        var callSync = DedicatedThread.Run(() =>
        {
            caller = Thread.CurrentThread;
            callSyncError = Record.Exception(() => service.CallSync(() => Interlocked.Increment(ref ran), s_bound));
        });
        SpinWait.SpinUntil(() => caller is { } t && IsBlocked(t), s_bound).ShouldBeTrue();

        blockLoop.Set();

        await Should.ThrowAsync<ClosedResourceException>(callAsync.WaitAsync(s_bound));
        await Should.ThrowAsync<ClosedResourceException>(submitted.WaitAsync(s_bound));
        await callSync.WaitAsync(s_bound);
        callSyncError.ShouldBeOfType<ClosedResourceException>();
        Volatile.Read(ref ran).ShouldBe(0);
        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeOfType<InvalidDataException>().Message.ShouldBe("first");
    }

    [Fact]
    public void Loop_SecondCallbackFailure_IsLoggedAndTheFirstStaysTheServicesFailure()
    {
        var logger = new CapturingLogger();
        var service = StartService(bodyReturns: false, new ServiceThreadOptions { Logger = logger });
        using var blockLoop = new ManualResetEventSlim();
        var first = new InvalidDataException("first");
        var second = new InvalidDataException("second");
        service.CallSoon(() => blockLoop.Wait(s_bound));
        service.CallSoon(() => throw first);
        service.CallSoon(() => throw second);

        blockLoop.Set();

        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(first);
        logger.Entries.ShouldContain(e => e.Exception == second);
    }

    [Fact]
    public async Task CallSyncAsync_OnTheLoopThread_RunsInlineAndReturnsACompletedTask()
    {
        var boom = new InvalidDataException("inline");
        var outcome = new TaskCompletionSource<(Task<int> Result, Task Failure, Task Action)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            outcome.SetResult((s.CallSyncAsync(() => 3), s.CallSyncAsync<int>(() => throw boom), s.CallSyncAsync(() => { })));
            s.Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });
        service.Start();

        var (result, failure, action) = await outcome.Task.WaitAsync(s_bound);

        result.IsCompletedSuccessfully.ShouldBeTrue();
        (await result).ShouldBe(3);
        failure.IsFaulted.ShouldBeTrue();
        failure.Exception!.InnerException.ShouldBeSameAs(boom);
        action.IsCompletedSuccessfully.ShouldBeTrue();
        service.WaitStarted(s_bound);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSyncAsync_CancelledAfterItStarted_RunsToTheEndAndReturnsItsResult()
    {
        var service = StartService(bodyReturns: false);
        using var cts = new CancellationTokenSource();
        using var running = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();

        var call = service.CallSyncAsync(
            () =>
            {
                running.Set();
                release.Wait(s_bound);
                return 9;
            },
            cts.Token);
        running.Wait(s_bound).ShouldBeTrue();
        await cts.CancelAsync();
        release.Set();

        (await call.WaitAsync(s_bound)).ShouldBe(9);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Bridges_NullArguments_ThrowArgumentNull()
    {
        var service = StartService(bodyReturns: false);

        Should.Throw<ArgumentNullException>(() => service.CallSyncAsync((Func<int>)null!));
        Should.Throw<ArgumentNullException>(() => service.CallSyncAsync((Action)null!));
        Should.Throw<ArgumentNullException>(() => service.Submit((Func<CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => service.Submit((Func<Task>)null!));

        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Constructor_TokenOnlyBody_ReportsStartedBeforeTheBodyRuns()
    {
        var startedSeenByBody = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        LoopServiceThread? service = null;
        service = new LoopServiceThread(async ct =>
        {
            startedSeenByBody.SetResult(service!.IsStarted);
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });

        service.Start();

        service.WaitStarted(s_bound);
        (await startedSeenByBody.Task.WaitAsync(s_bound)).ShouldBeTrue();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    private sealed class ThrowingLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException("the logger failed");
    }
}
