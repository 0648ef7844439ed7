using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// CancelScope contract details that the unit tests left open (found by Stryker survivors): what a shield does to a
/// cancellation that already arrived, what an exited scope keeps and drops, which token an outside cancellation carries,
/// the generic RunAsync, and the deadline timer's lifetime.
/// </summary>
public sealed class CancelScopeMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Shield_ReadsBackWhatWasSet()
    {
        var scope = new CancelScope { Shield = true };

        scope.Shield.ShouldBeTrue();
        scope.Shield = false;
        scope.Shield.ShouldBeFalse();
    }

    [Fact]
    public void Deadline_ReadsBackWhatWasSetOrComputed()
    {
        var time = new FakeTimeProvider();
        var at = time.GetUtcNow() + TimeSpan.FromMinutes(3);

        CancelScope.MoveOnAt(at, time).Deadline.ShouldBe(at);
        CancelScope.FailAfter(TimeSpan.FromSeconds(5), time).Deadline.ShouldBe(time.GetUtcNow() + TimeSpan.FromSeconds(5));
        var scope = new CancelScope(time) { Deadline = at };
        scope.Deadline.ShouldBe(at);
        scope.Deadline = null;
        scope.Deadline.ShouldBeNull();
    }

    [Fact]
    public void Shield_RaisedAfterTheEnclosingScopeWasCancelled_KeepsTheCancellationThatArrived()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        using (outer.Enter())
        {
            using (inner.Enter())
            {
                // Nobody has asked for either token: the scopes answer without a source.
                outer.Cancel("outer");
                inner.IsCancellationRequested.ShouldBeTrue();

                inner.Shield = true;

                inner.IsCancellationRequested.ShouldBeTrue();
                Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
                inner.Token.IsCancellationRequested.ShouldBeTrue();
                inner.CancelCalled.ShouldBeFalse();
            }
        }
    }

    [Fact]
    public void Shield_RaisedOnAnExitedScopeAfterTheEnclosingScopeWasCancelled_DoesNotCancelIt()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        using (outer.Enter())
        {
            using (inner.Enter())
            {
            }

            outer.Cancel("after the inner scope exited");
            inner.Shield = true;

            inner.IsCancellationRequested.ShouldBeFalse();
            inner.Token.IsCancellationRequested.ShouldBeFalse();
        }
    }

    [Fact]
    public void Shield_RaisedAgainAfterTheEnclosingScopeWasCancelled_KeepsTheScopeUncancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        using (outer.Enter())
        {
            using (inner.Enter())
            {
                // Nobody has asked for either token: the scopes answer without a source.
                inner.Shield = true;
                outer.Cancel();

                inner.Shield = true;

                inner.IsCancellationRequested.ShouldBeFalse();
                Should.NotThrow(() => Checkpoint.ThrowIfCancelled());
                inner.Token.IsCancellationRequested.ShouldBeFalse();
            }

            inner.IsCancellationRequested.ShouldBeFalse();
        }
    }

    [Fact]
    public void Shield_OnScopeEnteredInsideAnAlreadyCancelledScope_RunsUncancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope { Shield = true };

        using (outer.Enter())
        {
            outer.Cancel();
            using (inner.Enter())
            {
                inner.IsCancellationRequested.ShouldBeFalse();
                Should.NotThrow(() => Checkpoint.ThrowIfCancelled());
                inner.Token.IsCancellationRequested.ShouldBeFalse();
                inner.IsCancellationRequested.ShouldBeFalse();
            }
        }

        inner.CancelCalled.ShouldBeFalse();
    }

    [Fact]
    public async Task Shield_SetToItsCurrentValueWhileActive_LeavesNoLinkBehindAfterExit()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var innerToken = CancellationToken.None;

        await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                innerToken = ct;
                inner.Shield = false;
                inner.Shield = false;
                await Task.Yield();
            });

            outer.Cancel();
        });

        innerToken.IsCancellationRequested.ShouldBeFalse();
        inner.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public void Shield_RaisedAndLoweredBeforeTheTokenExisted_LeavesNoLinkBehindAfterExit()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        CancellationToken innerToken;

        using (outer.Enter())
        {
            using (inner.Enter())
            {
                inner.Shield = true;
                inner.Shield = false;
                innerToken = inner.Token;
            }

            outer.Cancel();
        }

        innerToken.IsCancellationRequested.ShouldBeFalse();
        inner.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public void Exit_AfterTheEnclosingScopeCancelledItBeforeItsTokenExisted_StaysCancelled()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        using (outer.Enter())
        {
            using (inner.Enter())
            {
                outer.Cancel();
            }

            inner.IsActive.ShouldBeFalse();
            inner.IsCancellationRequested.ShouldBeTrue();
            inner.Token.IsCancellationRequested.ShouldBeTrue();
            inner.CancelCalled.ShouldBeFalse();
        }
    }

    [Fact]
    public void Exit_OfAnUncancelledScope_LeavesItUncancelled()
    {
        var withoutToken = new CancelScope();
        var withToken = new CancelScope();
        CancellationToken token;

        using (withoutToken.Enter())
        {
        }

        using (withToken.Enter())
        {
            token = withToken.Token;
        }

        withoutToken.IsCancellationRequested.ShouldBeFalse();
        withoutToken.Token.IsCancellationRequested.ShouldBeFalse();
        withToken.IsCancellationRequested.ShouldBeFalse();
        token.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public void Exit_WhileTheEnclosingScopesCancellationIsBeingDelivered_KeepsThatCancellation()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        using (outer.Enter())
        {
            var innerEntry = inner.Enter();
            var innerToken = inner.Token;

            // Runs inside outer.Cancel(), in this flow, possibly before the inner scope's own link to the outer token.
            using var exitDuringCancel = outer.Token.UnsafeRegister(_ => innerEntry.Dispose(), null);
            outer.Cancel();

            inner.IsActive.ShouldBeFalse();
            innerToken.IsCancellationRequested.ShouldBeTrue();
            inner.IsCancellationRequested.ShouldBeTrue();
        }
    }

    [Fact]
    public async Task Enter_HandleDisposedAgainInTheEnteringFlowAfterAnotherFlowExited_ChangesNothing()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();

        // Its own flow: the entering flow keeps seeing the exited inner scope as its own, so the outer scope cannot be
        // exited from it, and stays entered there when the flow ends.
        await Task.Run(async () =>
        {
            _ = outer.Enter();
            var innerEntry = inner.Enter();

            // A child flow shares the entering flow's current scope, so it may exit it.
            await Task.Run(innerEntry.Dispose);
            inner.IsActive.ShouldBeFalse();
            outer.Cancel();

            innerEntry.Dispose();

            inner.IsCancellationRequested.ShouldBeFalse();
            inner.Token.IsCancellationRequested.ShouldBeFalse();
            CancelScope.Current.ShouldBeSameAs(outer);
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task Current_SkipsEveryEnclosingScopeExitedByAnotherFlow()
    {
        var root = new CancelScope();
        var middle = new CancelScope();
        var inner = new CancelScope();

        // Its own flow: it is left with scopes it can no longer exit.
        await Task.Run(async () =>
        {
            _ = root.Enter();
            var middleEntry = middle.Enter();
            var innerEntry = inner.Enter();

            await Task.Run(() =>
            {
                innerEntry.Dispose();
                middleEntry.Dispose();
            });

            middle.IsActive.ShouldBeFalse();
            inner.IsActive.ShouldBeFalse();
            CancelScope.Current.ShouldBeSameAs(root);
            root.Cancel();
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }).WaitAsync(s_bound);
    }

    [Fact]
    public async Task Exit_TheEnclosingScopeCancelledAfterwards_DoesNotReachTheExitedScope()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var innerToken = CancellationToken.None;

        var completed = await outer.RunAsync(async _ =>
        {
            await inner.RunAsync(async ct =>
            {
                innerToken = ct;
                await Task.Yield();
            });

            outer.Cancel();
            await Checkpoint.YieldAsync();
        });

        completed.ShouldBeFalse();
        innerToken.IsCancellationRequested.ShouldBeFalse();
        inner.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task Exit_TheCallerTokenCancelledAfterwards_DoesNotReachTheExitedScope()
    {
        using var caller = new CancellationTokenSource();
        var scope = new CancelScope();
        var scopeToken = CancellationToken.None;

        (await scope.RunAsync(
            async ct =>
            {
                scopeToken = ct;
                await Task.Yield();
            },
            caller.Token)).ShouldBeTrue();
        await caller.CancelAsync();

        scopeToken.IsCancellationRequested.ShouldBeFalse();
        scope.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsyncOfT_TheCallerTokenCancelledAfterwards_DoesNotReachTheExitedScope()
    {
        using var caller = new CancellationTokenSource();
        var scope = new CancelScope();
        var scopeToken = CancellationToken.None;

        var value = await scope.RunAsync(
            async ct =>
            {
                scopeToken = ct;
                await Task.Yield();
                return 5;
            },
            caller.Token);
        await caller.CancelAsync();

        value.ShouldBe(5);
        scope.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
        scopeToken.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public void Enter_TwiceWhileActive_SaysItIsActive_AndAfterExit_SaysItWasUsed()
    {
        var scope = new CancelScope();

        using (scope.Enter())
        {
            Should.Throw<InvalidOperationException>(() => scope.Enter()).Message.ShouldContain("already active");
        }

        Should.Throw<InvalidOperationException>(() => scope.Enter()).Message.ShouldContain("already been used");
    }

    [Fact]
    public void Token_AskedForBeforeEntering_IsCancelledByTheEnclosingScope()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var early = inner.Token;

        using (outer.Enter())
        {
            using (inner.Enter())
            {
                early.IsCancellationRequested.ShouldBeFalse();
                outer.Cancel();
                early.IsCancellationRequested.ShouldBeTrue();
                inner.IsCancellationRequested.ShouldBeTrue();
            }
        }
    }

    [Fact]
    public async Task Token_AskedForBeforeRunning_IsCancelledByTheCallerToken()
    {
        using var caller = new CancellationTokenSource();
        var scope = new CancelScope();
        var early = scope.Token;
        var cancelledInside = false;

        var ex = await Caught.ExceptionAsync(scope.RunAsync(
            async ct =>
            {
                await caller.CancelAsync();
                cancelledInside = early.IsCancellationRequested && ct.IsCancellationRequested;
                await Task.Delay(Timeout.Infinite, ct);
            },
            caller.Token));

        cancelledInside.ShouldBeTrue();
        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
    }

    [Fact]
    public async Task RunAsync_ForeignCancellation_PropagatesAsTheSameException()
    {
        var foreign = new OperationCanceledException("not the scope's");

        var ex = await Caught.ExceptionAsync(new CancelScope().RunAsync(async _ =>
        {
            await Task.Yield();
            throw foreign;
        }));

        ex.ShouldBeSameAs(foreign);
    }

    [Fact]
    public async Task RunAsyncOfT_ForeignCancellation_PropagatesAsTheSameException()
    {
        var foreign = new OperationCanceledException("not the scope's");
        var scope = new CancelScope();

        var ex = await Caught.ExceptionAsync(scope.RunAsync<int>(async _ =>
        {
            await Task.Yield();
            throw foreign;
        }));

        ex.ShouldBeSameAs(foreign);
        scope.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsyncOfT_FailAtDeadline_ThrowsTimeout()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.FailAt(time.GetUtcNow(), time);

        var ex = await Should.ThrowAsync<TimeoutException>(scope.RunAsync(async _ =>
        {
            await Checkpoint.YieldAsync();
            return 1;
        }).WaitAsync(s_bound));

        ex.InnerException.ShouldBeAssignableTo<OperationCanceledException>();
        scope.TimedOut.ShouldBeTrue();
        scope.IsActive.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsyncOfT_CallerTokenCancelled_ThrowsPlainOperationCanceledWithTheCallersToken()
    {
        using var caller = new CancellationTokenSource();
        var scope = new CancelScope();

        var ex = await Caught.ExceptionAsync(scope.RunAsync(
            async ct =>
            {
                await caller.CancelAsync();
                await Task.Delay(Timeout.Infinite, ct);
                return 1;
            },
            caller.Token));

        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
        ex.InnerException.ShouldBeAssignableTo<OperationCanceledException>();
        scope.CancelledCaught.ShouldBeFalse();
        scope.IsActive.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_EnclosingScopeCancelled_ThrowsWithTheEnclosingScopesToken()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        Exception? seen = null;

        var completed = await outer.RunAsync(async _ =>
        {
            try
            {
                await inner.RunAsync(async ct =>
                {
                    outer.Cancel();
                    await Task.Delay(Timeout.Infinite, ct);
                });
            }
            catch (Exception ex)
            {
                seen = ex;
                throw;
            }
        }).WaitAsync(s_bound);

        completed.ShouldBeFalse();
        seen.ShouldNotBeNull().GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)seen).CancellationToken.ShouldBe(outer.Token);
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelledInsideAnEnclosingScope_ThrowsWithTheCallersToken()
    {
        using var caller = new CancellationTokenSource();
        var outer = new CancelScope();
        var inner = new CancelScope();

        var ex = await Caught.ExceptionAsync(outer.RunAsync(_ => inner.RunAsync(
            async ct =>
            {
                await caller.CancelAsync();
                await Task.Delay(Timeout.Infinite, ct);
            },
            caller.Token)));

        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
        outer.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelled_BodysCancellationWithTheCallersToken_PropagatesAsTheSameException()
    {
        using var caller = new CancellationTokenSource();
        OperationCanceledException? thrown = null;

        var ex = await Caught.ExceptionAsync(new CancelScope().RunAsync(
            async _ =>
            {
                await caller.CancelAsync();
                try
                {
                    caller.Token.ThrowIfCancellationRequested();
                }
                catch (OperationCanceledException e)
                {
                    thrown = e;
                    throw;
                }
            },
            caller.Token));

        ex.ShouldBeSameAs(thrown);
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelled_BodysCancellationWithTheScopesToken_IsReplacedByOneWithTheCallersToken()
    {
        using var caller = new CancellationTokenSource();
        OperationCanceledException? thrown = null;

        var ex = await Caught.ExceptionAsync(new CancelScope().RunAsync(
            async ct =>
            {
                await caller.CancelAsync();
                try
                {
                    ct.ThrowIfCancellationRequested();
                }
                catch (OperationCanceledException e)
                {
                    thrown = e;
                    throw;
                }
            },
            caller.Token));

        thrown.ShouldNotBeNull();
        ex.GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)ex).CancellationToken.ShouldBe(caller.Token);
        ex.InnerException.ShouldBeSameAs(thrown);
    }

    [Fact]
    public async Task Exit_StopsTheDeadlineTimer()
    {
        var time = new TrackingTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(10), time);
        time.LiveTimers.ShouldBe(1);

        (await scope.RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();

        time.LiveTimers.ShouldBe(0);
    }

    [Fact]
    public void Cancel_StopsTheDeadlineTimer()
    {
        var time = new TrackingTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(10), time);

        scope.Cancel("before the deadline");

        time.LiveTimers.ShouldBe(0);
        time.Fake.Advance(TimeSpan.FromSeconds(10));
        scope.TimedOut.ShouldBeFalse();
        scope.Reason.ShouldBe("before the deadline");
    }

    [Fact]
    public void Deadline_MovedOrCleared_StopsTheTimerItReplaces()
    {
        var time = new TrackingTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(10), time);

        scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(20);

        time.Timers.Count.ShouldBe(2);
        time.Timers[0].IsDisposed.ShouldBeTrue();
        time.LiveTimers.ShouldBe(1);

        scope.Deadline = null;

        time.LiveTimers.ShouldBe(0);
    }

    [Fact]
    public void Deadline_TickOfAReplacedTimerArrivingLate_IsIgnored()
    {
        var time = new TrackingTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(10), time);
        scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(20);
        time.Fake.Advance(TimeSpan.FromSeconds(10));

        time.Timers[0].DeliverLateTick();

        scope.IsCancellationRequested.ShouldBeFalse();
        time.Timers.Count.ShouldBe(2);
        time.Timers[1].IsDisposed.ShouldBeFalse();
        time.Fake.Advance(TimeSpan.FromSeconds(10));
        scope.TimedOut.ShouldBeTrue();
    }
}
