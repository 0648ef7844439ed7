using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class ServiceThreadTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    /// <summary>A service that reports started, then waits for its stop.</summary>
    private static ServiceThread CreateWellBehaved(ServiceThreadOptions? options = null) =>
        new(service =>
        {
            service.Started();
            service.Scope.Wait(Timeout.InfiniteTimeSpan);
        }, options);

    [Fact]
    public void WaitStarted_ServiceCallsStarted_Returns()
    {
        var service = CreateWellBehaved();

        service.Start();
        service.WaitStarted(s_bound);

        service.IsStarted.ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.IsStopped.ShouldBeFalse();
        service.Stop().ShouldBeTrue();
        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.IsStopped.ShouldBeTrue();
        service.Exception.ShouldBeNull();
    }

    [Fact]
    public void Stop_SecondCall_ReturnsFalseAndKeepsFirstReason()
    {
        var service = CreateWellBehaved();
        service.Start();

        var first = service.Stop("first");
        var second = service.Stop("second");

        first.ShouldBeTrue();
        second.ShouldBeFalse();
        service.Scope.Reason.ShouldBe("first");
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Stop_DefaultReason_IsStop()
    {
        var service = CreateWellBehaved();

        service.Stop();

        service.Scope.Reason.ShouldBe("stop");
    }

    [Fact]
    public void WaitStarted_BodyThrowsBeforeStarted_ThrowsWithTheFailureAsInner()
    {
        var boom = new InvalidDataException("boom");
        var service = new ServiceThread(_ => throw boom);

        service.Start();
        var thrown = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        service.IsFailed.ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
        service.Scope.IsFailed.ShouldBeTrue();
        service.Scope.Exception.ShouldBeSameAs(boom);
        service.IsStarted.ShouldBeFalse();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStarted_FailureWhileParentWaits_ThrowsFailureNotStart()
    {
        using var fail = new ManualResetEventSlim();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var boom = new InvalidOperationException("port in use");
        var service = new ServiceThread(s =>
        {
            fail.Wait(s_bound);
            s.Fail(boom);
        });
        service.Start();

        var wait = DedicatedThread.Run(() =>
        {
            waiting.SetResult();
            service.WaitStarted(s_bound);
        });
        await waiting.Task.WaitAsync(s_bound);
        fail.Set();

        var thrown = await Should.ThrowAsync<ServiceStartException>(wait.WaitAsync(s_bound));
        thrown.InnerException.ShouldBeSameAs(boom);
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_BodyEndsWithoutStarted_Throws()
    {
        var service = new ServiceThread(_ => { });

        service.Start();
        var thrown = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeOfType<InvalidOperationException>();
        service.IsStarted.ShouldBeFalse();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public async Task WaitStarted_StopDuringStartup_ThrowsAtOnceAndLateStartedIsIgnored()
    {
        using var release = new ManualResetEventSlim();
        var startedCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new ServiceThread(s =>
        {
            // A slow startup that does not look at its scope, then reports started anyway.
            release.Wait(s_bound);
            s.Started();
            startedCalled.SetResult();
        });
        service.Start();
        var wait = DedicatedThread.Run(() => service.WaitStarted(s_bound));

        service.Stop("shutdown");

        var thrown = await Should.ThrowAsync<ServiceStartException>(wait.WaitAsync(s_bound));
        thrown.InnerException.ShouldBeOfType<ClosedResourceException>().Message.ShouldContain("shutdown");
        release.Set();
        await startedCalled.Task.WaitAsync(s_bound);
        service.IsStarted.ShouldBeFalse();
        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Stop_BeforeStart_BodySeesClosedScopeAndWaitStartedThrows()
    {
        var closedAtEntry = false;
        var service = new ServiceThread(s => closedAtEntry = s.Scope.IsClosed);

        service.Stop();
        service.Start();

        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeOfType<ClosedResourceException>();
        service.Join(s_bound).ShouldBeTrue();
        closedAtEntry.ShouldBeTrue();
    }

    [Fact]
    public void Stop_RightAfterStart_IsNeverLost()
    {
        for (var i = 0; i < 50; i++)
        {
            var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan));

            service.Start();
            service.Stop();

            service.Join(s_bound).ShouldBeTrue();
            Should.Throw<ServiceStartException>(() => service.WaitStarted(TimeSpan.Zero));
        }
    }

    [Fact]
    public void WaitStarted_NeverStarted_ThrowsTimeoutException()
    {
        var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan));
        service.Start();

        Should.Throw<TimeoutException>(() => service.WaitStarted(TimeSpan.FromMilliseconds(50)));

        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_FakeClockPassesTimeout_ThrowsTimeoutException()
    {
        var clock = new FakeTimeProvider();
        var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan), new ServiceThreadOptions { TimeProvider = clock });
        service.Start();

        var wait = service.WaitStartedAsync(TimeSpan.FromMinutes(1));
        clock.Advance(TimeSpan.FromMinutes(1));

        await Should.ThrowAsync<TimeoutException>(wait.WaitAsync(s_bound));
        service.Stop();
        (await service.JoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_ServiceStarts_Completes()
    {
        var service = CreateWellBehaved();
        service.Start();

        await service.WaitStartedAsync().WaitAsync(s_bound);

        service.IsStarted.ShouldBeTrue();
        service.Stop();
        (await service.JoinOrLogAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_Cancelled_ThrowsOperationCanceled()
    {
        var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan));
        service.Start();
        using var cts = new CancellationTokenSource();

        var wait = service.WaitStartedAsync(cts.Token);
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(s_bound));
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsync_BodyThrows_ThrowsWithTheFailureAsInner()
    {
        var boom = new InvalidDataException("boom");
        var service = new ServiceThread(_ => throw boom);
        service.Start();

        var thrown = await Should.ThrowAsync<ServiceStartException>(service.WaitStartedAsync(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
    }

    [Fact]
    public void WaitStarted_FailedAfterStarting_ThrowsTheFailure()
    {
        var boom = new InvalidDataException("crashed later");
        var service = new ServiceThread(s =>
        {
            s.Started();
            throw boom;
        });
        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        var thrown = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        thrown.InnerException.ShouldBeSameAs(boom);
        service.IsStarted.ShouldBeTrue();
    }

    [Fact]
    public void WaitStarted_OnTheServiceThread_ThrowsInvalidOperation()
    {
        Exception? caught = null;
        var service = new ServiceThread(s =>
        {
            try
            {
                s.WaitStarted(s_bound);
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });

        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        caught.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public void Join_OnTheServiceThread_ThrowsInvalidOperation()
    {
        Exception? caught = null;
        var service = new ServiceThread(s =>
        {
            s.Started();
            try
            {
                s.Join(s_bound);
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });

        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        caught.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public void WaitStarted_NegativeTimeout_ThrowsArgumentOutOfRange()
    {
        var service = CreateWellBehaved();

        Should.Throw<ArgumentOutOfRangeException>(() => service.WaitStarted(TimeSpan.FromSeconds(-1)));
        Should.Throw<ArgumentOutOfRangeException>(() => service.Join(TimeSpan.FromSeconds(-1)));
        Should.Throw<ArgumentOutOfRangeException>(() => service.JoinOrLog(TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public void Start_Twice_ThrowsInvalidOperation()
    {
        var service = CreateWellBehaved();
        service.Start();

        Should.Throw<InvalidOperationException>(service.Start);

        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Started_Twice_ThrowsInvalidOperation()
    {
        Exception? second = null;
        var service = new ServiceThread(s =>
        {
            s.Started();
            second = Record.Exception(s.Started);
        });

        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        second.ShouldBeOfType<InvalidOperationException>();
        service.IsStarted.ShouldBeTrue();
    }

    [Fact]
    public void Constructor_NullTarget_ThrowsArgumentNull()
    {
        Should.Throw<ArgumentNullException>(() => new ServiceThread(null!));
    }

    [Fact]
    public void Fail_Null_ThrowsArgumentNull()
    {
        var service = CreateWellBehaved();

        Should.Throw<ArgumentNullException>(() => service.Fail(null!));
    }

    [Fact]
    public void Fail_FromOutside_FailsScopeAndKeepsFirstFailure()
    {
        var first = new InvalidOperationException("first");
        var service = CreateWellBehaved();
        service.Start();
        service.WaitStarted(s_bound);

        service.Fail(first);
        service.Fail(new InvalidOperationException("second"));

        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(first);
        service.Scope.Exception.ShouldBeSameAs(first);
        service.Stop().ShouldBeFalse();
    }

    [Fact]
    public void JoinOrLog_ServiceIgnoresStop_ReturnsFalseAndLogsError()
    {
        var logger = new CapturingLogger();
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(
            s =>
            {
                s.Started();
                release.Wait(s_bound);
            },
            new ServiceThreadOptions { Name = "stubborn", Logger = logger });
        service.Start();
        service.WaitStarted(s_bound);

        service.Stop();
        var ended = service.JoinOrLog(TimeSpan.FromMilliseconds(50));

        ended.ShouldBeFalse();
        var entry = logger.Entries.ShouldHaveSingleItem();
        entry.Level.ShouldBe(LogLevel.Error);
        entry.Message.ShouldContain("stubborn");
        release.Set();
        service.JoinOrLog(s_bound).ShouldBeTrue();
        logger.Entries.Count.ShouldBe(1);
    }

    [Fact]
    public void JoinOrLog_NeverStarted_ReturnsTrue()
    {
        var service = CreateWellBehaved();

        service.JoinOrLog(TimeSpan.Zero).ShouldBeTrue();
        service.Join(TimeSpan.Zero).ShouldBeTrue();
    }

    [Fact]
    public void JoinOrLog_FailedService_LogsTheFailureOnce()
    {
        var logger = new CapturingLogger();
        var boom = new InvalidDataException("boom");
        var service = new ServiceThread(_ => throw boom, new ServiceThreadOptions { Logger = logger });
        service.Start();

        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.JoinOrLog(s_bound).ShouldBeTrue();

        var entry = logger.Entries.ShouldHaveSingleItem();
        entry.Level.ShouldBe(LogLevel.Error);
        entry.Exception.ShouldBeSameAs(boom);
    }

    [Fact]
    public async Task JoinAsync_FakeClockPassesTimeout_ReturnsFalse()
    {
        var clock = new FakeTimeProvider();
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(_ => release.Wait(s_bound), new ServiceThreadOptions { TimeProvider = clock });
        service.Start();

        var join = service.JoinAsync(TimeSpan.FromSeconds(30));
        clock.Advance(TimeSpan.FromSeconds(30));

        (await join.WaitAsync(s_bound)).ShouldBeFalse();
        release.Set();
        (await service.JoinAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task Join_FakeClockPassesTimeout_ReturnsFalse()
    {
        var clock = new FakeTimeProvider();
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(_ => release.Wait(s_bound), new ServiceThreadOptions { TimeProvider = clock });
        service.Start();
        bool ended;

        // The blocked Join arms its timer at a moment the test cannot see, so the fake clock keeps moving until it returns.
        using (new Timer(_ => clock.Advance(TimeSpan.FromSeconds(1)), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(5)))
        {
            ended = service.Join(TimeSpan.FromSeconds(30));
        }

        ended.ShouldBeFalse();
        release.Set();
        (await service.JoinAsync(Timeout.InfiniteTimeSpan).WaitAsync(s_bound)).ShouldBeTrue();
    }

    [Fact]
    public void Body_OperationCanceledAfterStop_IsANormalStop()
    {
        var service = new ServiceThread(s =>
        {
            s.Started();
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
            s.Scope.Token.ThrowIfCancellationRequested();
        });
        service.Start();
        service.WaitStarted(s_bound);

        service.Stop();

        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.Scope.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void Body_OperationCanceledWithoutStop_IsAFailure()
    {
        var service = new ServiceThread(_ => throw new OperationCanceledException());

        service.Start();

        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeOfType<OperationCanceledException>();
    }

    [Fact]
    public void Options_NameAndBackground_AppliedToTheThread()
    {
        string? name = null;
        var background = false;
        var service = new ServiceThread(
            _ =>
            {
                name = Thread.CurrentThread.Name;
                background = Thread.CurrentThread.IsBackground;
            },
            new ServiceThreadOptions { Name = "reader", IsBackground = false });

        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        service.Name.ShouldBe("reader");
        service.ToString().ShouldBe("reader");
        name.ShouldBe("reader");
        background.ShouldBeFalse();
    }

    [Fact]
    public void Options_Default_BackgroundThreadNamedAfterType()
    {
        var background = false;
        var service = new ServiceThread(_ => background = Thread.CurrentThread.IsBackground);

        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        background.ShouldBeTrue();
        service.Name.ShouldBe(nameof(ServiceThread));
    }

    [Fact]
    public void RunService_Overridden_RunsAsTheBody()
    {
        var service = new CountingService();

        service.Start();
        service.WaitStarted(s_bound);
        service.Stop();

        service.Join(s_bound).ShouldBeTrue();
        service.Runs.ShouldBe(1);
        service.Name.ShouldBe(nameof(CountingService));
    }

    [Fact]
    public void RunService_NotOverriddenWithoutTarget_FailsTheService()
    {
        var service = new EmptyService();

        service.Start();

        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public void Scope_ClosedDirectly_StopsLikeStop()
    {
        var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan));
        service.Start();

        service.Scope.Close("direct");

        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeOfType<ClosedResourceException>();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Scope_ClosedOrFailedAndBodyEndsBeforeTheServiceSeesIt_ReportsTheStopOrTheFailure(bool fail)
    {
        var service = new ServiceThread(s => s.Scope.Wait(Timeout.InfiniteTimeSpan));
        service.Start();
        // Token callbacks run last-registered first, so this one runs before the service's own and holds it back until
        // the body, which the close released, has ended.
        var endedFirst = false;
        service.Scope.Token.Register(() => endedFirst = service.Join(s_bound));
        var failure = new TimeoutException("peer gone");

        if (fail)
        {
            service.Scope.Fail(failure);
        }
        else
        {
            service.Scope.Close("direct");
        }

        endedFirst.ShouldBeTrue();
        var inner = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException;
        if (fail)
        {
            inner.ShouldBeSameAs(failure);
        }
        else
        {
            inner.ShouldBeOfType<ClosedResourceException>().Message.ShouldContain("direct");
        }
    }

    private sealed class CountingService : ServiceThread
    {
        public int Runs { get; private set; }

        protected override void RunService()
        {
            Runs++;
            Started();
            Scope.Wait(Timeout.InfiniteTimeSpan);
        }
    }

    private sealed class EmptyService : ServiceThread
    {
    }

    [Fact]
    public void Stop_BodyBlockingInTaskWait_IsANormalStopNotAFailure()
    {
        var service = new ServiceThread(s =>
        {
            s.Started();
            Task.Delay(Timeout.Infinite, s.Scope.Token).Wait();
        });
        service.Start();
        service.WaitStarted(s_bound);

        service.Stop();

        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.Exception.ShouldBeNull();
    }
}
