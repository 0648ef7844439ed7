using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Mutation;

/// <summary>ScopeGroup contract details that the unit tests left open (found by Stryker survivors).</summary>
public sealed class ScopeGroupMutationTests
{
    [Fact]
    public void CreateScope_DeadlineIsMeasuredByTheGroupsClock()
    {
        // The fake clock starts in 2000: measured by the system clock, this deadline would have passed long ago.
        var time = new FakeTimeProvider();
        var scope = new ScopeGroup(time).CreateScope();

        scope.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(1);

        scope.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromMilliseconds(999));
        scope.IsCancellationRequested.ShouldBeFalse();
        time.Advance(TimeSpan.FromMilliseconds(1));
        scope.TimedOut.ShouldBeTrue();
    }
}
