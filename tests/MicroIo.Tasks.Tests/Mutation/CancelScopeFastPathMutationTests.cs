using System.Runtime.CompilerServices;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// Contract details of the lock-free enter and exit that the first mutation run of them left open (Stryker survivors on
/// commit 9985a7f): a token asked for before a run with a caller's token, a deadline scope's exit, the flow's own value
/// after a second dispose, and the entry struct's equality.
/// </summary>
public sealed class CancelScopeFastPathMutationTests
{
    [Fact]
    public async Task RunAsync_TokenAskedForBeforeTheRun_IsLinkedToTheCallersToken()
    {
        var scope = new CancelScope();
        var token = scope.Token;
        using var caller = new CancellationTokenSource();
        var seenCancelled = false;

        await Caught.ExceptionAsync(scope.RunAsync(
            ct =>
            {
                caller.Cancel();
                seenCancelled = token.IsCancellationRequested;
                ct.ThrowIfCancellationRequested();
                return Task.CompletedTask;
            },
            caller.Token));

        seenCancelled.ShouldBeTrue();
    }

    [Fact]
    public void Exit_OfADeadlineScopeBeforeTheDeadline_StopsItsTimer()
    {
        var time = new FakeTimeProvider();
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(1), time);

        using (scope.Enter())
        {
        }

        time.Advance(TimeSpan.FromSeconds(2));
        scope.TimedOut.ShouldBeFalse();
        scope.CancelCalled.ShouldBeFalse();
        scope.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task Exit_SecondDisposeInTheEnteringFlow_MakesTheEnclosingScopeTheFlowsOwnAgain()
    {
        var outer = new CancelScope();
        var inner = new CancelScope();
        using (outer.Enter())
        {
            var innerEntry = inner.Enter();
            await Task.Run(innerEntry.Dispose);
            CancelScope.Innermost.ShouldBeSameAs(inner, "the other flow's exit does not change this flow's value");

            innerEntry.Dispose();

            CancelScope.Innermost.ShouldBeSameAs(outer);
        }
    }

    [Fact]
    public void Entry_EqualityAndHash_FollowTheScope()
    {
        var scope = new CancelScope();
        var entry = scope.Enter();
        try
        {
            var copy = entry;
            entry.Equals(copy).ShouldBeTrue();
            (entry == copy).ShouldBeTrue();
            (entry != default).ShouldBeTrue();
            entry.Equals((object)copy).ShouldBeTrue();
            entry.Equals(new object()).ShouldBeFalse();
            entry.Scope.ShouldBeSameAs(scope);
            entry.GetHashCode().ShouldBe(RuntimeHelpers.GetHashCode(scope));
            default(CancelScopeEntry).GetHashCode().ShouldBe(0);
            default(CancelScopeEntry).Equals(default).ShouldBeTrue();
        }
        finally
        {
            entry.Dispose();
        }
    }
}
