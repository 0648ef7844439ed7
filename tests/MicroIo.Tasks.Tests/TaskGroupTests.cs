using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class TaskGroupTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task RunAsync_WaitsForEveryChild()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = 0;

        var run = TaskGroup.RunAsync(group =>
        {
            for (var i = 0; i < 5; i++)
            {
                group.StartSoon(async ct =>
                {
                    await gate.Task;
                    Interlocked.Increment(ref finished);
                });
            }

            return Task.CompletedTask;
        });

        run.IsCompleted.ShouldBeFalse();
        gate.SetResult();
        await run.WaitAsync(s_bound);
        finished.ShouldBe(5);
    }

    [Fact]
    public async Task RunAsync_WithResult_ReturnsBodyValue()
    {
        var value = await TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(_ => Task.CompletedTask);
            await Task.Yield();
            return "done";
        });

        value.ShouldBe("done");
    }

    [Fact]
    public async Task TickingWorkers_CancelledFromBody_EachFinallyRuns()
    {
        var finallies = 0;
        var ticked = new CountdownEvent(3);

        await TaskGroup.RunAsync(async group =>
        {
            for (var i = 0; i < 3; i++)
            {
                group.StartSoon(async ct =>
                {
                    var signalled = false;
                    try
                    {
                        while (true)
                        {
                            await Checkpoint.SleepAsync(TimeSpan.FromMilliseconds(1), ct);
                            if (!signalled)
                            {
                                signalled = true;
                                ticked.Signal();
                            }
                        }
                    }
                    finally
                    {
                        Interlocked.Increment(ref finallies);
                    }
                });
            }

            await Task.Run(() => ticked.Wait(s_bound));
            group.Cancel("enough");
        }).WaitAsync(s_bound);

        finallies.ShouldBe(3);
    }

    [Fact]
    public async Task StartAsync_ReturnsReadyValue()
    {
        string? ready = null;

        await TaskGroup.RunAsync(async group =>
        {
            ready = await group.StartAsync<string>(async (readiness, ct) =>
            {
                await Task.Yield();
                readiness.Started("ready");
                await Task.Delay(Timeout.Infinite, ct);
            });
            group.Cancel();
        }).WaitAsync(s_bound);

        ready.ShouldBe("ready");
    }

    [Fact]
    public async Task StartAsync_NonGeneric_WaitsForStarted()
    {
        var started = false;

        await TaskGroup.RunAsync(async group =>
        {
            await group.StartAsync(async (readiness, ct) =>
            {
                await Task.Yield();
                started = true;
                readiness.Started();
                readiness.IsStarted.ShouldBeTrue();
            });
            started.ShouldBeTrue();
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task StartAsync_StartedTwice_Throws()
    {
        Exception? second = null;

        await TaskGroup.RunAsync(async group =>
        {
            await group.StartAsync<int>((readiness, ct) =>
            {
                readiness.Started(1);
                second = Should.Throw<InvalidOperationException>(() => readiness.Started(2));
                return Task.CompletedTask;
            });
        }).WaitAsync(s_bound);

        second.ShouldNotBeNull();
    }

    [Fact]
    public async Task StartAsync_ChildThrowsBeforeStarted_CallerGetsExceptionAndGroupGoesOn()
    {
        var sibling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var siblingFinished = false;

        await TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                await sibling.Task;
                ct.IsCancellationRequested.ShouldBeFalse();
                siblingFinished = true;
            });

            await Should.ThrowAsync<IOException>(group.StartAsync<int>(async (readiness, ct) =>
            {
                await Task.Yield();
                throw new IOException("bind failed");
            }));

            group.Token.IsCancellationRequested.ShouldBeFalse();
            sibling.SetResult();
        }).WaitAsync(s_bound);

        siblingFinished.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_ChildReturnsWithoutStarted_ThrowsInvalidOperation()
    {
        await TaskGroup.RunAsync(async group =>
        {
            await Should.ThrowAsync<InvalidOperationException>(group.StartAsync<int>((readiness, ct) => Task.CompletedTask));
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task StartAsync_ChildFailsAfterStarted_FailsGroup()
    {
        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            await group.StartAsync<int>(async (readiness, ct) =>
            {
                readiness.Started(1);
                await Task.Yield();
                throw new IOException("after start");
            });
            await Task.Delay(Timeout.Infinite, group.Token);
        }).WaitAsync(s_bound));

        ex.InnerExceptions.Single().ShouldBeOfType<IOException>();
    }

    [Fact]
    public async Task StartAsync_OnCancelledGroup_ThrowsAtOnce()
    {
        await TaskGroup.RunAsync(group =>
        {
            group.Cancel();

            Should.Throw<OperationCanceledException>(() => group.StartAsync<int>((r, ct) => Task.CompletedTask));
            return Task.CompletedTask;
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task StartAsync_CallerTokenCancelledBeforeStarted_CancelsChild()
    {
        using var caller = new CancellationTokenSource();
        var childCancelled = false;

        await TaskGroup.RunAsync(async group =>
        {
            var start = group.StartAsync<int>(async (readiness, ct) =>
            {
                try
                {
                    await caller.CancelAsync();
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    childCancelled = true;
                    throw;
                }
            }, caller.Token);

            await Should.ThrowAsync<OperationCanceledException>(start.WaitAsync(s_bound));
            group.Token.IsCancellationRequested.ShouldBeFalse();
        }).WaitAsync(s_bound);

        childCancelled.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_CallerScopeCancelledBeforeStarted_CancelsChild_ButNotAfter()
    {
        var afterStartSurvived = false;

        await TaskGroup.RunAsync(async group =>
        {
            var callerScope = new CancelScope();
            await callerScope.RunAsync(async _ =>
            {
                // Started, then the caller's scope is cancelled: the child belongs to the group now.
                await group.StartAsync<int>(async (readiness, ct) =>
                {
                    readiness.Started(1);
                    callerScope.Cancel();
                    await Task.Yield();
                    ct.IsCancellationRequested.ShouldBeFalse();
                    afterStartSurvived = true;
                });
            });

            var scope2 = new CancelScope();
            await scope2.RunAsync(async _ =>
            {
                await group.StartAsync<int>(async (readiness, ct) =>
                {
                    scope2.Cancel();
                    await Task.Delay(Timeout.Infinite, ct);
                });
            });
            scope2.CancelledCaught.ShouldBeTrue();
        }).WaitAsync(s_bound);

        afterStartSurvived.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_ChildReadiness_CancelledWhenGroupCancelledBeforeStarted()
    {
        await TaskGroup.RunAsync(async group =>
        {
            var start = group.StartAsync<int>(async (readiness, ct) =>
            {
                group.Cancel();
                await Task.Delay(Timeout.Infinite, ct);
            });

            await Should.ThrowAsync<OperationCanceledException>(start.WaitAsync(s_bound));
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task FailingChild_CancelsSiblingsAndRaisesAggregate()
    {
        var siblingCancelled = false;
        var error = new IOException("child failed");

        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    siblingCancelled = true;
                    throw;
                }
            });
            group.StartSoon(async ct =>
            {
                await Task.Yield();
                throw error;
            });
            await Task.Delay(Timeout.Infinite, group.Token);
        }).WaitAsync(s_bound));

        ex.InnerExceptions.ShouldBe([error]);
        siblingCancelled.ShouldBeTrue();
    }

    [Fact]
    public async Task BodyAndChildFailures_AreThrownTogether()
    {
        var childError = new IOException("child");
        var bodyError = new FormatException("body");
        var childFailed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                await Task.Yield();
                childFailed.SetResult();
                throw childError;
            });
            await childFailed.Task;
            throw bodyError;
        }, new TaskGroupOptions { Mode = TaskGroupMode.Supervise }).WaitAsync(s_bound));

        ex.InnerExceptions.Count.ShouldBe(2);
        ex.InnerExceptions.ShouldContain(bodyError);
        ex.InnerExceptions.ShouldContain(childError);
    }

    [Fact]
    public async Task BodyFails_CancelsChildrenAndRaisesAggregate()
    {
        var childCancelled = false;

        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    childCancelled = true;
                }
            });
            await Task.Yield();
            throw new FormatException("body");
        }).WaitAsync(s_bound));

        ex.InnerExceptions.Single().ShouldBeOfType<FormatException>();
        childCancelled.ShouldBeTrue();
    }

    [Fact]
    public async Task Supervise_FailingChildDoesNotCancelSiblings_FailureReportedAtEnd()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var siblingFinished = false;

        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                await Task.Yield();
                throw new IOException("one");
            });
            group.StartSoon(async ct =>
            {
                await gate.Task;
                ct.IsCancellationRequested.ShouldBeFalse();
                siblingFinished = true;
            });

            while (group.RunningCount > 1)
            {
                await Task.Yield();
            }

            group.Token.IsCancellationRequested.ShouldBeFalse();
            gate.SetResult();
        }, new TaskGroupOptions { Mode = TaskGroupMode.Supervise }).WaitAsync(s_bound));

        siblingFinished.ShouldBeTrue();
        ex.InnerExceptions.Single().ShouldBeOfType<IOException>();
    }

    [Fact]
    public async Task Cancel_FromChildWhileBodyAwaits_IsNormalExit()
    {
        await TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                await Task.Yield();
                group.Cancel("child says stop");
            });
            await Task.Delay(Timeout.Infinite, group.Token);
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task Cancel_FromAnotherThreadWhileGroupRuns_IsNormalExit()
    {
        var running = new TaskCompletionSource<TaskGroup>(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(ct => Task.Delay(Timeout.Infinite, ct));
            running.SetResult(group);
            await Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan);
        });
        var group = await running.Task.WaitAsync(s_bound);
        var thread = new Thread(() => group.Cancel("from thread"));
        thread.Start();

        await run.WaitAsync(s_bound);
        thread.Join(s_bound).ShouldBeTrue();
        group.IsFinished.ShouldBeTrue();
        group.CancelScope.Reason.ShouldBe("from thread");
    }

    [Fact]
    public async Task CallerTokenCancelled_PropagatesOperationCanceled()
    {
        using var caller = new CancellationTokenSource();
        var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = TaskGroup.RunAsync(
            async group =>
            {
                group.StartSoon(async ct =>
                {
                    childStarted.SetResult();
                    await Task.Delay(Timeout.Infinite, ct);
                });
                await Task.Delay(Timeout.Infinite, group.Token);
            },
            caller.Token);
        await childStarted.Task.WaitAsync(s_bound);
        await caller.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
    }

    [Fact]
    public async Task CallerTokenCancelled_ChildWaitingOnTheCallersTokenItself_IsNotAFailure()
    {
        using var caller = new CancellationTokenSource();
        var childWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = TaskGroup.RunAsync(
            async group =>
            {
                // Registered after the group's own link to the caller's token, so the cancellation reaches this wait first.
                group.StartSoon(_ => WaitOnTheTokenItselfAsync(childWaits, caller.Token));
                await Task.Delay(Timeout.Infinite, group.Token);
            },
            caller.Token);
        await childWaits.Task.WaitAsync(s_bound);

        // From a thread with no synchronization context, where the child's await continuation runs inline.
        await Task.Run(caller.Cancel);

        var thrown = await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
        thrown.CancellationToken.ShouldBe(caller.Token);
    }

    [Fact]
    public async Task EnclosingScopeCancelled_ChildWaitingOnTheEnclosingScopesTokenItself_IsNotAFailure()
    {
        var outer = new CancelScope();
        var childWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = Task.Run(() => outer.RunAsync(async outerToken =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                // The group's link to the enclosing scope is made here, before the child's own registration.
                var groupToken = group.Token;
                group.StartSoon(_ => WaitOnTheTokenItselfAsync(childWaits, outerToken));
                await Task.Delay(Timeout.Infinite, groupToken).ConfigureAwait(false);
            }).ConfigureAwait(false);
        }));
        await childWaits.Task.WaitAsync(s_bound);

        await Task.Run(() => outer.Cancel("stop"));

        await run.WaitAsync(s_bound);
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task CallerTokenCancelled_BodyWaitingOnTheCallersTokenItself_IsNotTheBodysOwnCancellation()
    {
        using var caller = new CancellationTokenSource();
        var bodyWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TaskGroup? seen = null;

        var run = TaskGroup.RunAsync(
            async group =>
            {
                seen = group;
                group.StartSoon(ct => Task.Delay(Timeout.Infinite, ct));
                await WaitOnTheTokenItselfAsync(bodyWaits, caller.Token).ConfigureAwait(false);
            },
            caller.Token);
        await bodyWaits.Task.WaitAsync(s_bound);
        await Task.Run(caller.Cancel);

        var thrown = await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
        thrown.CancellationToken.ShouldBe(caller.Token);
        seen!.CancelScope.Reason.ShouldBeNull();
    }

    [Fact]
    public async Task OuterScopeCancelled_GroupStopsAndOuterCatches()
    {
        var outer = new CancelScope();
        var childStopped = false;

        var completed = await outer.RunAsync(async _ =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                group.StartSoon(async ct =>
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    finally
                    {
                        childStopped = true;
                    }
                });
                await Task.Yield();
                outer.Cancel();
                await Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan);
            });
        }).WaitAsync(s_bound);

        completed.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
        childStopped.ShouldBeTrue();
    }

    [Fact]
    public async Task OuterScopeCancelled_BodyDoneChildCancelled_Propagates()
    {
        var outer = new CancelScope();

        var completed = await outer.RunAsync(async _ =>
        {
            await TaskGroup.RunAsync(group =>
            {
                group.StartSoon(async ct =>
                {
                    outer.Cancel();
                    await Task.Delay(Timeout.Infinite, ct);
                });
                return Task.CompletedTask;
            });
        }).WaitAsync(s_bound);

        completed.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task StartSoon_AfterFinished_Throws()
    {
        TaskGroup? escaped = null;

        await TaskGroup.RunAsync(group =>
        {
            escaped = group;
            return Task.CompletedTask;
        });

        escaped!.IsFinished.ShouldBeTrue();
        Should.Throw<InvalidOperationException>(() => escaped.StartSoon(_ => Task.CompletedTask));
        Should.Throw<InvalidOperationException>(() => escaped.StartAsync<int>((r, ct) => Task.CompletedTask));
    }

    [Fact]
    public async Task StartSoon_FromChildWhileRunning_IsAwaited()
    {
        var grandchildDone = false;

        await TaskGroup.RunAsync(group =>
        {
            group.StartSoon(async ct =>
            {
                await Task.Yield();
                group.StartSoon(async ct2 =>
                {
                    await Task.Yield();
                    grandchildDone = true;
                });
            });
            return Task.CompletedTask;
        }).WaitAsync(s_bound);

        grandchildDone.ShouldBeTrue();
    }

    [Fact]
    public async Task NullArguments_Throw()
    {
        Should.Throw<ArgumentNullException>(() => TaskGroup.RunAsync(null!));
        await Should.ThrowAsync<ArgumentNullException>(() => TaskGroup.RunAsync<int>(null!));
        Should.Throw<ArgumentOutOfRangeException>(() => new TaskGroupOptions { Mode = (TaskGroupMode)42 });
        Should.Throw<ArgumentNullException>(() => TaskGroup.RunAsync(_ => Task.CompletedTask, null!));

        await TaskGroup.RunAsync(group =>
        {
            Should.Throw<ArgumentNullException>(() => group.StartSoon(null!));
            Should.Throw<ArgumentNullException>(() => group.StartAsync<int>(null!));
            Should.Throw<ArgumentNullException>(() => group.StartAsync(null!));
            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task Child_StartedInsideMoveOn_IsNotCancelledByItsDeadline()
    {
        var time = new FakeTimeProvider();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CancelScope? seen = null;
        TaskGroup? theGroup = null;
        var childCompleted = false;

        var run = TaskGroup.RunAsync(async group =>
        {
            theGroup = group;
            var moveOn = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);
            await moveOn.RunAsync(async ct =>
            {
                group.StartSoon(async childToken =>
                {
                    seen = CancelScope.Current;
                    childStarted.SetResult();
                    await release.Task;
                    await Checkpoint.YieldAsync();
                    childToken.IsCancellationRequested.ShouldBeFalse();
                    childCompleted = true;
                });
                await childStarted.Task;
                time.Advance(TimeSpan.FromSeconds(1));
                await Task.Delay(Timeout.Infinite, ct);
            });

            moveOn.TimedOut.ShouldBeTrue();
            release.SetResult();
        });

        await run.WaitAsync(s_bound);
        seen.ShouldBeSameAs(theGroup!.CancelScope);
        childCompleted.ShouldBeTrue();
    }

    [Fact]
    public async Task Children_RunOnOwnersSynchronizationContext()
    {
        using var loop = new SingleThreadContext();
        var threads = new ConcurrentBag<int>();

        await loop.RunAsync(async () =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                for (var i = 0; i < 3; i++)
                {
                    group.StartSoon(async ct =>
                    {
                        threads.Add(Environment.CurrentManagedThreadId);
                        await Task.Yield();
                        threads.Add(Environment.CurrentManagedThreadId);
                    });
                }

                await group.StartAsync<int>(async (r, ct) =>
                {
                    threads.Add(Environment.CurrentManagedThreadId);
                    await Task.Yield();
                    r.Started(0);
                });
            });
            return true;
        }).WaitAsync(s_bound);

        threads.Count.ShouldBe(7);
        threads.ShouldAllBe(id => id == loop.ThreadId);
    }

    [Fact]
    public async Task Children_WithoutContext_RunOnThreadPool()
    {
        var onPool = false;

        // xunit runs tests under a synchronization context of its own; the owner here has none.
        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.StartSoon(ct =>
            {
                onPool = Thread.CurrentThread.IsThreadPoolThread && SynchronizationContext.Current is null;
                return Task.CompletedTask;
            });
            return Task.CompletedTask;
        })).WaitAsync(s_bound);

        onPool.ShouldBeTrue();
    }

    [Fact]
    public async Task GroupDeadline_DrivenByOptionsTimeProvider_StopsEverythingAsNormalExit()
    {
        var time = new FakeTimeProvider();
        var started = new TaskCompletionSource<TaskGroup>(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = TaskGroup.RunAsync(
            async group =>
            {
                group.CancelScope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(1);
                group.StartSoon(ct => Task.Delay(Timeout.Infinite, ct));
                started.SetResult(group);
                await Task.Delay(Timeout.Infinite, group.Token);
            },
            new TaskGroupOptions { TimeProvider = time });
        var group = await started.Task.WaitAsync(s_bound);
        group.Token.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromMilliseconds(999));
        group.Token.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromMilliseconds(1));

        await run.WaitAsync(s_bound);
        group.CancelScope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_StarterCancelledThenStarted_ThrowsCancelledAndGroupGoesOn()
    {
        using var caller = new CancellationTokenSource();
        var siblingCancelled = false;
        var childEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        await TaskGroup.RunAsync(async group =>
        {
            group.StartSoon(async ct =>
            {
                await childEnded.Task;
                siblingCancelled = ct.IsCancellationRequested;
            });

            var start = group.StartAsync<int>(async (ready, ct) =>
            {
                try
                {
                    await caller.CancelAsync();
                    ready.Started(7);
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    childEnded.SetResult();
                }
            }, caller.Token);

            await Should.ThrowAsync<OperationCanceledException>(start.WaitAsync(s_bound));
        }).WaitAsync(s_bound);

        siblingCancelled.ShouldBeFalse();
    }

    [Fact]
    public async Task StartAsync_StarterCancelRacingStarted_NeverFailsTheGroup()
    {
        var returned = 0;
        var cancelled = 0;
        for (var i = 0; i < 2000; i++)
        {
            using var caller = new CancellationTokenSource();
            await TaskGroup.RunAsync(async group =>
            {
                var start = group.StartAsync<int>(async (ready, ct) =>
                {
                    var canceller = Task.Run(caller.Cancel);
                    ready.Started(1);
                    await canceller;
                    await Checkpoint.YieldAsync(ct);
                }, caller.Token);

                try
                {
                    await start;
                    returned++;
                }
                catch (OperationCanceledException)
                {
                    cancelled++;
                }
            }).WaitAsync(s_bound);
        }

        (returned + cancelled).ShouldBe(2000);
    }

    [Fact]
    public async Task StartAsync_InCancelledAmbientScope_ThrowsAtOnceWithoutRunningChild()
    {
        var ran = false;

        await TaskGroup.RunAsync(async group =>
        {
            var scope = new CancelScope();
            var completed = await scope.RunAsync(async _ =>
            {
                scope.Cancel();
                await group.StartAsync<int>((ready, ct) =>
                {
                    ran = true;
                    ready.Started(1);
                    return Task.CompletedTask;
                });
            });

            completed.ShouldBeFalse();
            scope.CancelledCaught.ShouldBeTrue();
        }).WaitAsync(s_bound);

        ran.ShouldBeFalse();
    }

    [Fact]
    public async Task StartAsync_ChildThrowsOwnCancellationBeforeStarted_CallerGetsThatException()
    {
        var own = new OperationCanceledException("mine");

        await TaskGroup.RunAsync(async group =>
        {
            var ex = await Should.ThrowAsync<OperationCanceledException>(group.StartAsync<int>(async (ready, ct) =>
            {
                await Task.Yield();
                throw own;
            }));

            ex.ShouldBeSameAs(own);
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task CallerTokenCancelled_ThrowsPlainOperationCanceledWithCallersToken()
    {
        using var caller = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = TaskGroup.RunAsync(
            async group =>
            {
                started.SetResult();
                await Task.Delay(Timeout.Infinite, group.Token);
            },
            caller.Token);
        await started.Task.WaitAsync(s_bound);
        await caller.CancelAsync();

        var ex = await Caught.ExceptionAsync(run);
        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
    }

    [Fact]
    public async Task CancelCallbackThrows_GroupStillWaitsForChildrenAndReportsIt()
    {
        var childRunning = 0;
        var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var ex = await Should.ThrowAsync<AggregateException>(TaskGroup.RunAsync(async group =>
        {
            group.Token.Register(() => throw new FormatException("callback"));
            group.StartSoon(async ct =>
            {
                Interlocked.Increment(ref childRunning);
                childStarted.SetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    Interlocked.Decrement(ref childRunning);
                }
            });
            await childStarted.Task;
            throw new IOException("body");
        }).WaitAsync(s_bound));

        childRunning.ShouldBe(0);
        ex.Flatten().InnerExceptions.ShouldContain(e => e is IOException);
        ex.Flatten().InnerExceptions.ShouldContain(e => e is FormatException);
    }

    [Fact]
    public async Task StartCancelRaces_NoChildLeftRunning()
    {
        for (var i = 0; i < 1000; i++)
        {
            var notFinished = 0;
            var seed = i;
            var run = TaskGroup.RunAsync(async group =>
            {
                for (var c = 0; c < 4; c++)
                {
                    // Counted when started, not when it first runs, so a child still queued at the end is caught too.
                    Interlocked.Increment(ref notFinished);
                    group.StartSoon(async ct =>
                    {
                        try
                        {
                            await Task.Delay(Timeout.Infinite, ct);
                        }
                        finally
                        {
                            Interlocked.Decrement(ref notFinished);
                        }
                    });
                }

                Interlocked.Increment(ref notFinished);
                var start = group.StartAsync<int>(async (ready, ct) =>
                {
                    try
                    {
                        ready.Started(1);
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref notFinished);
                    }
                });

                if (seed % 3 == 0)
                {
                    await Task.Run(() => group.Cancel());
                }
                else if (seed % 3 == 1)
                {
                    _ = Task.Run(() => group.Cancel());
                }
                else
                {
                    group.Cancel();
                }

                try
                {
                    await start;
                }
                catch (OperationCanceledException)
                {
                }

                await Checkpoint.SleepAsync(Timeout.InfiniteTimeSpan);
            });

            await run.WaitAsync(s_bound);
            Volatile.Read(ref notFinished).ShouldBe(0, $"iteration {i}");
        }
    }

    // Waits on the token itself (its own registration, newer than any link made before), signals that it waits, and ends
    // with the token's cancellation inline, on the thread that cancels it, before older registrations have run.
    private static async Task WaitOnTheTokenItselfAsync(TaskCompletionSource waiting, CancellationToken token)
    {
        var wait = new TaskCompletionSource();
        using var registration = token.Register(() => wait.TrySetCanceled(token));
        waiting.SetResult();
        await wait.Task.ConfigureAwait(false);
    }
}
