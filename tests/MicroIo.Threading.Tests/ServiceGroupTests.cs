using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class ServiceGroupTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    /// <summary>A service that reports started, then waits for its stop.</summary>
    private static ServiceThread WellBehaved(string name, ServiceThreadOptions? options = null) =>
        new(
            s =>
            {
                s.Started();
                s.Scope.Wait(Timeout.InfiniteTimeSpan);
            },
            Named(name, options));

    /// <summary>A service that never reports started, but stops when asked.</summary>
    private static ServiceThread NeverStarts(string name) =>
        new(s => s.Scope.Wait(Timeout.InfiniteTimeSpan), Named(name, null));

    private static ServiceThreadOptions Named(string name, ServiceThreadOptions? options) =>
        new() { Name = name, Logger = options?.Logger, TimeProvider = options?.TimeProvider };

    [Fact]
    public void StartWaitStartedStopJoin_ServicesThroughAGroup_StartAndStop()
    {
        var a = WellBehaved("a");
        var loop = new LoopServiceThread();

        var group = new ServiceGroup(a, loop).Start().WaitStarted(s_bound);

        a.IsStarted.ShouldBeTrue();
        loop.IsStarted.ShouldBeTrue();
        group.StopJoin(s_bound).ShouldBeTrue();
        a.IsStopped.ShouldBeTrue();
        loop.IsStopped.ShouldBeTrue();
        a.IsFailed.ShouldBeFalse();
        loop.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void Stop_GoesInReverseStartOrder()
    {
        var order = new ConcurrentQueue<string>();
        var services = new[] { WellBehaved("first"), WellBehaved("second"), WellBehaved("third") };
        foreach (var service in services)
        {
            service.Scope.Token.Register(() => order.Enqueue(service.Name));
        }

        var group = new ServiceGroup(services).Start().WaitStarted(s_bound);
        group.Stop();

        order.ShouldBe(["third", "second", "first"]);
        group.JoinOrLog(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_OneFails_StopsAndJoinsTheOthersThenThrowsTheFailure()
    {
        var boom = new InvalidDataException("cannot bind");
        var a = WellBehaved("a");
        var b = new ServiceThread(_ => throw boom, new ServiceThreadOptions { Name = "b" });
        var c = WellBehaved("c");
        var group = new ServiceGroup(a, b, c).Start();

        var thrown = Should.Throw<ServiceStartException>(() => group.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        a.Scope.IsClosed.ShouldBeTrue();
        c.Scope.IsClosed.ShouldBeTrue();
        a.IsStopped.ShouldBeTrue();
        b.IsStopped.ShouldBeTrue();
        c.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_LaterServiceFailsWhileAnEarlierOneIsStillStarting_ThrowsWithoutWaitingForIt()
    {
        var boom = new InvalidDataException("b failed");
        var slow = NeverStarts("slow");
        var failing = new ServiceThread(_ => throw boom, new ServiceThreadOptions { Name = "failing" });
        var group = new ServiceGroup(slow, failing).Start();
        var watch = Stopwatch.StartNew();

        var thrown = Should.Throw<ServiceStartException>(() => group.WaitStarted(TimeSpan.FromSeconds(30)));

        watch.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(15));
        thrown.InnerException.ShouldBeSameAs(boom);
        slow.Scope.IsClosed.ShouldBeTrue();
        slow.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_ServiceNeverStarts_StopsAllAndThrowsTimeout()
    {
        var a = WellBehaved("a");
        var late = NeverStarts("late");
        var group = new ServiceGroup(a, late).Start();

        var thrown = Should.Throw<TimeoutException>(() => group.WaitStarted(TimeSpan.FromMilliseconds(300)));

        thrown.Message.ShouldContain("late");
        a.IsStopped.ShouldBeTrue();
        late.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_FakeClockPassesTheDeadline_StopsAllAndThrowsTimeout()
    {
        var clock = new FakeTimeProvider();
        var a = WellBehaved("a");
        var late = NeverStarts("late");
        var group = new ServiceGroup(a, late) { TimeProvider = clock }.Start();
        a.WaitStarted(s_bound);

        var wait = group.WaitStartedAsync(TimeSpan.FromMinutes(1));
        clock.Advance(TimeSpan.FromMinutes(1));

        await Should.ThrowAsync<TimeoutException>(wait.WaitAsync(s_bound));
        a.IsStopped.ShouldBeTrue();
        late.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_AllStart_Completes()
    {
        var group = new ServiceGroup(WellBehaved("a"), WellBehaved("b")).Start();

        await group.WaitStartedAsync(s_bound).WaitAsync(s_bound);

        group.Services.ShouldAllBe(s => s.IsStarted);
        (await group.StopJoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_OneFails_StopsTheOthersThenThrows()
    {
        var boom = new InvalidDataException("boom");
        var a = WellBehaved("a");
        var group = new ServiceGroup(a, new ServiceThread(_ => throw boom)).Start();

        var thrown = await Should.ThrowAsync<ServiceStartException>(group.WaitStartedAsync(s_bound).WaitAsync(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        a.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_Cancelled_ThrowsAndLeavesServicesRunning()
    {
        var late = NeverStarts("late");
        var group = new ServiceGroup(late).Start();
        using var cts = new CancellationTokenSource();

        var wait = group.WaitStartedAsync(Timeout.InfiniteTimeSpan, cts.Token);
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(s_bound));
        late.Scope.IsClosed.ShouldBeFalse();
        group.StopJoin(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void JoinOrLog_OneIgnoresStop_ReturnsFalseAndLogsOnlyThatOne()
    {
        var logger = new CapturingLogger();
        using var release = new ManualResetEventSlim();
        var polite = WellBehaved("polite", new ServiceThreadOptions { Logger = logger });
        var stubborn = new ServiceThread(
            s =>
            {
                s.Started();
                release.Wait(s_bound);
            },
            new ServiceThreadOptions { Name = "stubborn", Logger = logger });
        var group = new ServiceGroup(polite, stubborn).Start().WaitStarted(s_bound);
        group.Stop();
        polite.Join(s_bound).ShouldBeTrue();

        var ended = group.JoinOrLog(TimeSpan.FromMilliseconds(100));

        ended.ShouldBeFalse();
        var entry = logger.Entries.ShouldHaveSingleItem();
        entry.Level.ShouldBe(LogLevel.Error);
        entry.Message.ShouldContain("stubborn");
        group.StopJoin(TimeSpan.FromMilliseconds(50)).ShouldBeFalse();
        release.Set();
        group.JoinOrLog(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task JoinOrLogAsync_AllStopped_ReturnsTrue()
    {
        var group = new ServiceGroup(WellBehaved("a"), WellBehaved("b")).Start().WaitStarted(s_bound);

        group.Stop("bye");

        (await group.JoinOrLogAsync(s_bound)).ShouldBeTrue();
        group.Services.ShouldAllBe(s => s.Scope.Reason == "bye");
    }

    [Fact]
    public void JoinOrLog_NotStarted_ReturnsTrue()
    {
        var group = new ServiceGroup(WellBehaved("a"));

        group.JoinOrLog(TimeSpan.Zero).ShouldBeTrue();
    }

    [Fact]
    public void Add_IsFluentAndKeepsOrder()
    {
        var a = WellBehaved("a");
        var b = WellBehaved("b");
        var group = new ServiceGroup();

        var returned = group.Add(a).Add(b);

        returned.ShouldBeSameAs(group);
        group.Services.ShouldBe([a, b]);
    }

    [Fact]
    public void Add_BadInput_Throws()
    {
        var a = WellBehaved("a");
        var group = new ServiceGroup(a);

        Should.Throw<ArgumentNullException>(() => group.Add(null!));
        Should.Throw<ArgumentNullException>(() => group.Add(WellBehaved("b"), null!));
        Should.Throw<InvalidOperationException>(() => group.Add(a));
        var b = WellBehaved("b");
        Should.Throw<InvalidOperationException>(() => group.Add(b, b));
        group.Services.Count.ShouldBe(1);
    }

    [Fact]
    public void Add_AfterStart_ThrowsInvalidOperation()
    {
        var group = new ServiceGroup(WellBehaved("a")).Start();

        Should.Throw<InvalidOperationException>(() => group.Add(WellBehaved("b")));

        group.StopJoin(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Start_Twice_ThrowsInvalidOperation()
    {
        var group = new ServiceGroup(WellBehaved("a")).Start();

        Should.Throw<InvalidOperationException>(() => group.Start());

        group.StopJoin(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Start_AServiceAlreadyStarted_ThrowsAndStartsNothing()
    {
        var a = WellBehaved("a");
        var b = WellBehaved("b");
        b.Start();
        var group = new ServiceGroup(a, b);

        Should.Throw<InvalidOperationException>(() => group.Start());

        a.HasThreadStarted.ShouldBeFalse();
        b.Stop();
        b.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_BeforeStartOrWithBadTimeout_Throws()
    {
        var group = new ServiceGroup(WellBehaved("a"));

        Should.Throw<InvalidOperationException>(() => group.WaitStarted(s_bound));
        Should.Throw<ArgumentOutOfRangeException>(() => group.WaitStarted(TimeSpan.FromSeconds(-1)));
        Should.Throw<ArgumentOutOfRangeException>(() => group.JoinOrLog(TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public void StopJoin_FromAMembersOwnThread_ThrowsInsteadOfWaitingForItself()
    {
        var a = new LoopServiceThread(new ServiceThreadOptions { Name = "a" });
        var b = new LoopServiceThread(new ServiceThreadOptions { Name = "b" });
        var group = new ServiceGroup(a, b).Start().WaitStarted(s_bound);

        Should.Throw<InvalidOperationException>(() => a.CallSync(() => group.StopJoin(s_bound), s_bound));
        Should.Throw<InvalidOperationException>(() => a.CallSync(() => group.JoinOrLog(s_bound), s_bound));

        a.CallSync(() => group.Stop(), s_bound);
        group.JoinOrLog(s_bound).ShouldBeTrue();
    }
}
