using System.Diagnostics;
using System.Reflection;
using MicroIo.Tests.Mutation;

namespace MicroIo.Tests;

/// <summary>
/// How a group counts its children without a lock: every way a child can end releases its place, a child that can
/// never run gives its place back, nothing slips in once the group has finished, and the group's scope never leaks
/// onto the thread that ran a child.
/// </summary>
public sealed class TaskGroupChildCountTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task StartSoon_ChildThrowsBeforeReturningATask_FailsTheGroupWithThatException()
    {
        var failure = new IOException("thrown before any task");

        var ex = await Caught.ExceptionAsync(Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.StartSoon(_ => throw failure);
            return Task.CompletedTask;
        })));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldBe([failure]);
    }

    [Fact]
    public async Task StartSoon_ChildReturnsAFaultedTask_FailsTheGroupWithItsException()
    {
        var failure = new IOException("faulted at once");

        var ex = await Caught.ExceptionAsync(Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.StartSoon(_ => Task.FromException(failure));
            return Task.CompletedTask;
        })));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldBe([failure]);
    }

    [Fact]
    public async Task StartSoon_ChildReturnsNull_FailsTheGroupWithNullReference()
    {
        var ex = await Caught.ExceptionAsync(Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.StartSoon(_ => null!);
            return Task.CompletedTask;
        })));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.Single().ShouldBeOfType<NullReferenceException>();
    }

    [Fact]
    public async Task StartSoon_ChildReturnsTheGroupsCancellationAtOnce_IsANormalExit()
    {
        var ran = false;

        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.Cancel("stop");
            group.StartSoon(ct =>
            {
                ran = true;
                return Task.FromCanceled(ct);
            });
            return Task.CompletedTask;
        })).WaitAsync(s_bound);

        ran.ShouldBeTrue();
    }

    [Fact]
    public async Task StartSoon_ManyChildrenThatCompleteAtOnce_AreAllCountedOut()
    {
        const int Children = 2_000;
        var ran = 0;
        TaskGroup? theGroup = null;

        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            theGroup = group;
            for (var i = 0; i < Children; i++)
            {
                group.StartSoon(_ =>
                {
                    Interlocked.Increment(ref ran);
                    return Task.CompletedTask;
                });
            }

            return Task.CompletedTask;
        })).WaitAsync(s_bound);

        ran.ShouldBe(Children);
        theGroup!.RunningCount.ShouldBe(0);
        theGroup.IsFinished.ShouldBeTrue();
    }

    [Fact]
    public async Task RunningCountAndIsFinished_CountChildrenOnly_BeforeAndAfterTheBodyEnds()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bodyEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var whileBodyRuns = (Running: -1, Finished: true);
        TaskGroup? theGroup = null;

        var run = Task.Run(() => TaskGroup.RunAsync(group =>
        {
            theGroup = group;
            for (var i = 0; i < 3; i++)
            {
                group.StartSoon(async _ => await release.Task.ConfigureAwait(false));
            }

            whileBodyRuns = (group.RunningCount, group.IsFinished);
            bodyEnded.SetResult();
            return Task.CompletedTask;
        }));
        await bodyEnded.Task.WaitAsync(s_bound);
        var afterBody = (theGroup!.RunningCount, theGroup.IsFinished);
        release.SetResult();
        await run.WaitAsync(s_bound);

        whileBodyRuns.ShouldBe((3, false));
        afterBody.ShouldBe((3, false));
        theGroup.RunningCount.ShouldBe(0);
        theGroup.IsFinished.ShouldBeTrue();
    }

    [Fact]
    public async Task StartSoon_OwnersContextRefusesThePost_ThrowsToTheCallerAndTheGroupStillFinishes()
    {
        var refusal = new InvalidOperationException("the loop is closed");
        Exception? thrown = null;
        var runningAfter = -1;

        var run = RunOn(new RefusingContext(refusal), () => TaskGroup.RunAsync(group =>
        {
            thrown = Should.Throw<InvalidOperationException>(() => group.StartSoon(_ => Task.CompletedTask));
            runningAfter = group.RunningCount;
            return Task.CompletedTask;
        }));
        await run.WaitAsync(s_bound);

        thrown.ShouldBeSameAs(refusal);
        runningAfter.ShouldBe(0);
    }

    [Fact]
    public async Task StartAsync_OwnersContextRefusesThePost_ThrowsToTheCallerAndTheGroupStillFinishes()
    {
        var refusal = new InvalidOperationException("the loop is closed");
        Exception? thrown = null;
        var runningAfter = -1;

        var run = RunOn(new RefusingContext(refusal), () => TaskGroup.RunAsync(group =>
        {
            try
            {
                _ = group.StartAsync<int>((ready, _) => Task.CompletedTask);
            }
            catch (InvalidOperationException ex)
            {
                thrown = ex;
            }

            runningAfter = group.RunningCount;
            return Task.CompletedTask;
        }));
        await run.WaitAsync(s_bound);

        thrown.ShouldBeSameAs(refusal);
        runningAfter.ShouldBe(0);
    }

    [Fact]
    public async Task StartSoon_FlowSuppressedOnTheOwnersContext_TheGroupsScopeStaysOffTheOwnersThread()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        CancelScope? seenByChild = null;
        CancelScope? seenOnTheOwnersThread = null;
        TaskGroup? theGroup = null;
        Task? run = null;

        ManualSynchronizationContext.Run(context =>
        {
            run = TaskGroup.RunAsync(group =>
            {
                theGroup = group;
                using (ExecutionContext.SuppressFlow())
                {
                    group.StartSoon(async _ =>
                    {
                        seenByChild = CancelScope.Current;
                        await release.Task.ConfigureAwait(false);
                    });
                }

                return Task.CompletedTask;
            });

            // Runs the child on this thread, up to its await: the group is still running, so its scope is active.
            context.RunPending();
            seenOnTheOwnersThread = CancelScope.Current;
        });
        release.SetResult();
        await run!.WaitAsync(s_bound);

        seenByChild.ShouldBeSameAs(theGroup!.CancelScope);
        seenOnTheOwnersThread.ShouldBeNull();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StartSoon_WhenTheChildCountIsFull_ThrowsInvalidOperationAndTheGroupGoesOn(bool afterTheBodyEnded)
    {
        // The count cannot be filled by starting a billion children in a test: count all but one of them in, none ended.
        // Children wait on the test's context, so none ends while the counts are set by hand.
        const long Most = (1 << 30) - 1;
        Exception? refused = null;
        var ran = 0;

        void FillAndStart(TaskGroup group)
        {
            var held = GroupCounts.Get(group);
            GroupCounts.Set(group, started: held.Started + Most - 1, ended: held.Ended);
            group.StartSoon(_ => Count());
            refused = Should.Throw<InvalidOperationException>(() => group.StartSoon(_ => Count()));

            // Back to the one real child counted in, and a place for another.
            GroupCounts.Set(group, started: held.Started + 1, ended: held.Ended);
            group.StartSoon(_ => Count());
        }

        Task Count()
        {
            Interlocked.Increment(ref ran);
            return Task.CompletedTask;
        }

        await RunWithChildrenOnAManualContextAsync((group, _) =>
        {
            if (afterTheBodyEnded)
            {
                // Run where the body has let go of the group, just before it would finish.
                group.BeforeFinishingForTests = () =>
                {
                    group.BeforeFinishingForTests = null;
                    FillAndStart(group);
                };
            }
            else
            {
                FillAndStart(group);
            }

            return Task.CompletedTask;
        });

        refused!.Message.ShouldContain("too many children");
        ran.ShouldBe(2);
    }

    [Fact]
    public async Task StartSoon_AfterEveryChildSoFarEndedWhileTheBodyRuns_IsAcceptedAndWaitedFor()
    {
        // The counts then match, as they do when the group finishes: only the body's end lets them finish it.
        (bool Finished, int Running)? afterTheFirst = null;
        var ranTheSecond = false;

        await RunWithChildrenOnAManualContextAsync((group, context) =>
        {
            group.StartSoon(_ => Task.CompletedTask);
            context.RunPending();
            afterTheFirst = (group.IsFinished, group.RunningCount);
            group.StartSoon(_ =>
            {
                ranTheSecond = true;
                return Task.CompletedTask;
            });
            return Task.CompletedTask;
        });

        afterTheFirst.ShouldBe((false, 0));
        ranTheSecond.ShouldBeTrue();
    }

    [Fact]
    public async Task StartSoon_AfterMoreThanFourBillionChildrenInTheGroupsLife_StillCountsAndFinishes()
    {
        // A service's group can start a child per request for as long as it runs: its counts must not wrap.
        const long Lifetime = (1L << 32) + 5;
        const long Flags = 3L << 62;
        var ran = 0;
        TaskGroup? theGroup = null;
        var running = -1;

        // Children wait on the test's context, so all three are running when the body counts them.
        await RunWithChildrenOnAManualContextAsync((group, _) =>
        {
            theGroup = group;
            GroupCounts.Set(group, started: Lifetime, ended: Lifetime);
            for (var i = 0; i < 3; i++)
            {
                group.StartSoon(_ =>
                {
                    ran++;
                    return Task.CompletedTask;
                });
            }

            running = group.RunningCount;
            return Task.CompletedTask;
        });

        running.ShouldBe(3);
        ran.ShouldBe(3);
        theGroup!.RunningCount.ShouldBe(0);
        theGroup.IsFinished.ShouldBeTrue();
        // Less the flags for the finish and the body's end, which sit above every count.
        var (started, ended) = GroupCounts.Get(theGroup);
        (started & Flags, ended & Flags).ShouldBe((1L << 62, 1L << 62));
        (started & ~Flags, ended & ~Flags).ShouldBe((Lifetime + 3, Lifetime + 3));
    }

    [Fact]
    public async Task StartSoon_BetweenTheLastEndAndTheFinish_IsWaitedForAndFinishesTheGroup()
    {
        var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var childEnded = false;
        TaskGroup? theGroup = null;

        // The body ends with no child running, so the group is about to finish: a child started there slips in before it.
        var run = Task.Run(() => TaskGroup.RunAsync(group =>
        {
            theGroup = group;
            group.BeforeFinishingForTests = () =>
            {
                group.BeforeFinishingForTests = null;
                group.StartSoon(async _ =>
                {
                    childStarted.SetResult();
                    await release.Task.ConfigureAwait(false);
                    childEnded = true;
                });
            };
            return Task.CompletedTask;
        }));
        await childStarted.Task.WaitAsync(s_bound);
        var whileTheChildRuns = (theGroup!.IsFinished, theGroup.RunningCount, run.IsCompleted);
        release.SetResult();
        await run.WaitAsync(s_bound);

        whileTheChildRuns.ShouldBe((false, 1, false));
        childEnded.ShouldBeTrue();
        theGroup.IsFinished.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_OnAFinishedGroupThatWasCancelled_ThrowsInvalidOperationNotCancellation()
    {
        TaskGroup? finished = null;
        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            finished = group;
            group.Cancel("done");
            return Task.CompletedTask;
        })).WaitAsync(s_bound);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        var ex = Should.Throw<InvalidOperationException>(() => finished!.StartAsync<int>((ready, _) => Task.CompletedTask, cancelled.Token));

        ex.Message.ShouldContain("finished");
        finished!.Token.IsCancellationRequested.ShouldBeTrue();
    }

    [Fact]
    public async Task StartSoon_RacingTheGroupsEnd_EveryChildIsRefusedOrEndsBeforeTheGroupReturns()
    {
        var clock = Stopwatch.StartNew();
        var iterations = 0;
        var refusedSome = false;
        while (iterations < 500 && clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            iterations++;
            var spin = iterations % 64;
            var lastChildEnding = 0;
            var accepted = 0;
            var ended = 0;
            var refused = false;
            TaskGroup? theGroup = null;

            // Starts one child from outside the group just as its last child ends, a little earlier or later each time.
            var spawner = Task.Run(() =>
            {
                while (Volatile.Read(ref lastChildEnding) == 0)
                {
                    if (clock.Elapsed > s_bound)
                    {
                        throw new TimeoutException("the group's last child never ran");
                    }

                    Thread.SpinWait(1);
                }

                Thread.SpinWait(spin);
                try
                {
                    Volatile.Read(ref theGroup)!.StartSoon(_ =>
                    {
                        Interlocked.Increment(ref ended);
                        return Task.CompletedTask;
                    });
                    accepted++;
                }
                catch (InvalidOperationException ex) when (ex.Message.Contains("finished", StringComparison.Ordinal))
                {
                    refused = true;
                }
            });
            await Task.Run(() => TaskGroup.RunAsync(group =>
            {
                Volatile.Write(ref theGroup, group);
                group.StartSoon(_ =>
                {
                    Volatile.Write(ref lastChildEnding, 1);
                    return Task.CompletedTask;
                });
                return Task.CompletedTask;
            })).WaitAsync(s_bound);
            var endedWhenTheGroupReturned = Volatile.Read(ref ended);
            await spawner.WaitAsync(s_bound);

            // A child the spawner got in had ended by the time the group returned: none slipped in after its end.
            endedWhenTheGroupReturned.ShouldBe(accepted);
            refusedSome |= refused;
        }

        refusedSome.ShouldBeTrue();
    }

    /// <summary>Runs a group whose children wait on a manual context, runs what its body left there, and waits for the group.</summary>
    /// <remarks>No child runs until the body (through the context it is given) or the end of the body runs the context.</remarks>
    private static Task RunWithChildrenOnAManualContextAsync(Func<TaskGroup, ManualSynchronizationContext, Task> body)
    {
        Task? run = null;
        ManualSynchronizationContext.Run(context =>
        {
            run = TaskGroup.RunAsync(group => body(group, context));
            context.RunPending();
        });
        return run!.WaitAsync(s_bound);
    }

    private static Task RunOn(SynchronizationContext context, Func<Task> start)
    {
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            return start();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    /// <summary>An owner context that refuses every post, as a loop that has closed may.</summary>
    private sealed class RefusingContext(Exception refusal) : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) => throw refusal;

        public override SynchronizationContext CreateCopy() => this;
    }

    /// <summary>Reads and sets a group's started and ended counts, for states no test could reach by starting children.</summary>
    private static class GroupCounts
    {
        private static readonly FieldInfo s_counts = typeof(TaskGroup).GetField("_counts", BindingFlags.NonPublic | BindingFlags.Instance)!;
        private static readonly FieldInfo s_started = s_counts.FieldType.GetField("Started")!;
        private static readonly FieldInfo s_ended = s_counts.FieldType.GetField("Ended")!;

        public static (long Started, long Ended) Get(TaskGroup group)
        {
            var counts = s_counts.GetValue(group)!;
            return ((long)s_started.GetValue(counts)!, (long)s_ended.GetValue(counts)!);
        }

        public static void Set(TaskGroup group, long started, long ended)
        {
            var counts = s_counts.GetValue(group)!;
            s_started.SetValue(counts, started);
            s_ended.SetValue(counts, ended);
            s_counts.SetValue(group, counts);
        }
    }
}
