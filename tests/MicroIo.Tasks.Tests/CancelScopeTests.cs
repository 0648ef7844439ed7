using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class CancelScopeTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void New_IsInactiveAndNotCancelled()
    {
        var scope = new CancelScope();

        scope.IsActive.ShouldBeFalse();
        scope.CancelCalled.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeFalse();
        scope.TimedOut.ShouldBeFalse();
        scope.Shield.ShouldBeFalse();
        scope.Deadline.ShouldBeNull();
        scope.Reason.ShouldBeNull();
        scope.Token.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public void Cancel_FirstCallOnly_ReturnsTrueAndKeepsReason()
    {
        var scope = new CancelScope();

        scope.Cancel("first").ShouldBeTrue();
        scope.Cancel("second").ShouldBeFalse();

        scope.CancelCalled.ShouldBeTrue();
        scope.Reason.ShouldBe("first");
        scope.Token.IsCancellationRequested.ShouldBeTrue();
        scope.IsCancellationRequested.ShouldBeTrue();
    }

    [Fact]
    public void Cancel_RacingFromManyThreads_OneWinner()
    {
        for (var i = 0; i < 200; i++)
        {
            var scope = new CancelScope();
            var wins = 0;

            Parallel.For(0, 8, n =>
            {
                if (scope.Cancel($"r{n}"))
                {
                    Interlocked.Increment(ref wins);
                }
            });

            wins.ShouldBe(1);
        }
    }

    [Fact]
    public async Task RunAsync_BodyCompletes_ReturnsTrue()
    {
        var scope = new CancelScope();

        var completed = await scope.RunAsync(async ct => await Task.Yield());

        completed.ShouldBeTrue();
        scope.CancelledCaught.ShouldBeFalse();
        scope.IsActive.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_WithResult_ReturnsValueOrDefault()
    {
        var ok = await new CancelScope().RunAsync(async ct =>
        {
            await Task.Yield();
            return 42;
        });
        var cancelledScope = new CancelScope();
        var cancelled = await cancelledScope.RunAsync(async ct =>
        {
            cancelledScope.Cancel();
            await Checkpoint.YieldAsync();
            return 42;
        });

        ok.ShouldBe(42);
        cancelled.ShouldBe(0);
        cancelledScope.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_CancelInside_StopsTokenWaitsAndIsCaught()
    {
        var scope = new CancelScope();
        var reachedEnd = false;

        var completed = await scope.RunAsync(async ct =>
        {
            scope.Cancel("stop");
            await Task.Delay(Timeout.Infinite, ct);
            reachedEnd = true;
        }).WaitAsync(s_bound);

        completed.ShouldBeFalse();
        reachedEnd.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeTrue();
        scope.Reason.ShouldBe("stop");
    }

    [Fact]
    public async Task RunAsync_CancelledFromOtherThread_StopsWaitAndIsCaught()
    {
        var scope = new CancelScope();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async ct =>
        {
            waiting.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await waiting.Task.WaitAsync(s_bound);
        var canceller = new Thread(() => scope.Cancel("from thread"));
        canceller.Start();

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        canceller.Join(s_bound).ShouldBeTrue();
        scope.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_CancelledBeforeEntered_StopsAtFirstCheckpoint()
    {
        var scope = new CancelScope();
        scope.Cancel();
        var beforeCheckpoint = false;
        var afterCheckpoint = false;

        var completed = await scope.RunAsync(async ct =>
        {
            beforeCheckpoint = true;
            await Checkpoint.YieldAsync();
            afterCheckpoint = true;
        });

        completed.ShouldBeFalse();
        beforeCheckpoint.ShouldBeTrue();
        afterCheckpoint.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_CancelledScope_LeaksNothingPastExit()
    {
        var scope = new CancelScope();
        scope.Cancel();

        await scope.RunAsync(async ct => await Checkpoint.YieldAsync());

        CancelScope.Current.ShouldBeNull();
        Should.NotThrow(() => Checkpoint.ThrowIfCancelled());
        await Checkpoint.YieldAsync();
        await Checkpoint.SleepAsync(TimeSpan.Zero);
    }

    [Fact]
    public async Task RunAsync_LateCancelAfterExit_LeavesOuterUncancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        await outer.RunAsync(async outerToken =>
        {
            await inner.RunAsync(async ct => await Task.Yield());

            inner.Cancel("too late");

            outerToken.IsCancellationRequested.ShouldBeFalse();
            CancelScope.Current.ShouldBeSameAs(outer);
            await Checkpoint.YieldAsync();
        });

        outer.CancelledCaught.ShouldBeFalse();
        inner.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_ForeignCancellationOnly_PassesThrough()
    {
        var scope = new CancelScope();
        using var other = new CancellationTokenSource();
        await other.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(scope.RunAsync(async ct =>
        {
            await Task.Yield();
            other.Token.ThrowIfCancellationRequested();
        }));

        scope.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelled_CancelsScopeTokenAndPassesThrough()
    {
        var scope = new CancelScope();
        using var caller = new CancellationTokenSource();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(
            async ct =>
            {
                waiting.SetResult();
                await Task.Delay(Timeout.Infinite, ct);
            },
            caller.Token);
        await waiting.Task.WaitAsync(s_bound);
        await caller.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
        scope.CancelledCaught.ShouldBeFalse();
        scope.CancelCalled.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_OwnAndCallerCancelledTogether_IsNotSwallowed()
    {
        var scope = new CancelScope();
        using var caller = new CancellationTokenSource();

        await Should.ThrowAsync<OperationCanceledException>(scope.RunAsync(
            async ct =>
            {
                scope.Cancel();
                await caller.CancelAsync();
                await Checkpoint.YieldAsync();
            },
            caller.Token));

        scope.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_OwnAndOuterCancelledTogether_OuterCatches()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        var completed = await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                inner.Cancel();
                outer.Cancel();
                await Checkpoint.YieldAsync();
            });
        });

        completed.ShouldBeFalse();
        inner.CancelledCaught.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_OuterCancel_IsNotCaughtByInner()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var afterInner = false;

        await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                outer.Cancel("outer");
                ct.IsCancellationRequested.ShouldBeTrue();
                await Task.Delay(Timeout.Infinite, ct);
            });
            afterInner = true;
        }).WaitAsync(s_bound);

        afterInner.ShouldBeFalse();
        inner.CancelledCaught.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task RunAsync_ShieldedInner_KeepsRunningWhenOuterCancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope { Shield = true };
        var innerFinished = false;
        var afterInner = false;

        await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                outer.Cancel();
                ct.IsCancellationRequested.ShouldBeFalse();
                await Checkpoint.YieldAsync();
                await Checkpoint.SleepAsync(TimeSpan.FromMilliseconds(1));
                innerFinished = true;
            });

            // Back in the cancelled outer scope: the next checkpoint stops.
            await Checkpoint.YieldAsync();
            afterInner = true;
        });

        innerFinished.ShouldBeTrue();
        afterInner.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
        inner.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_ShieldedInner_IsCancelledByItsOwnDeadline()
    {
        var time = new FakeTimeProvider();
        var outer = new CancelScope();
        var inner = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(5), time);
        inner.Shield = true;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                outer.Cancel();
                started.SetResult();
                await Task.Delay(Timeout.Infinite, ct);
            });
            await Checkpoint.YieldAsync();
        });
        await started.Task.WaitAsync(s_bound);
        inner.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromSeconds(5));

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        inner.TimedOut.ShouldBeTrue();
        inner.CancelledCaught.ShouldBeTrue();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task Shield_SetWhileActive_UnlinksAndRelinks()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                inner.Shield = true;
                outer.Cancel();
                ct.IsCancellationRequested.ShouldBeFalse();

                inner.Shield = false;
                ct.IsCancellationRequested.ShouldBeTrue();
                await Checkpoint.YieldAsync();
            });
        });

        inner.CancelledCaught.ShouldBeFalse();
        outer.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task Current_IsInnermostActiveScope_AndRestoredOnExit()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        CancelScope.Current.ShouldBeNull();

        await outer.RunAsync(async _ =>
        {
            CancelScope.Current.ShouldBeSameAs(outer);
            await inner.RunAsync(async _ =>
            {
                await Task.Yield();
                CancelScope.Current.ShouldBeSameAs(inner);
                inner.IsActive.ShouldBeTrue();
            });
            CancelScope.Current.ShouldBeSameAs(outer);
        });

        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task Enter_InAsyncMethod_DoesNotLeakToCaller()
    {
        var scope = new CancelScope();

        await EnterWithoutExitAsync(scope);

        CancelScope.Current.ShouldBeNull();

        static async Task EnterWithoutExitAsync(CancelScope scope)
        {
            scope.Enter();
            await Task.Yield();
            CancelScope.Current.ShouldBeSameAs(scope);
        }
    }

    [Fact]
    public async Task Enter_UsingForm_DoesNotCatch()
    {
        var scope = new CancelScope();

        await Should.ThrowAsync<OperationCanceledException>(async () =>
        {
            using (scope.Enter())
            {
                scope.Cancel();
                await Checkpoint.YieldAsync();
            }
        });

        scope.IsActive.ShouldBeFalse();
        scope.CancelledCaught.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task Enter_ExitInDifferentAsyncFlow_Throws()
    {
        var scope = new CancelScope();
        IDisposable? entered = null;

        await Task.Run(() => entered = scope.Enter());

        Should.Throw<InvalidOperationException>(() => entered!.Dispose());
        scope.IsActive.ShouldBeTrue();
    }

    [Fact]
    public void Enter_ExitOutOfOrder_Throws()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var outerEntry = outer.Enter();
        var innerEntry = inner.Enter();

        Should.Throw<InvalidOperationException>(outerEntry.Dispose);

        innerEntry.Dispose();
        outerEntry.Dispose();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task Enter_Twice_Throws()
    {
        var scope = new CancelScope();
        await scope.RunAsync(_ => Task.CompletedTask);

        await Should.ThrowAsync<InvalidOperationException>(scope.RunAsync(_ => Task.CompletedTask));
        Should.Throw<InvalidOperationException>(() => scope.Enter());
    }

    [Fact]
    public async Task RunAsync_NullBody_Throws()
    {
        var scope = new CancelScope();

        Should.Throw<ArgumentNullException>(() => scope.RunAsync(null!)).ParamName.ShouldBe("body");
        await Should.ThrowAsync<ArgumentNullException>(() => scope.RunAsync<int>(null!));
        scope.IsActive.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_BodyThrows_PropagatesAndExits()
    {
        var scope = new CancelScope();

        await Should.ThrowAsync<IOException>(scope.RunAsync(async ct =>
        {
            await Task.Yield();
            throw new IOException("boom");
        }));

        scope.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task MoveOnAfter_DeadlineFires_TimedOutAndCaught()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async ct =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await started.Task.WaitAsync(s_bound);
        time.Advance(TimeSpan.FromMilliseconds(999));
        scope.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromMilliseconds(1));

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
        scope.CancelledCaught.ShouldBeTrue();
        scope.Reason.ShouldBe("deadline");
    }

    [Fact]
    public async Task MoveOnAfter_BodyFinishesFirst_NotTimedOut()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);

        var completed = await scope.RunAsync(_ => Task.CompletedTask);
        time.Advance(TimeSpan.FromSeconds(2));

        completed.ShouldBeTrue();
        scope.TimedOut.ShouldBeFalse();
        scope.CancelCalled.ShouldBeFalse();
    }

    [Fact]
    public async Task MoveOnAfter_Zero_CancelsAtOnce()
    {
        var scope = CancelScope.MoveOnAfter(TimeSpan.Zero, new FakeTimeProvider());
        var reached = false;

        var completed = await scope.RunAsync(async ct =>
        {
            ct.IsCancellationRequested.ShouldBeTrue();
            await Checkpoint.YieldAsync();
            reached = true;
        });

        completed.ShouldBeFalse();
        reached.ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task MoveOnAt_PastDeadline_CancelsAtOnce()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAt(time.GetUtcNow() - TimeSpan.FromSeconds(1), time);

        var completed = await scope.RunAsync(async ct => await Checkpoint.YieldAsync());

        completed.ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task MoveOnAfter_Infinite_HasNoDeadline()
    {
        var scope = CancelScope.MoveOnAfter(Timeout.InfiniteTimeSpan);

        (await scope.RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();
        scope.Deadline.ShouldBeNull();
    }

    [Fact]
    public void Factories_NegativeDelay_Throw()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => CancelScope.MoveOnAfter(TimeSpan.FromSeconds(-1)));
        Should.Throw<ArgumentOutOfRangeException>(() => CancelScope.FailAfter(TimeSpan.FromTicks(-1)));
    }

    [Fact]
    public async Task FailAfter_DeadlineFires_ThrowsTimeoutWithCancellationAsCause()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.FailAfter(TimeSpan.FromSeconds(3), time);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async ct =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await started.Task.WaitAsync(s_bound);
        time.Advance(TimeSpan.FromSeconds(3));

        var ex = await Should.ThrowAsync<TimeoutException>(run.WaitAsync(s_bound));
        ex.InnerException.ShouldBeAssignableTo<OperationCanceledException>();
        scope.TimedOut.ShouldBeTrue();
        scope.CancelledCaught.ShouldBeTrue();
    }

    [Fact]
    public async Task FailAt_PastDeadline_ThrowsTimeout()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.FailAt(time.GetUtcNow(), time);

        await Should.ThrowAsync<TimeoutException>(scope.RunAsync(async ct => await Checkpoint.YieldAsync()));
    }

    [Fact]
    public async Task FailAfter_ExplicitCancel_IsSwallowedWithoutTimeout()
    {
        var scope = CancelScope.FailAfter(TimeSpan.FromSeconds(30), new FakeTimeProvider());

        var completed = await scope.RunAsync(async ct =>
        {
            scope.Cancel("manual");
            await Checkpoint.YieldAsync();
        });

        completed.ShouldBeFalse();
        scope.TimedOut.ShouldBeFalse();
    }

    [Fact]
    public async Task FailAfter_OuterCancelled_PassesThroughNotTimeout()
    {
        var time = new FakeTimeProvider();
        var outer = new CancelScope();
        var inner = CancelScope.FailAfter(TimeSpan.FromSeconds(1), time);

        var completed = await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                outer.Cancel();
                await Checkpoint.YieldAsync();
            });
        });

        completed.ShouldBeFalse();
        inner.TimedOut.ShouldBeFalse();
    }

    [Fact]
    public async Task Deadline_InnerFiresInsideOuterMoveOn()
    {
        var time = new FakeTimeProvider();
        var outer = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(10), time);
        var inner = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var afterInner = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = outer.RunAsync(async outerToken =>
        {
            await inner.RunAsync(async ct =>
            {
                started.SetResult();
                await Task.Delay(Timeout.Infinite, ct);
            });
            afterInner.SetResult();
            await Task.Delay(Timeout.Infinite, outerToken);
        });
        await started.Task.WaitAsync(s_bound);
        time.Advance(TimeSpan.FromSeconds(1));
        await afterInner.Task.WaitAsync(s_bound);

        inner.TimedOut.ShouldBeTrue();
        inner.CancelledCaught.ShouldBeTrue();
        outer.IsCancellationRequested.ShouldBeFalse();

        time.Advance(TimeSpan.FromSeconds(9));
        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        outer.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task Deadline_MovedWhileActive_RearmsTimer()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var run = scope.RunAsync(async ct =>
        {
            scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(5);
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        await started.Task.WaitAsync(s_bound);
        time.Advance(TimeSpan.FromSeconds(2));
        scope.IsCancellationRequested.ShouldBeFalse();

        scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(1);
        time.Advance(TimeSpan.FromSeconds(1));

        (await run.WaitAsync(s_bound)).ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task Deadline_SetToPastWhileActive_CancelsAtOnce()
    {
        var time = new FakeTimeProvider();
        var scope = new CancelScope(time);

        var completed = await scope.RunAsync(async ct =>
        {
            scope.Deadline = time.GetUtcNow();
            ct.IsCancellationRequested.ShouldBeTrue();
            await Checkpoint.YieldAsync();
        });

        completed.ShouldBeFalse();
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task Deadline_ClearedWhileActive_StopsTimer()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);

        var completed = await scope.RunAsync(async ct =>
        {
            scope.Deadline = null;
            time.Advance(TimeSpan.FromSeconds(10));
            await Checkpoint.YieldAsync();
        });

        completed.ShouldBeTrue();
        scope.TimedOut.ShouldBeFalse();
    }

    [Fact]
    public async Task Deadline_AfterExit_NeverCancels()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);

        await scope.RunAsync(_ => Task.CompletedTask);
        time.Advance(TimeSpan.FromSeconds(5));

        scope.CancelCalled.ShouldBeFalse();
        scope.TimedOut.ShouldBeFalse();
    }

    [Fact]
    public async Task CancelRacingExit_NeverLeaksIntoCodeAfterScope()
    {
        for (var i = 0; i < 500; i++)
        {
            var outer = new CancelScope();
            var inner = new CancelScope();
            using var go = new ManualResetEventSlim();
            var canceller = new Thread(() =>
            {
                go.Wait();
                inner.Cancel();
            });
            canceller.Start();

            var completed = await outer.RunAsync(async outerToken =>
            {
                await inner.RunAsync(async ct =>
                {
                    go.Set();
                    await Checkpoint.YieldAsync();
                });

                outerToken.IsCancellationRequested.ShouldBeFalse();
                Checkpoint.ThrowIfCancelled();
                await Checkpoint.YieldAsync();
            });

            canceller.Join(s_bound).ShouldBeTrue();
            completed.ShouldBeTrue();
        }
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelled_ThrowsPlainOperationCanceledWithCallersToken()
    {
        using var caller = new CancellationTokenSource();

        var ex = await Caught.ExceptionAsync(new CancelScope().RunAsync(
            async ct =>
            {
                await caller.CancelAsync();
                await Task.Delay(Timeout.Infinite, ct);
            },
            caller.Token));

        // Exact type, as xunit's Assert.ThrowsAsync<OperationCanceledException> demands.
        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
    }

    [Fact]
    public async Task Current_SkipsScopeExitedByAnotherFlow()
    {
        var scope = new CancelScope();
        var entry = scope.Enter();

        await Task.Run(entry.Dispose);

        scope.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
        entry.Dispose();
    }

    [Fact]
    public void MoveOnAfter_BeyondTimerRange_IsAccepted()
    {
        var time = new FakeTimeProvider();

        var scope = CancelScope.MoveOnAfter(TimeSpan.FromDays(400), time);
        time.Advance(TimeSpan.FromDays(399));

        scope.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromDays(1));
        scope.TimedOut.ShouldBeTrue();
    }

    [Fact]
    public async Task Exit_InnerHandleDisposedFirstFromAFlowSharingTheContext_OuterStillExitsInTheEnteringFlow()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var outerHandle = outer.Enter();
        var innerHandle = inner.Enter();

        // The pool flow starts with this flow's context, so the inner scope is its current one and it may exit it.
        await Task.Run(innerHandle.Dispose);
        inner.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeSameAs(outer);

        innerHandle.Dispose();
        outerHandle.Dispose();

        outer.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task Exit_OuterAfterAnInnerScopeExitedInAnotherFlow_Succeeds()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var outerHandle = outer.Enter();
        var innerHandle = inner.Enter();
        await Task.Run(innerHandle.Dispose);

        // This flow still holds the exited inner scope as its current value; the outer scope is its innermost active one.
        outerHandle.Dispose();

        outer.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public void Shield_RaisedByAnEarlierCallbackOfTheEnclosingScopesCancellation_CancellationStays()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        {
            _ = outer.Token;
            using (inner.Enter())
            {
                _ = inner.Token;

                // Registered after the inner scope's link, so it runs first: the outer token is cancelled by then, and the
                // shield removes the link before its callback has run.
                bool? innerCancelledWhenShielded = null;
                using var registration = outer.Token.Register(() =>
                {
                    innerCancelledWhenShielded = inner.Token.IsCancellationRequested;
                    inner.Shield = true;
                });
                outer.Cancel();

                innerCancelledWhenShielded.ShouldBe(false, "the case under test: the link's callback had not run yet");
                inner.Shield.ShouldBeTrue();
                inner.IsCancellationRequested.ShouldBeTrue();
                inner.Token.IsCancellationRequested.ShouldBeTrue();
                Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
            }
        }
    }
}
