using MicroIo.Tests.Mutation;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

/// <summary>
/// The cheap paths of <see cref="CancelScope"/>: the struct entry <see cref="CancelScope.Enter"/> returns, entering and
/// exiting without a lock, and checkpoints that answer from a quiet mark. Each test pins a case where a cheap path must
/// give way to the full one, so that level-triggered cancellation stays exact.
/// </summary>
/// <remarks>
/// Each test runs while a scope cancelled in another flow stays active: checkpoints then take the full check, which
/// makes and trusts the quiet marks, instead of the one-read answer they give while no scope anywhere may be cancelled
/// (that answer is pinned by <see cref="CheckpointNothingCancelledTests"/>).
/// </remarks>
public sealed class CancelScopeFastPathTests : IDisposable
{
    private const int Iterations = 2_000;
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);

    private readonly CancelledElsewhere _elsewhere = new();

    public void Dispose() => _elsewhere.Dispose();

    [Fact]
    public void Entry_UsingStatement_EntersAndExits()
    {
        var scope = new CancelScope();

        using (scope.Enter())
        {
            CancelScope.Current.ShouldBeSameAs(scope);
            scope.IsActive.ShouldBeTrue();
        }

        scope.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public void Entry_DisposedTwice_ExitsOnce()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        {
            var entry = inner.Enter();
            var copy = entry;

            entry.Dispose();
            copy.Dispose();

            CancelScope.Current.ShouldBeSameAs(outer);
            outer.IsActive.ShouldBeTrue();
        }
    }

    [Fact]
    public void Entry_Default_RefersToNoScope_AndDisposingItDoesNothing()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            var none = default(CancelScopeEntry);

            none.Scope.ShouldBeNull();
            none.Dispose();

            CancelScope.Current.ShouldBeSameAs(scope);
            scope.IsActive.ShouldBeTrue();
        }
    }

    [Fact]
    public void Entry_EqualityFollowsTheScope()
    {
        var first = new CancelScope();
        var second = new CancelScope();
        using var a = first.Enter();
        using var b = second.Enter();
        var aCopy = a;

        a.Scope.ShouldBeSameAs(first);
        (a == aCopy).ShouldBeTrue();
        (a != aCopy).ShouldBeFalse();
        a.Equals(aCopy).ShouldBeTrue();
        a.Equals((object)aCopy).ShouldBeTrue();
        a.GetHashCode().ShouldBe(aCopy.GetHashCode());
        (a == b).ShouldBeFalse();
        (a != b).ShouldBeTrue();
        a.Equals((object)first).ShouldBeFalse();
        default(CancelScopeEntry).Equals(default(CancelScopeEntry)).ShouldBeTrue();
        default(CancelScopeEntry).GetHashCode().ShouldBe(0);

        b.Dispose();
    }

    [Fact]
    public void Checkpoint_QuietScopeCancelled_ThrowsEveryTime()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            // Twice: the first check marks the scope quiet, the second answers from the mark.
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            scope.Cancel();

            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void Checkpoint_QuietInnerScope_EnclosingScopeCancelled_ThrowsEveryTime()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        using (inner.Enter())
        {
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            outer.Cancel();

            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void Checkpoint_QuietScopeWithAToken_EnclosingScopeCancelled_Throws()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        using (inner.Enter())
        {
            _ = outer.Token;
            _ = inner.Token;
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            outer.Cancel();

            inner.Token.IsCancellationRequested.ShouldBeTrue();
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void Checkpoint_QuietScopeShielded_ShieldLoweredAfterTheEnclosingScopeWasCancelled_Throws()
    {
        var outer = new CancelScope();
        var inner = new CancelScope { Shield = true };
        using (outer.Enter())
        using (inner.Enter())
        {
            outer.Cancel();
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            inner.Shield = false;

            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void Checkpoint_QuietScope_DeadlinePasses_Throws()
    {
        var clock = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(5), clock);
        using (scope.Enter())
        {
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            clock.Advance(TimeSpan.FromSeconds(5));

            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Fact]
    public void Checkpoint_InACallbackOfTheScopesOwnToken_SeesTheCancellation()
    {
        // The token's callbacks run inside Cancel, before it returns; a callback registered with Register runs in the
        // registering flow, so a checkpoint there asks this scope, which is cancelled by then.
        var scope = new CancelScope();
        var thrown = false;
        using (scope.Enter())
        {
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();
            using var registration = scope.Token.Register(() =>
            {
                try
                {
                    Checkpoint.ThrowIfCancelled();
                }
                catch (OperationCanceledException)
                {
                    thrown = true;
                }
            });
            Checkpoint.ThrowIfCancelled();

            scope.Cancel();
        }

        thrown.ShouldBeTrue();
    }

    [Fact]
    public void Checkpoint_RunWhileCancelIsStoppingTheTimer_LeavesNoQuietMarkBehind()
    {
        // Cancel records the cancellation, stops the deadline timer (the clock's code), then cancels the token. A
        // checkpoint that runs in between sees the token still uncancelled; it must not mark the scope quiet, or no
        // checkpoint would see the token's cancellation that follows.
        var time = new ClockWithTimerDisposal(() =>
        {
            try
            {
                Checkpoint.ThrowIfCancelled();
            }
            catch (OperationCanceledException)
            {
                // Either answer is right while Cancel runs; what matters is what stays behind.
            }
        });
        var scope = new CancelScope(time);
        using (scope.Enter())
        {
            _ = scope.Token;
            scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(10);
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            scope.Cancel();

            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
            Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Checkpoint_TaskGroupBody_CallerTokenCancelledWhileNoTokenWasAskedFor_Throws(bool insideANestedScope)
    {
        // The group's scope listens to the caller's token without a source of its own until someone asks for a token, so
        // the caller's Cancel runs no MicroIo code: the checkpoint must still see it.
        // A scope entered inside the body inherits that: it must never be marked quiet either.
        using var caller = new CancellationTokenSource();
        var threw = false;

        var group = TaskGroup.RunAsync(
            _ =>
            {
                if (insideANestedScope)
                {
                    using (new CancelScope().Enter())
                    {
                        CheckTwiceThenCancelAndCheck();
                    }
                }
                else
                {
                    CheckTwiceThenCancelAndCheck();
                }

                return Task.CompletedTask;
            },
            caller.Token);

        (await EndsCancelledAsync(group)).ShouldBeTrue();
        threw.ShouldBeTrue();

        void CheckTwiceThenCancelAndCheck()
        {
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();
            caller.Cancel();
            try
            {
                Checkpoint.ThrowIfCancelled();
            }
            catch (OperationCanceledException)
            {
                threw = true;
                throw;
            }
        }
    }

    [Fact]
    public async Task Checkpoint_FlowOutlivingAQuietShieldedScope_SeesTheCancelledEnclosingScopeOnceItExits()
    {
        // The shield kept the inner scope quiet while the outer one was cancelled. A task started inside the inner scope
        // outlives it: once it exits, that task's ambient scope is the cancelled outer one, with no new cancellation to
        // advance the epoch, so the exit itself must take back the quiet mark.
        var outer = new CancelScope();
        var inner = new CancelScope { Shield = true };
        var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var marked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (outer.Enter())
        {
            outer.Cancel();
            Task<bool> outliving;
            using (inner.Enter())
            {
                outliving = Task.Run(async () =>
                {
                    Checkpoint.ThrowIfCancelled();
                    Checkpoint.ThrowIfCancelled();
                    marked.SetResult();
                    await exited.Task;
                    try
                    {
                        Checkpoint.ThrowIfCancelled();
                        return false;
                    }
                    catch (OperationCanceledException)
                    {
                        return true;
                    }
                });
                await marked.Task.WaitAsync(s_bound);
            }

            exited.SetResult();
            (await outliving.WaitAsync(s_bound)).ShouldBeTrue();
        }
    }

    [Fact]
    public async Task Checkpoint_FlowOutlivingAQuietScopeExitedWithoutALock_SeesTheCancelledScopeAroundIt()
    {
        // The inner scope's parent (middle) was exited by another flow before the root was cancelled, so the inner scope
        // is rightly quiet after the root's cancellation. A flow forked inside the inner scope outlives it: once the inner
        // scope exits (untangled, so without the lock), that flow's ambient scope is the cancelled root.
        var root = new CancelScope();
        var middle = new CancelScope();
        var inner = new CancelScope();

        // Its own flow: it is left with scopes it can no longer exit.
        var threw = await Task.Run(async () =>
        {
            _ = root.Enter();
            var middleEntry = middle.Enter();
            var exitMiddle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var middleExiter = Task.Run(async () =>
            {
                await exitMiddle.Task;
                middleEntry.Dispose();
            });
            var innerEntry = inner.Enter();
            exitMiddle.SetResult();
            await middleExiter.WaitAsync(s_bound);
            root.Cancel();
            Checkpoint.ThrowIfCancelled();
            Checkpoint.ThrowIfCancelled();

            var innerExited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var lingering = Task.Run(async () =>
            {
                await innerExited.Task;
                try
                {
                    Checkpoint.ThrowIfCancelled();
                    return false;
                }
                catch (OperationCanceledException)
                {
                    return true;
                }
            });
            innerEntry.Dispose();
            innerExited.SetResult();
            return await lingering.WaitAsync(s_bound);
        }).WaitAsync(s_bound);

        threw.ShouldBeTrue();
    }

    [Fact]
    public void Exit_DeadlineSetAfterEntering_StopsTheTimer()
    {
        var time = new TrackingTimeProvider();
        var scope = new CancelScope(time);
        using (scope.Enter())
        {
            scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(10);
            time.LiveTimers.ShouldBe(1);
        }

        time.LiveTimers.ShouldBe(0);
    }

    [Fact]
    public async Task Checkpoint_CancelFromAnotherThread_EveryLaterCheckpointThrows()
    {
        // Level-triggered across threads: once Cancel has returned on one thread, no checkpoint that starts afterwards on
        // another may pass, however recently it found the scope quiet.
        for (var i = 0; i < Iterations; i++)
        {
            var scope = new CancelScope();
            var cancelReturned = 0;
            var checking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var checker = Task.Run(() =>
            {
                using (scope.Enter())
                {
                    checking.SetResult();
                    while (true)
                    {
                        var returnedBefore = Volatile.Read(ref cancelReturned) == 1;
                        try
                        {
                            Checkpoint.ThrowIfCancelled();
                        }
                        catch (OperationCanceledException)
                        {
                            return true;
                        }

                        if (returnedBefore)
                        {
                            return false;
                        }
                    }
                }
            });
            await checking.Task.WaitAsync(s_bound);

            scope.Cancel();
            Volatile.Write(ref cancelReturned, 1);

            (await checker.WaitAsync(s_bound)).ShouldBeTrue($"iteration {i}");
        }
    }

    [Fact]
    public async Task Enter_TwoFlowsAtOnce_ExactlyOneEnters_AndItsEnclosingScopeIsKept()
    {
        for (var i = 0; i < Iterations; i++)
        {
            var scope = new CancelScope();
            using var go = new ManualResetEventSlim();
            var first = Task.Run(() => TryEnter(scope, go));
            var second = Task.Run(() => TryEnter(scope, go));
            go.Set();
            var results = await Task.WhenAll(first, second).WaitAsync(s_bound);

            results.Count(r => r is not null).ShouldBe(1, $"iteration {i}");
            var winner = results.Single(r => r is not null)!;

            // The winner's own enclosing scope, untouched by the loser, is the one the cancellation comes from.
            winner.Cancel();
            scope.IsCancellationRequested.ShouldBeTrue($"iteration {i}");
            scope.IsActive.ShouldBeFalse($"iteration {i}");
        }

        static CancelScope? TryEnter(CancelScope scope, ManualResetEventSlim go)
        {
            var enclosing = new CancelScope();
            using (enclosing.Enter())
            {
                go.Wait();
                try
                {
                    using (scope.Enter())
                    {
                        // Cancelled only through the enclosing scope: the parent must be this flow's.
                        scope.IsCancellationRequested.ShouldBeFalse();
                        enclosing.Cancel();
                        scope.IsCancellationRequested.ShouldBeTrue();
                        return enclosing;
                    }
                }
                catch (InvalidOperationException)
                {
                    return null;
                }
            }
        }
    }

    [Fact]
    public async Task Exit_RacingTheFirstTokenRequest_LeavesNoLinkToTheOutside()
    {
        // An untangled exit takes no lock; a first Token from another thread tangles the scope. Whichever comes first, the
        // exited scope must not be reached by the enclosing scope's later cancellation, and the token, if it was made
        // while the scope was active, must have been linked then.
        for (var i = 0; i < Iterations; i++)
        {
            var outer = new CancelScope();
            var inner = new CancelScope();
            Task<CancellationToken> reader;
            using (outer.Enter())
            {
                _ = outer.Token;
                using var go = new ManualResetEventSlim();
                using (inner.Enter())
                {
                    reader = Task.Run(() =>
                    {
                        go.Set();
                        return inner.Token;
                    });
                    go.Wait();
                }
            }

            var token = await reader.WaitAsync(s_bound);
            outer.Cancel();
            inner.IsCancellationRequested.ShouldBeFalse($"iteration {i}");
            token.IsCancellationRequested.ShouldBeFalse($"iteration {i}");
        }
    }

    [Fact]
    public async Task Exit_RacingTheEnclosingScopesCancellation_StaysCancelledOnceSeenCancelled()
    {
        // An exit that finds the outside uncancelled takes the lock-free path; one that finds it cancelled records the
        // cancellation. Seen cancelled by the exit, the scope must stay cancelled after it.
        for (var i = 0; i < Iterations; i++)
        {
            var outer = new CancelScope();
            var inner = new CancelScope();
            var sawCancelledBeforeExit = false;
            using (outer.Enter())
            {
                using var go = new ManualResetEventSlim();
                Task canceller;
                using (inner.Enter())
                {
                    canceller = Task.Run(() =>
                    {
                        go.Set();
                        outer.Cancel();
                    });
                    go.Wait();
                    sawCancelledBeforeExit = inner.IsCancellationRequested;
                }

                await canceller.WaitAsync(s_bound);
            }

            if (sawCancelledBeforeExit)
            {
                inner.IsCancellationRequested.ShouldBeTrue($"iteration {i}");
                inner.Token.IsCancellationRequested.ShouldBeTrue($"iteration {i}");
            }
        }
    }

    [Fact]
    public void Enter_ScopeWhoseTokenExistedBeforeEntering_IsLinkedAndUnlinked()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        var token = inner.Token;
        using (outer.Enter())
        {
            using (inner.Enter())
            {
                outer.Cancel();
                token.IsCancellationRequested.ShouldBeTrue();
            }
        }

        var second = new CancelScope();
        var secondToken = second.Token;
        var enclosing = new CancelScope();
        using (enclosing.Enter())
        {
            using (second.Enter())
            {
            }

            enclosing.Cancel();
        }

        secondToken.IsCancellationRequested.ShouldBeFalse();
    }

    private static async Task<bool> EndsCancelledAsync(Task task)
    {
        try
        {
            await task.WaitAsync(s_bound);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }
}
