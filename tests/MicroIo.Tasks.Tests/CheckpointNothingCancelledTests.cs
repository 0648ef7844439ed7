using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

/// <summary>
/// Checkpoints answer with one static read while no scope anywhere may be cancelled. Each test pins a way a scope can
/// become cancelled (by itself, its deadline, the scope around it, or a caller's token), and checks that the checkpoints
/// that must see it do, in whichever flow they run, and that the one-read answer comes back once the scope can no longer
/// matter.
/// </summary>
/// <remarks>
/// Each test loads a fresh copy of MicroIo.Tasks (<see cref="FreshTasks"/>): scopes that other tests cancel in parallel
/// would otherwise send every checkpoint the long way, and a wrong one-read answer would never be given.
/// </remarks>
[Trait("Category", "FreshAssembly")]
public class CheckpointNothingCancelledTests
{
    private const int RaceIterations = 500;
    private const int CancelExitIterations = 2_000;
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);

    /// <summary>How a flow that outlives its scope comes to hold a cancelled scope.</summary>
    public enum Outliving
    {
        /// <summary>The enclosing scope is cancelled while both are active, then exits.</summary>
        CancelledThenExited,

        /// <summary>The enclosing scope exits, then is cancelled.</summary>
        ExitedThenCancelled,

        /// <summary>The flow enters its scope only after the enclosing scope was cancelled and exited.</summary>
        EnteredAfterTheEnclosingScopeExitedCancelled,
    }

    [Fact]
    public async Task NothingCancelled_InsideScopesAndAfterThem_CheckpointsAnswerWithOneRead()
    {
        await WithFreshTasks(async fresh =>
        {
            fresh.MayBeCancelled().ShouldBeFalse();
            using (fresh.Enter(fresh.NewScope()))
            {
                using (fresh.Enter(fresh.NewScope()))
                {
                    fresh.MayBeCancelled().ShouldBeFalse("nothing is cancelled inside two plain scopes");
                    fresh.IsCancelled().ShouldBeFalse();
                }

                await fresh.RunTaskGroupAsync(group =>
                {
                    fresh.StartSoon(group, _ => Task.CompletedTask);
                    fresh.MayBeCancelled().ShouldBeFalse("nothing is cancelled inside a task group");
                    return Task.CompletedTask;
                }).WaitAsync(s_bound);
            }

            fresh.MayBeCancelled().ShouldBeFalse("after scopes were entered and exited");
        });
    }

    [Fact]
    public async Task TaskGroupWithACallersToken_AndAStartedChild_NothingCancelled_CheckpointsAnswerWithOneRead()
    {
        // A started child's scope listens to its starter's token, and the group to the caller's: tokens that can be
        // cancelled, but are not.
        await WithFreshTasks(async fresh =>
        {
            using var caller = new CancellationTokenSource();
            var seen = new List<bool>();
            var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await fresh.RunTaskGroupAsync(
                async group =>
                {
                    await fresh.StartAsync(group, async (readiness, _) =>
                    {
                        seen.Add(fresh.MayBeCancelled());
                        FreshTasks.Started(readiness);
                        await stop.Task.ConfigureAwait(false);
                    }).WaitAsync(s_bound);
                    seen.Add(fresh.MayBeCancelled());
                    seen.Add(fresh.IsCancelled());
                    stop.SetResult();
                },
                caller.Token).WaitAsync(s_bound);

            seen.ShouldBe([false, false, false]);
            fresh.MayBeCancelled().ShouldBeFalse();
        });
    }

    [Fact]
    public async Task TaskGroupBodyThatNeverAsksForAToken_CallersTokenCancelled_CheckpointSeesIt()
    {
        await WithFreshTasks(async fresh =>
        {
            using var caller = new CancellationTokenSource();
            var seen = new List<bool>();
            await fresh.RunTaskGroupAsync(
                async _ =>
                {
                    seen.Add(fresh.IsCancelled());
                    await Task.Run(caller.Cancel).ConfigureAwait(false);
                    seen.Add(fresh.IsCancelled());
                },
                caller.Token).WaitAsync(s_bound);

            seen.ShouldBe([false, true]);
            fresh.MayBeCancelled().ShouldBeFalse();
        });
    }

    [Fact]
    public async Task CancelRacingTheEntry_CheckpointInsideSeesIt_NothingStaysCounted()
    {
        // The cancel marks the scope and then looks at its phase; the entry changes the phase and then looks at the mark:
        // at least one of them must count the scope.
        await WithFreshTasks(async fresh =>
        {
            for (var i = 0; i < CancelExitIterations; i++)
            {
                var scope = fresh.NewScope();
                using var start = new Barrier(2);
                var cancel = ScopeFlows.CancelAtTheBarrier(() => fresh.Cancel(scope), start);
                start.SignalAndWait(s_bound).ShouldBeTrue();
                using (fresh.Enter(scope))
                {
                    await cancel.WaitAsync(s_bound);
                    fresh.IsCancelled().ShouldBeTrue($"iteration {i}: the cancel returned before this checkpoint");
                }

                fresh.MayBeCancelled().ShouldBeFalse($"iteration {i}");
            }
        });
    }

    [Fact]
    public async Task ScopeCancelledFromAnotherThread_CheckpointInsideSeesIt_AndOneReadIsBackAfterTheExit()
    {
        await WithFreshTasks(async fresh =>
        {
            var scope = fresh.NewScope();
            using (fresh.Enter(scope))
            {
                fresh.IsCancelled().ShouldBeFalse();
                await Task.Run(() => fresh.Cancel(scope)).WaitAsync(s_bound);
                fresh.IsCancelled().ShouldBeTrue();
                fresh.IsCancelled().ShouldBeTrue("level-triggered: every later checkpoint sees it");
            }

            fresh.IsCancelled().ShouldBeFalse();
            fresh.MayBeCancelled().ShouldBeFalse("the cancelled scope exited with nothing entered inside it still active");
        });
    }

    [Fact]
    public async Task ScopeCancelledBeforeEntering_CheckpointInsideSeesIt()
    {
        await WithFreshTasks(fresh =>
        {
            var scope = fresh.NewScope();
            fresh.Cancel(scope);
            fresh.MayBeCancelled().ShouldBeFalse("a scope that is not active cannot be any flow's ambient scope");
            using (fresh.Enter(scope))
            {
                fresh.IsCancelled().ShouldBeTrue();
            }

            fresh.MayBeCancelled().ShouldBeFalse();
            return Task.CompletedTask;
        });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ScopeRunWithACallersToken_TokenCancelledFromAnotherThread_CheckpointSeesIt(bool cancelledBeforeEntering)
    {
        await WithFreshTasks(async fresh =>
        {
            using var caller = new CancellationTokenSource();
            if (cancelledBeforeEntering)
            {
                caller.Cancel();
            }

            var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var seen = new List<bool>();
            var run = fresh.RunAsync(
                fresh.NewScope(),
                async _ =>
                {
                    seen.Add(fresh.MayBeCancelled());
                    seen.Add(fresh.IsCancelled());
                    entered.SetResult();
                    await cancelled.Task.ConfigureAwait(false);
                    seen.Add(fresh.IsCancelled());
                },
                caller.Token);

            await entered.Task.WaitAsync(s_bound);
            await Task.Run(caller.Cancel).WaitAsync(s_bound);
            cancelled.SetResult();
            (await run.WaitAsync(s_bound)).ShouldBeTrue("the body ran to its end");

            seen.ShouldBe(
                [cancelledBeforeEntering, cancelledBeforeEntering, true],
                "a token that can be cancelled makes the scope count only once it is cancelled, and the checkpoints see it");
            fresh.MayBeCancelled().ShouldBeFalse("the scope stopped listening when it exited");
        });
    }

    [Fact]
    public async Task DeadlinePasses_CheckpointInsideSeesIt()
    {
        await WithFreshTasks(fresh =>
        {
            var time = new FakeTimeProvider();
            using (fresh.Enter(fresh.MoveOnAfter(TimeSpan.FromSeconds(5), time)))
            {
                fresh.MayBeCancelled().ShouldBeFalse("a deadline that has not passed cancels nothing");
                time.Advance(TimeSpan.FromSeconds(5));
                fresh.IsCancelled().ShouldBeTrue();
            }

            fresh.MayBeCancelled().ShouldBeFalse();
            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task ShieldLoweredInsideACancelledScope_CheckpointSeesTheCancellation()
    {
        await WithFreshTasks(fresh =>
        {
            var outer = fresh.NewScope();
            var inner = fresh.NewScope();
            fresh.SetShield(inner, true);
            using (fresh.Enter(outer))
            {
                using (fresh.Enter(inner))
                {
                    fresh.Cancel(outer);
                    fresh.IsCancelled().ShouldBeFalse("the shield hides the enclosing scope's cancellation");
                    fresh.SetShield(inner, false);
                    fresh.IsCancelled().ShouldBeTrue();
                }
            }

            fresh.MayBeCancelled().ShouldBeFalse();
            return Task.CompletedTask;
        });
    }

    [Theory]
    [InlineData(Outliving.CancelledThenExited)]
    [InlineData(Outliving.ExitedThenCancelled)]
    [InlineData(Outliving.EnteredAfterTheEnclosingScopeExitedCancelled)]
    public async Task FlowOutlivingItsEnclosingScope_ScopeItEnteredSeesTheEnclosingCancellation(Outliving how)
    {
        await WithFreshTasks(async fresh =>
        {
            var outer = fresh.NewScope();
            var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var enter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var check = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<bool> outliving;
            using (fresh.Enter(outer))
            {
                // Started inside the enclosing scope: the task's flow holds it, and outlives it.
                outliving = Task.Run(async () =>
                {
                    await enter.Task.ConfigureAwait(false);
                    bool seen;
                    using (fresh.Enter(fresh.NewScope()))
                    {
                        entered.SetResult();
                        await check.Task.ConfigureAwait(false);
                        seen = fresh.IsCancelled();
                    }

                    await exited.Task.ConfigureAwait(false);
                    return seen;
                });

                if (how != Outliving.EnteredAfterTheEnclosingScopeExitedCancelled)
                {
                    enter.SetResult();
                    await entered.Task.WaitAsync(s_bound);
                }

                if (how == Outliving.CancelledThenExited)
                {
                    fresh.Cancel(outer);
                }
            }

            if (how != Outliving.CancelledThenExited)
            {
                fresh.Cancel(outer);
            }

            if (how == Outliving.EnteredAfterTheEnclosingScopeExitedCancelled)
            {
                fresh.MayBeCancelled().ShouldBeFalse("the cancelled scope exited and nothing is entered inside it yet");
                enter.SetResult();
                await entered.Task.WaitAsync(s_bound);
            }

            check.SetResult();
            exited.SetResult();
            (await outliving.WaitAsync(s_bound)).ShouldBeTrue();
            fresh.MayBeCancelled().ShouldBeFalse("the last scope entered inside the cancelled one exited");
        });
    }

    [Fact]
    public async Task FlowOutlivingTwoScopes_TheMiddleOneExitedAfterTheOuterWasCancelled_InnerCheckpointSeesIt()
    {
        await WithFreshTasks(async fresh =>
        {
            var outer = fresh.NewScope();
            var innerEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var outerCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var check = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<bool> inner = null!;
            Task middle;
            using (fresh.Enter(outer))
            {
                middle = Task.Run(async () =>
                {
                    using (fresh.Enter(fresh.NewScope()))
                    {
                        inner = Task.Run(async () =>
                        {
                            using (fresh.Enter(fresh.NewScope()))
                            {
                                innerEntered.SetResult();
                                await check.Task.ConfigureAwait(false);
                                return fresh.IsCancelled();
                            }
                        });
                        await innerEntered.Task.ConfigureAwait(false);
                        await outerCancelled.Task.ConfigureAwait(false);
                    }
                });

                await innerEntered.Task.WaitAsync(s_bound);
                fresh.Cancel(outer);
                outerCancelled.SetResult();
                await middle.WaitAsync(s_bound);
            }

            // Both scopes around the inner one have exited: only the middle one's record of the cancellation that reached
            // it before its exit still reaches the inner scope.
            check.SetResult();
            (await inner.WaitAsync(s_bound)).ShouldBeTrue();
            fresh.MayBeCancelled().ShouldBeFalse();
        });
    }

    [Fact]
    public async Task FlowOutlivingAScopeShieldedAfterTheEnclosingCancel_ScopeItEnteredSeesTheCancellationThatHadReachedIt()
    {
        await WithFreshTasks(async fresh =>
        {
            var outer = fresh.NewScope();
            var middle = fresh.NewScope();
            var check = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<bool> outliving;
            using (fresh.Enter(outer))
            {
                using (fresh.Enter(middle))
                {
                    fresh.Cancel(outer);

                    // The cancellation had reached the middle scope, so it stays there once the shield is raised: it is the
                    // middle scope's own record from here on, and the only one left once both enclosing scopes exit.
                    fresh.SetShield(middle, true);
                    outliving = await CheckInAnOutlivingFlowAsync(fresh, check.Task);
                }
            }

            check.SetResult();
            (await outliving.WaitAsync(s_bound)).ShouldBeTrue();
            fresh.MayBeCancelled().ShouldBeFalse();
        });
    }

    [Fact]
    public async Task FlowOutlivingAScopeWhoseLinkFiredDuringItsExit_ScopeItEnteredSeesTheCancellation()
    {
        // The middle scope's exit finds the enclosing scope uncancelled and records nothing, then (stopping its deadline
        // timer, the clock's code) lets the enclosing scope be cancelled while its link is still registered: only its token
        // shows that cancellation, which reaches the scope entered inside it by a flow that outlives both.
        await WithFreshTasks(async fresh =>
        {
            var outer = fresh.NewScope();
            var cancelOnTimerDisposal = false;
            var clock = new ClockWithTimerDisposal(() =>
            {
                if (cancelOnTimerDisposal)
                {
                    cancelOnTimerDisposal = false;
                    fresh.Cancel(outer);
                }
            });
            var middle = fresh.MoveOnAfter(TimeSpan.FromDays(1), clock);
            var check = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task<bool> outliving;
            using (fresh.Enter(outer))
            {
                using (fresh.Enter(middle))
                {
                    _ = fresh.Token(middle);
                    outliving = await CheckInAnOutlivingFlowAsync(fresh, check.Task);
                    cancelOnTimerDisposal = true;
                }

                cancelOnTimerDisposal.ShouldBeFalse("the exit stopped the deadline timer, which cancelled the enclosing scope");
                fresh.Token(middle).IsCancellationRequested.ShouldBeTrue("the link's callback cancelled the exited scope's token");
            }

            check.SetResult();
            (await outliving.WaitAsync(s_bound)).ShouldBeTrue();
            fresh.MayBeCancelled().ShouldBeFalse();
        });
    }

    [Fact]
    public async Task EnclosingScopeCancelledAndExitedWhileFlowsEnterAndExitScopesInsideIt_EveryLaterCheckpointThrows_NothingStaysCounted()
    {
        // Races the enclosing scope's cancel and exit against scopes entered and exited inside it from flows that outlive
        // it. Invariants: a checkpoint that runs after the cancel returned, in a scope entered inside the cancelled one,
        // sees the cancellation; once every scope has exited, checkpoints answer with one read again.
        await WithFreshTasks(async fresh =>
        {
            for (var i = 0; i < RaceIterations; i++)
            {
                var outer = fresh.NewScope();
                var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var cancelDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Task<bool>[] flows;
                using (fresh.Enter(outer))
                {
                    flows =
                    [
                        .. Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
                        {
                            await go.Task.ConfigureAwait(false);
                            using (fresh.Enter(fresh.NewScope()))
                            {
                                await cancelDone.Task.ConfigureAwait(false);
                                return fresh.IsCancelled();
                            }
                        })),
                    ];
                    go.SetResult();
                    fresh.Cancel(outer);
                    cancelDone.SetResult();
                }

                var seen = await Task.WhenAll(flows).WaitAsync(s_bound);
                seen.ShouldAllBe(s => s, $"iteration {i}: every scope entered inside the cancelled one sees it");
                fresh.MayBeCancelled().ShouldBeFalse($"iteration {i}: every scope exited");
            }
        });
    }

    [Fact]
    public async Task CancelRacingTheExit_NothingStaysCounted()
    {
        // A cancel that looks at the phase just before the exit, and counts the scope just after it, must take the count
        // back itself: the exit found nothing to undo.
        await WithFreshTasks(async fresh =>
        {
            for (var i = 0; i < CancelExitIterations; i++)
            {
                var scope = fresh.NewScope();
                using var start = new Barrier(2);
                Task cancel;
                using (fresh.Enter(scope))
                {
                    cancel = ScopeFlows.CancelAtTheBarrier(() => fresh.Cancel(scope), start);
                    start.SignalAndWait(s_bound).ShouldBeTrue();
                }

                await cancel.WaitAsync(s_bound);
                fresh.MayBeCancelled().ShouldBeFalse($"iteration {i}: the scope exited, cancelled or not");
            }
        });
    }

    /// <summary>Enters a scope in a flow forked from the caller's (so inside the caller's ambient scope), which outlives the caller's scopes; once told, it checkpoints there, exits, and returns what the checkpoint saw.</summary>
    private static async Task<Task<bool>> CheckInAnOutlivingFlowAsync(FreshTasks fresh, Task check)
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flow = Task.Run(async () =>
        {
            using (fresh.Enter(fresh.NewScope()))
            {
                entered.SetResult();
                await check.ConfigureAwait(false);
                return fresh.IsCancelled();
            }
        });
        await entered.Task.WaitAsync(s_bound);
        return flow;
    }

    private static async Task WithFreshTasks(Func<FreshTasks, Task> test)
    {
        var fresh = FreshTasks.Load();
        try
        {
            await test(fresh);
        }
        finally
        {
            fresh.Unload();
        }
    }
}
