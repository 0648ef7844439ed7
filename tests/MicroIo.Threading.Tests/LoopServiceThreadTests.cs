using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace MicroIo.Tests;

public class LoopServiceThreadTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    /// <summary>Returns the id of the thread that runs a continuation asking to run synchronously, once the task completes.</summary>
    private static Task<int> ThreadOfASynchronousContinuation(Task task) =>
        task.ContinueWith(
            _ => Environment.CurrentManagedThreadId,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    /// <summary>Starts a loop service with the default body (reports started, waits for the stop) and records its loop thread.</summary>
    private static (LoopServiceThread Service, int LoopThreadId) StartDefault(ServiceThreadOptions? options = null)
    {
        var service = new LoopServiceThread(options);
        service.Start();
        service.WaitStarted(s_bound);
        var loopThreadId = service.CallSync(() => Environment.CurrentManagedThreadId, s_bound);
        return (service, loopThreadId);
    }

    [Fact]
    public void CallSync_FromAnotherThread_ReturnsResultComputedOnTheLoop()
    {
        var (service, loopThreadId) = StartDefault();

        var answer = service.CallSync(() => 42, s_bound);
        var ranOn = service.CallSync(() => Environment.CurrentManagedThreadId, s_bound);

        answer.ShouldBe(42);
        ranOn.ShouldBe(loopThreadId);
        ranOn.ShouldNotBe(Environment.CurrentManagedThreadId);
        service.Stop();
        service.JoinOrLog(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_FunctionThrows_RethrowsItAndServiceGoesOn()
    {
        var (service, _) = StartDefault();
        var boom = new InvalidDataException("bad request");

        var thrown = Should.Throw<InvalidDataException>(() => service.CallSync<int>(() => throw boom, s_bound));

        thrown.ShouldBeSameAs(boom);
        service.IsFailed.ShouldBeFalse();
        service.CallSync(() => 1, s_bound).ShouldBe(1);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSync_OnTheLoopThread_RunsInline()
    {
        var inner = new TaskCompletionSource<(int Outer, int Inner)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            var outer = Environment.CurrentManagedThreadId;
            inner.SetResult((outer, s.CallSync(() => Environment.CurrentManagedThreadId, TimeSpan.FromSeconds(1))));
            s.Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });

        service.Start();
        var (outerId, innerId) = await inner.Task.WaitAsync(s_bound);

        innerId.ShouldBe(outerId);
        service.WaitStarted(s_bound);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void CallSync_TimedOutBeforeItStarted_NeverRuns()
    {
        var (service, _) = StartDefault();
        using var blockLoop = new ManualResetEventSlim();
        var ran = 0;
        service.CallSoon(() => blockLoop.Wait(s_bound));

        Should.Throw<TimeoutException>(() => service.CallSync(() => Interlocked.Exchange(ref ran, 1), TimeSpan.FromMilliseconds(50)));
        blockLoop.Set();
        var ranAfterward = service.CallSync(() => Volatile.Read(ref ran), s_bound);

        ranAfterward.ShouldBe(0);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_StartedButSlowerThanTheTimeout_ThrowsTimeoutAndRunsToTheEnd()
    {
        var (service, _) = StartDefault();
        using var release = new ManualResetEventSlim();
        using var running = new ManualResetEventSlim();
        var finished = 0;

        Should.Throw<TimeoutException>(() => service.CallSync(
            () =>
            {
                running.Set();
                release.Wait(s_bound);
                return Interlocked.Exchange(ref finished, 1);
            },
            TimeSpan.FromMilliseconds(50)));
        running.IsSet.ShouldBeTrue();
        release.Set();

        service.CallSync(() => Volatile.Read(ref finished), s_bound).ShouldBe(1);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_NegativeTimeoutOrNullFunction_ThrowsAtTheCall()
    {
        var (service, _) = StartDefault();

        Should.Throw<ArgumentOutOfRangeException>(() => service.CallSync(() => 1, TimeSpan.FromSeconds(-2)));
        Should.Throw<ArgumentNullException>(() => service.CallSync((Func<int>)null!, s_bound));
        Should.Throw<ArgumentNullException>(() => service.CallSync((Action)null!, s_bound));
        Should.Throw<ArgumentNullException>(() => service.CallSoon(null!));
        Should.Throw<ArgumentNullException>(() => service.Submit<int>((Func<CancellationToken, Task<int>>)null!));
        Should.Throw<ArgumentNullException>(() => service.Submit<int>((Func<Task<int>>)null!));

        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_Action_RunsOnTheLoop()
    {
        var (service, loopThreadId) = StartDefault();
        var ranOn = 0;

        service.CallSync(() => ranOn = Environment.CurrentManagedThreadId, s_bound);

        ranOn.ShouldBe(loopThreadId);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void CallSync_RacingStop_EveryCallRanAndReturnedOrWasRefused()
    {
        for (var i = 0; i < 100; i++)
        {
            var (service, _) = StartDefault();
            var ran = 0;
            var returned = 0;
            var refused = 0;
            using var barrier = new Barrier(2);
            var caller = new Thread(() =>
            {
                barrier.SignalAndWait(s_bound);
                while (true)
                {
                    try
                    {
                        service.CallSync(() => Interlocked.Increment(ref ran), s_bound);
                        returned++;
                    }
                    catch (ClosedResourceException)
                    {
                        refused++;
                        return;
                    }
                }
            });
            caller.Start();

            barrier.SignalAndWait(s_bound);
            service.Stop();

            caller.Join(s_bound).ShouldBeTrue();
            service.Join(s_bound).ShouldBeTrue();
            refused.ShouldBe(1);
            returned.ShouldBe(Volatile.Read(ref ran));
            service.IsFailed.ShouldBeFalse();
        }
    }

    [Fact]
    public async Task CallSyncAsync_FromAnotherThread_ReturnsResultComputedOnTheLoop()
    {
        var (service, loopThreadId) = StartDefault();

        var ranOn = await service.CallSyncAsync(() => Environment.CurrentManagedThreadId).WaitAsync(s_bound);
        await service.CallSyncAsync(() => { }).WaitAsync(s_bound);

        ranOn.ShouldBe(loopThreadId);
        service.Stop();
        (await service.JoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSyncAsync_CancelledBeforeItStarted_NeverRuns()
    {
        var (service, _) = StartDefault();
        using var blockLoop = new ManualResetEventSlim();
        using var cts = new CancellationTokenSource();
        var ran = 0;
        service.CallSoon(() => blockLoop.Wait(s_bound));

        var call = service.CallSyncAsync(() => Interlocked.Exchange(ref ran, 1), cts.Token);
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(call.WaitAsync(s_bound));
        blockLoop.Set();
        (await service.CallSyncAsync(() => Volatile.Read(ref ran)).WaitAsync(s_bound)).ShouldBe(0);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSyncAsync_FunctionThrows_TaskHasTheException()
    {
        var (service, _) = StartDefault();
        var boom = new InvalidDataException("boom");

        var thrown = await Should.ThrowAsync<InvalidDataException>(service.CallSyncAsync<int>(() => throw boom).WaitAsync(s_bound));

        thrown.ShouldBeSameAs(boom);
        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSoon_FromManyThreads_RunsEveryActionOnTheLoopInOrderPerCaller()
    {
        var (service, loopThreadId) = StartDefault();
        var seen = new List<(int Caller, int Index, int Thread)>();
        const int perCaller = 200;

        await Task.WhenAll(Enumerable.Range(0, 4).Select(caller => Task.Run(() =>
        {
            for (var i = 0; i < perCaller; i++)
            {
                var index = i;
                service.CallSoon(() => seen.Add((caller, index, Environment.CurrentManagedThreadId)));
            }
        }))).WaitAsync(s_bound);
        var count = service.CallSync(() => seen.Count, s_bound);

        count.ShouldBe(4 * perCaller);
        seen.ShouldAllBe(entry => entry.Thread == loopThreadId);
        foreach (var group in seen.GroupBy(e => e.Caller))
        {
            group.Select(e => e.Index).ShouldBe(Enumerable.Range(0, perCaller));
        }

        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_AwaitsWithoutConfigureAwait_ContinueOnTheLoopThread()
    {
        var threads = new TaskCompletionSource<(int Before, int AfterYield, int AfterDelay, bool HasContext)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            var before = Environment.CurrentManagedThreadId;
            await Task.Yield();
            var afterYield = Environment.CurrentManagedThreadId;
            await Task.Run(() => { }, ct);
            var afterDelay = Environment.CurrentManagedThreadId;
            threads.SetResult((before, afterYield, afterDelay, SynchronizationContext.Current is not null));
            s.Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });

        service.Start();
        var (before, afterYield, afterDelay, hasContext) = await threads.Task.WaitAsync(s_bound);

        afterYield.ShouldBe(before);
        afterDelay.ShouldBe(before);
        hasContext.ShouldBeTrue();
        service.WaitStarted(s_bound);
        service.Stop();
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task TaskGroup_ChildOfAWorker_RunsOnTheLoopAndStopsWithTheService()
    {
        var childThread = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var childFinally = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loopThread = 0;
        var service = new LoopServiceThread(async (s, ct) =>
        {
            loopThread = Environment.CurrentManagedThreadId;
            s.TaskGroup.StartSoon(async token =>
            {
                try
                {
                    childThread.SetResult(Environment.CurrentManagedThreadId);
                    await Task.Delay(Timeout.InfiniteTimeSpan, token);
                }
                finally
                {
                    childFinally.SetResult();
                }
            });
            s.Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });
        service.Start();
        service.WaitStarted(s_bound);

        (await childThread.Task.WaitAsync(s_bound)).ShouldBe(loopThread);
        service.Stop("done");

        await childFinally.Task.WaitAsync(s_bound);
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.TaskGroup.IsFinished.ShouldBeTrue();
        service.TaskGroup.CancelScope.Reason.ShouldBe("done");
    }

    [Fact]
    public void RunAsync_ReturnsWhileAChildRuns_ServiceRunsUntilStopped()
    {
        var service = new LoopServiceThread((s, ct) =>
        {
            s.TaskGroup.StartSoon(token => Task.Delay(Timeout.InfiniteTimeSpan, token));
            s.Started();
            return Task.CompletedTask;
        });
        service.Start();
        service.WaitStarted(s_bound);

        var stillRunning = service.CallSync(() => true, s_bound);

        stillRunning.ShouldBeTrue();
        service.IsStopped.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_AsyncFunction_ReturnsItsResultAndRunsOnTheLoop()
    {
        var (service, loopThreadId) = StartDefault();

        var result = await service.Submit(async ct =>
        {
            var first = Environment.CurrentManagedThreadId;
            await Task.Yield();
            await Task.Run(() => { }, ct);
            return (first, Environment.CurrentManagedThreadId);
        }).WaitAsync(s_bound);

        result.first.ShouldBe(loopThreadId);
        result.Item2.ShouldBe(loopThreadId);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_NonGeneric_CompletesWhenTheWorkHas()
    {
        var (service, _) = StartDefault();
        var ran = false;

        await service.Submit(async ct =>
        {
            await Task.Yield();
            ran = true;
        }).WaitAsync(s_bound);

        ran.ShouldBeTrue();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_WorkThrows_CallerGetsItAndServiceGoesOn()
    {
        var (service, _) = StartDefault();
        var boom = new InvalidDataException("boom");

        var thrown = await Should.ThrowAsync<InvalidDataException>(service.Submit<int>(async ct =>
        {
            await Task.Yield();
            throw boom;
        }).WaitAsync(s_bound));

        thrown.ShouldBeSameAs(boom);
        service.IsFailed.ShouldBeFalse();
        (await service.Submit(ct => Task.FromResult(7)).WaitAsync(s_bound)).ShouldBe(7);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_WorkThatLetsTheBodyReturnInline_StaysInTheGroupUntilItEnds()
    {
        // Not RunContinuationsAsynchronously: completing it on the loop runs the body's continuation inline, so the body
        // returns while the submitted work is still running. The work must still belong to the group.
        var bodyMayReturn = new TaskCompletionSource();
        var finishWork = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            s.Started();
            await bodyMayReturn.Task;
        });
        service.Start();
        service.WaitStarted(s_bound);

        var group = service.TaskGroup;
        var work = service.Submit(_ =>
        {
            bodyMayReturn.TrySetResult();

            // The body has returned; give the group every chance to (wrongly) finish while this work still runs. Bounded,
            // as the group must in fact never finish here: the work is its child.
            SpinWait.SpinUntil(() => group.IsFinished, TimeSpan.FromMilliseconds(200));
            group.IsFinished.ShouldBeFalse();
            return finishWork.Task;
        });
        await bodyMayReturn.Task.WaitAsync(s_bound);
        finishWork.SetResult(5);

        (await work.WaitAsync(s_bound)).ShouldBe(5);
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_WorkThatLetsTheBodyReturnInlineAndEndsAtOnce_HandsOverItsOutcomeAndTheServiceEnds(bool throws)
    {
        // The body returns inline from inside the work, and the work then ends synchronously, with a result or by throwing:
        // the group's body is held (the group would otherwise finish on the thread pool while the work runs), and must be
        // let go once the work has handed over its outcome, or the service never ends.
        var bodyMayReturn = new TaskCompletionSource();
        var service = new LoopServiceThread(async (s, ct) =>
        {
            s.Started();
            await bodyMayReturn.Task;
        });
        service.Start();
        service.WaitStarted(s_bound);

        var group = service.TaskGroup;
        var boom = new InvalidDataException("thrown after the body returned");
        var heldWhileRunning = false;
        var finishedWhileRunning = true;
        var work = service.Submit(_ =>
        {
            bodyMayReturn.TrySetResult();
            heldWhileRunning = service.IsBodyHeld;
            finishedWhileRunning = group.IsFinished;
            return throws ? throw boom : Task.FromResult(5);
        });

        if (throws)
        {
            (await Should.ThrowAsync<InvalidDataException>(work.WaitAsync(s_bound))).ShouldBeSameAs(boom);
        }
        else
        {
            (await work.WaitAsync(s_bound)).ShouldBe(5);
        }

        heldWhileRunning.ShouldBeTrue();
        finishedWhileRunning.ShouldBeFalse();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_WorkThatLetsTheBodyReturnInlineAndRunsOn_BecomesAChildWhileTheBodyIsHeld()
    {
        var bodyMayReturn = new TaskCompletionSource();
        var finishWork = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            s.Started();
            await bodyMayReturn.Task;
        });
        service.Start();
        service.WaitStarted(s_bound);
        var group = service.TaskGroup;

        // Hold the loop so that the probe is queued right behind the work, ahead of anything the work's run posts (the end
        // of the group's body among it).
        using var blockLoop = new ManualResetEventSlim();
        service.CallSoon(() => blockLoop.Wait(s_bound));
        var heldWhileRunning = false;
        var work = service.Submit(_ =>
        {
            bodyMayReturn.TrySetResult();
            heldWhileRunning = service.IsBodyHeld;
            return finishWork.Task;
        });
        var probe = service.CallSyncAsync(() => (service.IsBodyHeld, group.RunningCount, group.IsFinished));
        blockLoop.Set();

        (await probe.WaitAsync(s_bound)).ShouldBe((true, 1, false));
        heldWhileRunning.ShouldBeTrue();
        finishWork.SetResult(5);
        (await work.WaitAsync(s_bound)).ShouldBe(5);
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_WhileTheBodyRuns_WorkThatEndsAtOnceIsNoChildAndWorkThatRunsOnIs()
    {
        var (service, _) = StartDefault();
        var group = service.TaskGroup;
        var finishWork = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        (await service.Submit(_ => Task.FromResult(group.RunningCount)).WaitAsync(s_bound)).ShouldBe(0);
        var later = service.Submit(_ => finishWork.Task);
        service.CallSync(() => group.RunningCount, s_bound).ShouldBe(1);
        finishWork.SetResult();
        await later.WaitAsync(s_bound);

        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_ManyWorksThatEndAtOnceFromManyThreads_EachGetsItsOwnResult()
    {
        var (service, loopThreadId) = StartDefault();
        var callers = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                var expected = (c * 10_000) + i;
                (await service.Submit(_ => Task.FromResult((expected, Environment.CurrentManagedThreadId)))).ShouldBe((expected, loopThreadId));
            }
        })).ToArray();

        await Task.WhenAll(callers).WaitAsync(s_bound);
        service.TaskGroup.RunningCount.ShouldBe(0);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_WorkThatEndsAtOnceAfterTheCallerHasReturned_TheLoopCompletesTheTask()
    {
        // The caller stops spinning before the work ends (it is held on the loop), so the loop, not the caller, must
        // complete the task with the result the work had at once.
        var (service, loopThreadId) = StartDefault();
        using var gate = new ManualResetEventSlim();

        var task = service.Submit(_ =>
        {
            gate.Wait(s_bound);
            return Task.FromResult(7);
        });
        task.IsCompleted.ShouldBeFalse();
        var continuedOn = ThreadOfASynchronousContinuation(task);
        gate.Set();

        (await task.WaitAsync(s_bound)).ShouldBe(7);
        (await continuedOn.WaitAsync(s_bound)).ShouldNotBe(loopThreadId);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_FromTheLoopThread_WorkThatEndsAtOnceCompletesTheTaskOnALaterTurnWithoutRunningContinuationsInline()
    {
        // The caller is the loop itself, busy with this call: it cannot spin for the answer, so the loop completes the task.
        var (service, loopThreadId) = StartDefault();
        Task<int>? continuedOn = null;

        var task = service.CallSync(
            () =>
            {
                var submitted = service.Submit(_ => Task.FromResult(3));
                submitted.IsCompleted.ShouldBeFalse();
                continuedOn = ThreadOfASynchronousContinuation(submitted);
                return submitted;
            },
            s_bound);

        (await task.WaitAsync(s_bound)).ShouldBe(3);
        (await continuedOn!.WaitAsync(s_bound)).ShouldNotBe(loopThreadId);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task Submit_ServiceStops_TaskEndsCancelled()
    {
        var (service, _) = StartDefault();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var work = service.Submit(async ct =>
        {
            running.SetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            return 1;
        });
        await running.Task.WaitAsync(s_bound);
        service.Stop();

        await Should.ThrowAsync<OperationCanceledException>(work.WaitAsync(s_bound));
        work.IsCanceled.ShouldBeTrue();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Submit_WorkIgnoresItsToken_TaskStillEndsCancelledOnStop()
    {
        var (service, _) = StartDefault();
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
        release.SetResult();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Submit_RacingStop_EveryTaskEndsWithAResultACancellationOrARefusal(bool workEndsAtOnce)
    {
        for (var i = 0; i < 100; i++)
        {
            var (service, _) = StartDefault();
            var tasks = new List<Task<int>>();
            var refused = false;
            using var barrier = new Barrier(2);
            var submitter = DedicatedThread.Run(() =>
            {
                barrier.SignalAndWait(s_bound);
                for (var n = 0; n < 300; n++)
                {
                    try
                    {
                        tasks.Add(workEndsAtOnce
                            ? service.Submit(_ => Task.FromResult(5))
                            : service.Submit(async ct =>
                            {
                                await Task.Yield();
                                return 5;
                            }));
                    }
                    catch (ClosedResourceException)
                    {
                        refused = true;
                        return;
                    }
                }
            });

            barrier.SignalAndWait(s_bound);
            service.Stop();

            await submitter.WaitAsync(s_bound);
            service.Join(s_bound).ShouldBeTrue();
            if (!refused)
            {
                Should.Throw<ClosedResourceException>(() => service.Submit(_ => Task.FromResult(5)));
            }

            await Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(s_bound);
            foreach (var task in tasks)
            {
                try
                {
                    (await task).ShouldBe(5);
                }
                catch (OperationCanceledException)
                {
                }
                catch (ClosedResourceException)
                {
                }
            }

            service.Join(s_bound).ShouldBeTrue();
        }
    }

    [Fact]
    public async Task Stop_WhileCallersKeepOfferingWork_LoopStillEndsAndRefusesThem()
    {
        var (service, _) = StartDefault();
        using var barrier = new Barrier(3);
        var submitter = DedicatedThread.Run(() =>
        {
            barrier.SignalAndWait(s_bound);
            while (true)
            {
                try
                {
                    _ = service.Submit(async ct =>
                    {
                        await Task.Yield();
                        return 1;
                    });
                }
                catch (ClosedResourceException)
                {
                    return;
                }
            }
        });
        var caller = DedicatedThread.Run(() =>
        {
            barrier.SignalAndWait(s_bound);
            while (true)
            {
                try
                {
                    service.CallSoon(() => { });
                }
                catch (ClosedResourceException)
                {
                    return;
                }
            }
        });

        barrier.SignalAndWait(s_bound);
        service.Stop();

        await Task.WhenAll(submitter, caller).WaitAsync(s_bound);
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void StopDuringStartup_WaitStartedThrowsAndServiceEnds()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            await release.Task.WaitAsync(ct);
            s.Started();
        });
        service.Start();

        service.Stop("abort");

        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeOfType<ClosedResourceException>();
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.IsStarted.ShouldBeFalse();
    }

    [Fact]
    public void Stop_BeforeStart_GroupStartsCancelledAndServiceEnds()
    {
        var tokenCancelledAtEntry = false;
        var service = new LoopServiceThread((s, ct) =>
        {
            tokenCancelledAtEntry = ct.IsCancellationRequested;
            return Task.CompletedTask;
        });

        service.Stop("early");
        service.Start();

        service.Join(s_bound).ShouldBeTrue();
        tokenCancelledAtEntry.ShouldBeTrue();
        service.TaskGroup.CancelScope.Reason.ShouldBe("early");
        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));
    }

    [Fact]
    public async Task Scope_ClosedDirectly_CancelsTheTaskGroupLikeStop()
    {
        var bodyCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(async (s, ct) =>
        {
            s.Started();
            ct.Register(() => bodyCancelled.SetResult());
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });
        service.Start();
        service.WaitStarted(s_bound);

        service.Scope.Close("closed directly");

        await bodyCancelled.Task.WaitAsync(s_bound);
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.TaskGroup.CancelScope.Reason.ShouldBe("closed directly");
    }

    [Fact]
    public void Fail_FromOutside_CancelsTheTaskGroupAndEndsTheService()
    {
        var (service, _) = StartDefault();
        var boom = new InvalidDataException("peer crashed");

        service.Fail(boom);

        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
        service.TaskGroup.IsFinished.ShouldBeTrue();
    }

    [Fact]
    public void Stop_FromTheLoopItself_EndsTheService()
    {
        var (service, _) = StartDefault();

        service.CallSoon(() => service.Stop("from inside"));

        service.Join(s_bound).ShouldBeTrue();
        service.Scope.Reason.ShouldBe("from inside");
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task CallSoon_ActionThrows_FailsTheServiceAndCancelsItsGroup()
    {
        var logger = new CapturingLogger();
        var childCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new LoopServiceThread(
            async (s, ct) =>
            {
                s.TaskGroup.StartSoon(async token =>
                {
                    try
                    {
                        await Task.Delay(Timeout.InfiniteTimeSpan, token);
                    }
                    finally
                    {
                        childCancelled.SetResult();
                    }
                });
                s.Started();
                await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            },
            new ServiceThreadOptions { Logger = logger });
        service.Start();
        service.WaitStarted(s_bound);
        var boom = new InvalidDataException("callback crashed");

        service.CallSoon(() => throw boom);

        await childCancelled.Task.WaitAsync(s_bound);
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
        service.Scope.Exception.ShouldBeSameAs(boom);
        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeSameAs(boom);
        logger.Entries.ShouldContain(e => e.Level == LogLevel.Error && e.Exception == boom);
    }

    [Fact]
    public void AsyncVoid_ThrowsOnTheLoop_FailsTheService()
    {
        var (service, _) = StartDefault();
        var boom = new InvalidDataException("async void crashed");

        service.CallSoon(() => ThrowLater(boom));

        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
        service.Scope.IsFailed.ShouldBeTrue();
    }

    [Fact]
    public void AsyncVoid_ThrowsBeforeStarted_WaitStartedThrowsIt()
    {
        var boom = new InvalidDataException("startup crashed");
        var service = new LoopServiceThread(async (s, ct) =>
        {
            ThrowLater(boom);
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            s.Started();
        });
        service.Start();

        var thrown = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Loop_ActionsQueuedAfterAFailure_StillRunOrAreRefused()
    {
        var (service, _) = StartDefault();
        using var blockLoop = new ManualResetEventSlim();
        var ranAfterFailure = false;
        service.CallSoon(() => blockLoop.Wait(s_bound));
        service.CallSoon(() => throw new InvalidDataException("first"));
        service.CallSoon(() => ranAfterFailure = true);
        var call = service.CallSyncAsync(() => 3);

        blockLoop.Set();

        (await call.WaitAsync(s_bound)).ShouldBe(3);
        service.Join(s_bound).ShouldBeTrue();
        ranAfterFailure.ShouldBeTrue();
        service.Exception.ShouldBeOfType<InvalidDataException>();
    }

    [Fact]
    public void RunAsync_Throws_ServiceFailsWithTheOriginalException()
    {
        var boom = new InvalidDataException("bind failed");
        var service = new LoopServiceThread(async (s, ct) =>
        {
            await Task.Yield();
            throw boom;
        });
        service.Start();

        var thrown = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
    }

    [Fact]
    public void RunAsync_ChildFails_ServiceFailsAndBodyIsCancelled()
    {
        var boom = new InvalidDataException("child failed");
        var service = new LoopServiceThread(async (s, ct) =>
        {
            s.Started();
            s.TaskGroup.StartSoon(async _ =>
            {
                await Task.Yield();
                throw boom;
            });
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
        });
        service.Start();

        service.Join(s_bound).ShouldBeTrue();

        service.Exception.ShouldBeSameAs(boom);
        service.Scope.IsFailed.ShouldBeTrue();
    }

    [Fact]
    public void RunAsync_Overridden_RunsOnTheLoop()
    {
        var service = new CounterService();
        service.Start();
        service.WaitStarted(s_bound);

        service.CallSync(() => service.Add(3), s_bound);
        service.CallSync(() => service.Add(7), s_bound);
        var total = service.CallSync(() => service.Total, s_bound);

        total.ShouldBe(10);
        service.Stop().ShouldBeTrue();
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.Scope.IsClosed.ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void Bridges_AfterTheLoopEnded_ThrowClosedResource()
    {
        var (service, _) = StartDefault();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();

        Should.Throw<ClosedResourceException>(() => service.CallSoon(() => { }));
        Should.Throw<ClosedResourceException>(() => service.CallSync(() => 1, s_bound));
        Should.Throw<ClosedResourceException>(() => service.CallSyncAsync(() => 1));
        Should.Throw<ClosedResourceException>(() => service.Submit(_ => Task.FromResult(1)));
        Should.Throw<ClosedResourceException>(() => service.Submit(_ => Task.CompletedTask));
    }

    [Fact]
    public void Bridges_BeforeStart_ThrowInvalidOperation()
    {
        var service = new LoopServiceThread();

        Should.Throw<InvalidOperationException>(() => service.CallSoon(() => { })).ShouldNotBeOfType<ClosedResourceException>();
        Should.Throw<InvalidOperationException>(() => service.CallSync(() => 1, s_bound));
        Should.Throw<InvalidOperationException>(() => service.Submit(_ => Task.FromResult(1)));
        Should.Throw<InvalidOperationException>(() => service.TaskGroup);
    }

    [Fact]
    public async Task Bridges_RightAfterStart_AreQueuedUntilTheLoopRuns()
    {
        var service = new LoopServiceThread();

        service.Start();
        var call = service.CallSyncAsync(() => 1);
        var work = service.Submit(_ => Task.FromResult(2));

        (await call.WaitAsync(s_bound)).ShouldBe(1);
        (await work.WaitAsync(s_bound)).ShouldBe(2);
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task CallSoon_RacingTheLoopsEnd_EveryAcceptedActionRuns()
    {
        for (var i = 0; i < 100; i++)
        {
            var (service, _) = StartDefault();
            var accepted = 0;
            var ran = 0;
            using var barrier = new Barrier(2);
            var caller = DedicatedThread.Run(() =>
            {
                barrier.SignalAndWait(s_bound);
                try
                {
                    for (var n = 0; n < 300; n++)
                    {
                        service.CallSoon(() => Interlocked.Increment(ref ran));
                        accepted++;
                    }
                }
                catch (ClosedResourceException)
                {
                }
            });

            barrier.SignalAndWait(s_bound);
            service.Stop();

            await caller.WaitAsync(s_bound);
            service.Join(s_bound).ShouldBeTrue();
            Volatile.Read(ref ran).ShouldBe(accepted);
        }
    }

    [Fact]
    public void Constructor_NullBody_ThrowsArgumentNull()
    {
        Should.Throw<ArgumentNullException>(() => new LoopServiceThread((Func<LoopServiceThread, CancellationToken, Task>)null!, null));
        Should.Throw<ArgumentNullException>(() => new LoopServiceThread((Func<CancellationToken, Task>)null!, null));
    }

    [Fact]
    public async Task CallSoon_RunsInTheLoopsOwnContext_NotTheCallersScope()
    {
        var (service, _) = StartDefault();
        var local = new AsyncLocal<string>();
        var seen = new TaskCompletionSource<(string?, bool)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var scope = new CancelScope();

        await scope.RunAsync(_ =>
        {
            local.Value = "caller";
            scope.Cancel();
            service.CallSoon(() =>
            {
                // The caller's cancelled ambient scope must not reach the loop.
                Checkpoint.ThrowIfCancelled();
                seen.SetResult((local.Value, CancelScope.Current?.IsCancellationRequested ?? false));
            });
            return Task.CompletedTask;
        });

        (await seen.Task.WaitAsync(s_bound)).ShouldBe((null, false));
        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task Start_InsideACancelledScope_ServiceIsNotCancelledByIt()
    {
        var service = new LoopServiceThread();
        var scope = new CancelScope();

        await scope.RunAsync(async _ =>
        {
            service.Start();
            await service.WaitStartedAsync(s_bound);
            scope.Cancel();
        });

        service.CallSync(() => 42, s_bound).ShouldBe(42);
        service.IsStopped.ShouldBeFalse();
        service.Scope.IsClosed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void CallSync_StartedThenTimedOut_LateExceptionIsObserved()
    {
        var unobserved = 0;
        EventHandler<UnobservedTaskExceptionEventArgs> handler = (_, e) =>
        {
            if (e.Exception.InnerExceptions.Any(x => x.Message == "late"))
            {
                Interlocked.Increment(ref unobserved);
            }
        };
        TaskScheduler.UnobservedTaskException += handler;
        try
        {
            var (service, _) = StartDefault();
            using var release = new ManualResetEventSlim();
            using var running = new ManualResetEventSlim();

            Should.Throw<TimeoutException>(() => service.CallSync<int>(
                () =>
                {
                    running.Set();
                    release.Wait(s_bound);
                    throw new FormatException("late");
                },
                TimeSpan.FromMilliseconds(50)));
            running.IsSet.ShouldBeTrue();
            release.Set();
            service.CallSync(() => 0, s_bound);
            service.Stop();
            service.Join(s_bound).ShouldBeTrue();

            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            unobserved.ShouldBe(0);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= handler;
        }
    }

    [Fact]
    public void Bridges_AfterStopBeforeStart_ThrowClosed()
    {
        var service = new LoopServiceThread();
        service.Stop();

        Should.Throw<ClosedResourceException>(() => service.CallSoon(() => { }));
        Should.Throw<ClosedResourceException>(() => service.CallSync(() => 1, s_bound));
        Should.Throw<ClosedResourceException>(() => service.Submit(ct => Task.CompletedTask));
    }

    private static async void ThrowLater(Exception exception)
    {
        await Task.Yield();
        throw exception;
    }

    /// <summary>The shape of the counter-server sample: state owned by the loop, reached through CallSync.</summary>
    private sealed class CounterService : LoopServiceThread
    {
        private int _total;

        public int Total => _total;

        public int Add(int amount) => _total += amount;

        protected override async Task RunAsync(CancellationToken cancellationToken)
        {
            Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        }
    }
}
