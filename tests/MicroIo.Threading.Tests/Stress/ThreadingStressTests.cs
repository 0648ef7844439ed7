using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>Races start, stop and join, <c>CallSync</c> against <c>Stop</c>, and loop callbacks that throw: no waiter hangs, every call ends once.</summary>
[Trait("Category", "Stress")]
public class ThreadingStressTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ServiceThread_StartStopAndJoinRacing_EveryWaiterEndsAndTheThreadEnds()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var signalStarted = random.Next(4) != 0;
            var service = new ServiceThread(s =>
            {
                if (signalStarted)
                {
                    s.Started();
                }

                s.Scope.Wait(Timeout.InfiniteTimeSpan);
            });
            var stopFirst = random.Next(3) == 0;
            if (stopFirst)
            {
                service.Stop("early");
            }

            service.Start();
            var waitStarted = Task.Run(() => Record.Exception(() => service.WaitStarted(s_bound)));
            var asyncWaitStarted = Record.ExceptionAsync(() => service.WaitStartedAsync(s_bound));
            var stopper = Task.Run(() =>
            {
                Thread.SpinWait(random.Next(500));
                return service.Stop("race");
            });

            (await Task.Run(() => service.Join(s_bound))).ShouldBeTrue();
            var startOutcome = await waitStarted;
            var asyncStartOutcome = await asyncWaitStarted;
            var stoppedByRacer = await stopper;

            service.IsStopped.ShouldBeTrue();
            service.IsFailed.ShouldBeFalse();
            stoppedByRacer.ShouldBe(!stopFirst);
            if (service.IsStarted)
            {
                startOutcome.ShouldBeNull();
                asyncStartOutcome.ShouldBeNull();
            }
            else
            {
                // Every body here ends only once stopped, whether it signalled or not: the stop is why it did not start.
                startOutcome.ShouldBeOfType<ServiceStartException>().InnerException.ShouldBeOfType<ClosedResourceException>();
                asyncStartOutcome.ShouldBeOfType<ServiceStartException>().InnerException.ShouldBeOfType<ClosedResourceException>();
            }

            return 1;
        });
    }

    [Fact]
    public async Task EventLoop_PostsRacingTheLoopsEnd_EveryCallbackRunsExactlyOnce()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var posters = random.Next(1, 4);
            var perPoster = random.Next(1, 100);
            var runs = new int[posters * perPoster];
            var notYetRun = runs.Length;
            var allRan = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var releaseMain = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var loopReady = new TaskCompletionSource<SynchronizationContext>(TaskCreationOptions.RunContinuationsAsynchronously);
            var loop = DedicatedThread.Run(() => EventLoop.Run(() =>
            {
                loopReady.SetResult(SynchronizationContext.Current!);
                return releaseMain.Task;
            }));
            var context = await loopReady.Task.WaitAsync(s_bound);

            // Posts land before, during and after the loop's end: each runs on the loop or, refused, on the thread pool.
            var seeds = Enumerable.Range(0, posters).Select(_ => random.Next()).ToArray();
            var posting = Enumerable.Range(0, posters).Select(p => Task.Run(() =>
            {
                var own = new Random(seeds[p]);
                for (var i = 0; i < perPoster; i++)
                {
                    var slot = (p * perPoster) + i;
                    Thread.SpinWait(own.Next(200));
                    context.Post(
                        _ =>
                        {
                            Interlocked.Increment(ref runs[slot]);
                            if (Interlocked.Decrement(ref notYetRun) == 0)
                            {
                                allRan.SetResult();
                            }
                        },
                        null);
                }
            })).ToList();
            Thread.SpinWait(random.Next(5_000));
            releaseMain.SetResult();

            await Task.WhenAll(posting).WaitAsync(s_bound);
            await loop.WaitAsync(s_bound);

            // Callbacks refused by the ended loop run on the thread pool, maybe still now; a lost one times this out.
            await allRan.Task.WaitAsync(s_bound);
            runs.ShouldAllBe(r => r == 1);
            return runs.Length;
        });
    }

    [Fact]
    public async Task LoopServiceThreadCallSync_LandingAsTheLoopGoesToSleep_NoneIsMissed()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var service = new LoopServiceThread();
            service.Start();
            service.WaitStarted(s_bound);
            var calls = random.Next(20, 200);
            var loopThread = service.CallSync(() => Thread.CurrentThread, s_bound);

            // Pauses from none to past the loop's spin, so calls land while it spins and as it goes to sleep; and, a quarter
            // of the time, only once the loop thread is seen blocked in its wait, so the call must wake it.
            var answered = await Task.Run(() =>
            {
                var sum = 0;
                for (var i = 0; i < calls; i++)
                {
                    var pause = random.Next(4);
                    if (pause == 3)
                    {
                        SpinWait.SpinUntil(() => (loopThread.ThreadState & ThreadState.WaitSleepJoin) != 0, s_bound).ShouldBeTrue();
                    }
                    else
                    {
                        Thread.SpinWait(random.Next(pause * 2_000));
                    }

                    sum += service.CallSync(() => 1, s_bound);
                }

                return sum;
            });

            service.Stop();
            (await service.JoinAsync(s_bound)).ShouldBeTrue();
            answered.ShouldBe(calls);
            return calls;
        });
    }

    [Fact]
    public async Task LoopServiceThreadCallSync_RacingStop_EveryCallRunsOnceOrIsRefusedAndNoneHangs()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var service = new LoopServiceThread();
            service.Start();
            service.WaitStarted(s_bound);
            var callers = random.Next(2, 5);
            var perCaller = random.Next(20, 200);
            var ran = 0;
            var returned = 0;
            var refused = 0;

            var callerTasks = Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
            {
                for (var i = 0; i < perCaller; i++)
                {
                    try
                    {
                        var value = i % 2 == 0
                            ? service.CallSync(() => Interlocked.Increment(ref ran), s_bound)
                            : await service.CallSyncAsync(() => Interlocked.Increment(ref ran));
                        value.ShouldBeGreaterThan(0);
                        Interlocked.Increment(ref returned);
                    }
                    catch (ClosedResourceException)
                    {
                        Interlocked.Increment(ref refused);
                    }
                    catch (OperationCanceledException)
                    {
                        // A call queued when the loop stopped: it did not run to completion for this caller.
                        Interlocked.Increment(ref refused);
                    }
                }
            })).ToList();
            var stopper = Task.Run(() =>
            {
                Thread.SpinWait(random.Next(20_000));
                service.Stop("race");
            });

            await Task.WhenAll(callerTasks);
            await stopper;
            (await service.JoinAsync(s_bound)).ShouldBeTrue();

            (returned + refused).ShouldBe(callers * perCaller);
            returned.ShouldBeLessThanOrEqualTo(ran);
            ran.ShouldBeLessThanOrEqualTo(callers * perCaller);
            service.IsFailed.ShouldBeFalse();
            return callers * perCaller;
        });
    }

    [Fact]
    public async Task LoopServiceThreadCallSoon_CallbackThrowsAmongMany_ServiceFailsWithThatExceptionAndWaitersWake()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var service = new LoopServiceThread();
            service.Start();
            service.WaitStarted(s_bound);
            var count = random.Next(10, 500);
            var throwAt = random.Next(count);
            var failure = new IOException("callback " + throwAt);
            var pending = service.CallSyncAsync(() => 0);
            await pending;

            for (var i = 0; i < count; i++)
            {
                var n = i;
                try
                {
                    service.CallSoon(() =>
                    {
                        if (n == throwAt)
                        {
                            throw failure;
                        }
                    });
                }
                catch (ClosedResourceException)
                {
                    // The loop is ending: the failed callback already ran.
                }
            }

            (await service.JoinAsync(s_bound)).ShouldBeTrue();
            service.Exception.ShouldBeSameAs(failure);
            service.Scope.IsFailed.ShouldBeTrue();
            await Should.ThrowAsync<ClosedResourceException>(() => service.CallSyncAsync(() => 1));
            return count;
        });
    }
}
