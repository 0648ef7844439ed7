namespace MicroIo.Tests.Mutation;

/// <summary>
/// Contract details of the lock-free scope paths that the mutation run on commit 9985a7f left open: a scope nobody
/// tangled enters and exits without creating its lock, a checkpoint that finds a scope uncancelled marks it quiet, and a
/// mark is never made from a scope's token alone while the records around it already show a cancellation.
/// </summary>
/// <remarks>
/// The untangled test reads the internal <c>HasLock</c>. The tangled one measures
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/> against a yardstick in the same test (a second lock object, made
/// and dropped, is visible only as an allocation), so it holds whatever the AsyncLocal writes cost. The quiet-mark tests
/// read the internal <c>IsQuiet</c>: a mark that is never stored changes no answer, only the cost of the next checkpoint.
/// </remarks>
public sealed class CancelScopeLockFreeMutationTests
{
    private const int Scopes = 256;
    private const int Rounds = 5;

    // The epoch is process-wide and tests of other classes run in parallel: a cancellation elsewhere may void a mark
    // between the checkpoint and the read, so the mark is looked for a bounded number of times.
    private const int MarkAttempts = 10_000;

    [Fact]
    public void EnterAndExit_OfAScopeNobodyTangled_CreateNoLock()
    {
        // docs/benchmarks.md (family 4): a scope that nothing has tangled enters and exits without a lock; its lock and
        // lock-only fields are created on first use.
        var scope = new CancelScope();
        using (scope.Enter())
        {
            scope.HasLock.ShouldBeFalse("entering a scope nobody tangled must not create its lock");
        }

        scope.HasLock.ShouldBeFalse("exiting a scope nobody tangled must not create its lock");
    }

    [Fact]
    public void EnterAndExit_OfATangledScope_UseTheLockItHasAndCreateNoOther()
    {
        // The lock is created once, on first use (docs/benchmarks.md, family 4): a scope whose token exists enters and
        // exits under that lock and, with no enclosing scope and no caller's token to link, allocates no more than an
        // untangled scope whose lock exists: both pay only the AsyncLocal writes.
        Measure(WithLocks());
        Measure(WithTokens());

        var withLock = long.MaxValue;
        var tangled = long.MaxValue;
        for (var round = 0; round < Rounds; round++)
        {
            withLock = Math.Min(withLock, Measure(WithLocks()));
            tangled = Math.Min(tangled, Measure(WithTokens()));
        }

        tangled.ShouldBeLessThanOrEqualTo(withLock, "a tangled scope's enter and exit must reuse its lock");
    }

    [Fact]
    public void Checkpoint_InAnUncancelledScope_MarksItQuiet()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
            MarkedQuietByACheckpoint(scope).ShouldBeTrue("a checkpoint that finds the scope uncancelled marks it quiet");
        }

        scope.IsQuiet.ShouldBeFalse("an exited scope is never quiet");
    }

    [Fact]
    public void Checkpoint_InAShieldedScopeInsideACancelledOne_MarksItQuiet()
    {
        // The shield hides the enclosing scope's cancellation from this scope's records as well as from its token.
        var outer = new CancelScope();
        var inner = new CancelScope { Shield = true };
        using (outer.Enter())
        {
            outer.Cancel();
            using (inner.Enter())
            {
                Checkpoint.IsCancelled().ShouldBeFalse();
                MarkedQuietByACheckpoint(inner).ShouldBeTrue("a shielded scope inside a cancelled one is still uncancelled");
            }
        }
    }

    [Fact]
    public void Checkpoint_InAnInnerScopeWhileTheEnclosingCancelStopsItsTimer_LeavesNoQuietMarkBehind()
    {
        // The enclosing scope's Cancel records the cancellation, advances the epoch, stops the deadline timer (the clock's
        // code, which runs a checkpoint in the inner scope here), and only then cancels its token. The inner scope has no
        // token of its own, so it asks the enclosing token, still uncancelled in that window; it must not be marked quiet
        // then (the enclosing scope's records already show the cancellation), or the mark would outlive the window: no
        // link of the inner scope advances the epoch again when the enclosing token is cancelled. Repeated, because a
        // cancellation in a test running in parallel may void a wrong mark by chance.
        using var elsewhere = new CancelledElsewhere();
        for (var i = 0; i < 50; i++)
        {
            var disposals = 0;
            var outerTokenCancelledThen = true;
            CancelScope outer = null!;
            var time = new ClockWithTimerDisposal(() =>
            {
                disposals++;
                outerTokenCancelledThen = outer.Token.IsCancellationRequested;
                _ = Checkpoint.IsCancelled();
            });
            outer = new CancelScope(time);
            var inner = new CancelScope();
            using (outer.Enter())
            {
                _ = outer.Token;
                outer.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(10);
                using (inner.Enter())
                {
                    Checkpoint.ThrowIfCancelled();
                    Checkpoint.ThrowIfCancelled();

                    outer.Cancel();

                    // The window this test is about: the timer stopped (and the clock's code ran) before the token was cancelled.
                    disposals.ShouldBe(1, $"iteration {i}: the enclosing Cancel stops the deadline timer once");
                    outerTokenCancelledThen.ShouldBeFalse($"iteration {i}: the timer is stopped before the enclosing token is cancelled");
                    Checkpoint.IsCancelled().ShouldBeTrue($"iteration {i}: the enclosing scope was cancelled");
                    Should.Throw<OperationCanceledException>(() => Checkpoint.ThrowIfCancelled());
                }
            }
        }
    }

    private static bool MarkedQuietByACheckpoint(CancelScope scope)
    {
        // Only the full check marks: while no scope anywhere may be cancelled, a checkpoint answers before it.
        using var elsewhere = new CancelledElsewhere();
        for (var attempt = 0; attempt < MarkAttempts; attempt++)
        {
            Checkpoint.ThrowIfCancelled();
            if (scope.IsQuiet)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Scopes whose lock exists (reading <c>Shield</c> creates it) and that nothing has tangled.</summary>
    private static CancelScope[] WithLocks()
    {
        var scopes = new CancelScope[Scopes];
        for (var i = 0; i < scopes.Length; i++)
        {
            scopes[i] = new CancelScope();
            _ = scopes[i].Shield;
            scopes[i].HasLock.ShouldBeTrue("the yardstick's scopes must have their lock");
        }

        return scopes;
    }

    private static CancelScope[] WithTokens()
    {
        var scopes = new CancelScope[Scopes];
        for (var i = 0; i < scopes.Length; i++)
        {
            scopes[i] = new CancelScope();
            _ = scopes[i].Token;
        }

        return scopes;
    }

    private static long Measure(CancelScope[] scopes)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        foreach (var scope in scopes)
        {
            using (scope.Enter())
            {
            }
        }

        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
