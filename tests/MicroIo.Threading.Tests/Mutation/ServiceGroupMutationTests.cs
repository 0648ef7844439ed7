using Microsoft.Extensions.Logging;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// ServiceGroup contract details that the unit tests left open (found by Stryker survivors): argument and thread checks
/// on every member, a start that fails without an exception, and scope callbacks that throw while the group stops.
/// </summary>
public sealed class ServiceGroupMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_negative = TimeSpan.FromSeconds(-2);

    private static ServiceThread WellBehaved(string name, ILogger? logger = null) =>
        new(
            s =>
            {
                s.Started();
                s.Scope.Wait(Timeout.InfiniteTimeSpan);
            },
            new ServiceThreadOptions { Name = name, Logger = logger });

    [Fact]
    public void Start_EmptyGroupTwice_ThrowsTheSecondTime()
    {
        var group = new ServiceGroup();

        group.Start();

        Should.Throw<InvalidOperationException>(() => group.Start());
    }

    [Fact]
    public async Task Members_BadTimeout_ThrowAtTheCallEvenWhenEveryServiceHasStarted()
    {
        var group = new ServiceGroup(WellBehaved("a")).Start().WaitStarted(s_bound);

        ThrownAtTheCall(() => group.WaitStartedAsync(s_negative)).ShouldBeOfType<ArgumentOutOfRangeException>();
        ThrownAtTheCall(() => group.JoinOrLogAsync(s_negative)).ShouldBeOfType<ArgumentOutOfRangeException>();
        Should.Throw<ArgumentOutOfRangeException>(() => group.StopJoin(s_negative));
        ThrownAtTheCall(() => group.StopJoinAsync(s_negative)).ShouldBeOfType<ArgumentOutOfRangeException>();

        group.Services.ShouldAllBe(s => !s.Scope.IsClosed);
        (await group.StopJoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task StopJoinAndAsyncMembers_FromAMembersOwnThread_ThrowBeforeStoppingAnything()
    {
        ServiceGroup? group = null;
        using var groupSet = new ManualResetEventSlim();
        var outcome = new TaskCompletionSource<(Exception? JoinOrLog, Exception? StopJoinAsync, Exception? StopJoin)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var member = new ServiceThread(s =>
        {
            s.Started();
            groupSet.Wait(s_bound);
            outcome.SetResult((
                ThrownAtTheCall(() => group!.JoinOrLogAsync(s_bound)),
                ThrownAtTheCall(() => group!.StopJoinAsync(s_bound)),
                Record.Exception(() => group!.StopJoin(s_bound))));
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
        });
        group = new ServiceGroup(member).Start();
        groupSet.Set();

        var (joinOrLog, stopJoinAsync, stopJoin) = await outcome.Task.WaitAsync(s_bound);

        joinOrLog.ShouldBeOfType<InvalidOperationException>();
        stopJoinAsync.ShouldBeOfType<InvalidOperationException>();
        stopJoin.ShouldBeOfType<InvalidOperationException>();

        // Refused before it stopped anything: the member is still running.
        member.Scope.IsClosed.ShouldBeFalse();
        (await group.StopJoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_AServiceEndsWithoutReportingStarted_ThrowsAndStopsTheOthers()
    {
        var first = WellBehaved("first");
        var quitter = new ServiceThread(_ => { }, new ServiceThreadOptions { Name = "quitter" });
        var group = new ServiceGroup(first, quitter).Start();
        quitter.Join(s_bound).ShouldBeTrue();

        Should.Throw<ServiceStartException>(() => group.WaitStarted(s_bound));

        first.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_AServiceEndsWithoutReportingStarted_ThrowsAndStopsTheOthers()
    {
        var first = WellBehaved("first");
        var quitter = new ServiceThread(_ => { }, new ServiceThreadOptions { Name = "quitter" });
        var group = new ServiceGroup(first, quitter).Start();
        (await quitter.JoinAsync(s_bound)).ShouldBeTrue();

        await Should.ThrowAsync<ServiceStartException>(() => group.WaitStartedAsync(s_bound));

        (await first.JoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public void Stop_AScopeCallbackThrows_StopsEveryServiceThenThrowsIt()
    {
        var first = WellBehaved("first");
        var second = WellBehaved("second");
        var group = new ServiceGroup(first, second).Start().WaitStarted(s_bound);
        first.Scope.Token.Register(() => throw new FormatException("callback"));

        var thrown = Should.Throw<AggregateException>(() => group.Stop());

        thrown.Flatten().InnerExceptions.ShouldContain(e => e is FormatException);
        first.Scope.IsClosed.ShouldBeTrue();
        second.Scope.IsClosed.ShouldBeTrue();
        group.JoinOrLog(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void StopJoin_AScopeCallbackThrows_JoinsEveryServiceThenThrowsIt()
    {
        var first = WellBehaved("first");
        var second = WellBehaved("second");
        var group = new ServiceGroup(first, second).Start().WaitStarted(s_bound);
        second.Scope.Token.Register(() => throw new FormatException("callback"));

        var thrown = Should.Throw<AggregateException>(() => group.StopJoin(s_bound));

        thrown.Flatten().InnerExceptions.ShouldContain(e => e is FormatException);
        first.IsStopped.ShouldBeTrue();
        second.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public void JoinOrLog_FirstServiceIgnoresStop_ReturnsFalseAndLogsIt()
    {
        var logger = new CapturingLogger();
        using var release = new ManualResetEventSlim();
        var stubborn = new ServiceThread(
            s =>
            {
                s.Started();
                release.Wait(s_bound);
            },
            new ServiceThreadOptions { Name = "stubborn", Logger = logger });
        var polite = WellBehaved("polite", logger);
        var group = new ServiceGroup(stubborn, polite).Start().WaitStarted(s_bound);
        group.Stop();
        polite.Join(s_bound).ShouldBeTrue();

        var ended = group.JoinOrLog(TimeSpan.Zero);

        ended.ShouldBeFalse();
        logger.Entries.ShouldHaveSingleItem().Message.ShouldContain("stubborn");
        release.Set();
        group.JoinOrLog(s_bound).ShouldBeTrue();
    }

    /// <summary>Returns what the call throws synchronously (before any task), or null if it returns a task.</summary>
    private static Exception? ThrownAtTheCall(Func<Task> call)
    {
        try
        {
            _ = call();
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }
}
