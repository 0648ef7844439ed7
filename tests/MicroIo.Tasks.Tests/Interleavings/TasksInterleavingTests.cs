namespace MicroIo.Tests.Interleavings;

/// <summary>
/// Explores cancel vs readiness and cancel vs deadline under seeded interleavings injected from inside the child and
/// from the racing cancellers: every <c>StartAsync</c> caller ends with the value or a cancellation, never hangs.
/// </summary>
public class TasksInterleavingTests
{
    private const int Seeds = 150;

    [Fact]
    public async Task StartAsync_CallerCancelRacingReadiness_ValueOrCancellationAndTheChildBelongsToTheGroup()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            using var caller = new CancellationTokenSource();
            var childSawCancel = false;
            string? starterOutcome = null;

            await TaskGroup.RunAsync(async group =>
            {
                var start = group.StartAsync<int>(async (ready, ct) =>
                {
                    await sched.PointAsync();
                    ready.Started(7);
                    await sched.PointAsync();
                    childSawCancel = ct.IsCancellationRequested;
                }, caller.Token);
                var cancel = Task.Run(async () =>
                {
                    await sched.PointAsync();
                    await caller.CancelAsync();
                });

                try
                {
                    (await start).ShouldBe(7);
                    starterOutcome = "value";
                }
                catch (OperationCanceledException)
                {
                    starterOutcome = "cancelled";
                }

                await cancel;
            });

            starterOutcome.ShouldNotBeNull();
            if (starterOutcome == "value")
            {
                // Once started, the child belongs to the group: the caller's token no longer reaches it.
                childSawCancel.ShouldBeFalse();
            }
        });
    }

    [Fact]
    public async Task StartAsync_GroupCancelRacingReadinessAndChildFailure_StarterNeverHangs()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var plan = sched.NextInt(0, 3);
            Exception? starterOutcome = null;
            Exception? groupOutcome = null;
            try
            {
                await TaskGroup.RunAsync(async group =>
                {
                    var start = group.StartAsync(async (ready, ct) =>
                    {
                        await sched.PointAsync();
                        if (plan == 0)
                        {
                            throw new IOException("before ready");
                        }

                        if (plan == 1)
                        {
                            return;
                        }

                        ready.Started();
                    });
                    var cancel = Task.Run(async () =>
                    {
                        await sched.PointAsync();
                        group.Cancel("race");
                    });
                    starterOutcome = await Record.ExceptionAsync(() => start);
                    await cancel;
                });
            }
            catch (Exception ex)
            {
                groupOutcome = ex;
            }

            // A failure before readiness goes to the starter only; the group exits normally.
            groupOutcome.ShouldBeNull();
            switch (starterOutcome)
            {
                case null:
                    plan.ShouldBe(2);
                    break;
                case IOException:
                    plan.ShouldBe(0);
                    break;
                case OperationCanceledException:
                    break;
                case InvalidOperationException:
                    plan.ShouldBe(1);
                    break;
                default:
                    throw new ShouldAssertException("unexpected starter outcome " + starterOutcome);
            }
        });
    }

    [Fact]
    public async Task ScopeGroupCancel_RacingScopeEntryAndExit_LatchedCancelReachesEveryLaterScope()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var group = new ScopeGroup();
            var scopes = Enumerable.Range(0, 4).Select(_ => group.CreateScope()).ToArray();

            await sched.RaceAsync(
                async () =>
                {
                    foreach (var scope in scopes)
                    {
                        await sched.PointAsync();
                        await scope.RunAsync(async ct => await sched.PointAsync());
                    }
                },
                async () =>
                {
                    await sched.PointAsync();
                    group.Cancel("latch", latch: true);
                });

            group.IsLatched.ShouldBeTrue();
            var late = group.CreateScope();
            (await late.RunAsync(ct => Task.Delay(Timeout.InfiniteTimeSpan, ct))).ShouldBeFalse();
            late.CancelledCaught.ShouldBeTrue();
        });
    }

    [Fact]
    public async Task Enter_RacingTheFirstTokenRequest_LeavesNoLinkToTheOutsideAfterExit()
    {
        // Enter links the scope when a source exists; the first Token links it when the scope is active. When both happen
        // at once both may link, and a second link that replaced the first would leak it: the enclosing scope's later
        // cancellation would still reach the exited scope.
        for (var i = 0; i < 500; i++)
        {
            var outer = new CancelScope();
            var inner = new CancelScope();
            using (outer.Enter())
            {
                _ = outer.Token;
                using var spinning = new ManualResetEventSlim();
                var reader = Task.Run(() =>
                {
                    // Asks for the token the moment Enter has made the scope active, while Enter still runs.
                    spinning.Set();
                    while (!inner.IsActive)
                    {
                        Thread.SpinWait(1);
                    }

                    return inner.Token;
                });
                spinning.Wait();
                using (inner.Enter())
                {
                    await reader;
                }
            }

            outer.Cancel();
            inner.IsCancellationRequested.ShouldBeFalse($"iteration {i}");
            inner.Token.IsCancellationRequested.ShouldBeFalse($"iteration {i}");
        }
    }
}
