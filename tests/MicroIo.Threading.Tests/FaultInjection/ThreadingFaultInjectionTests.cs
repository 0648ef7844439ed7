using Microsoft.Extensions.Logging;

namespace MicroIo.Tests.FaultInjection;

/// <summary>Services whose bodies, callbacks and loggers fail or misbehave: each ends in a visible failure with the original exception, never a hang.</summary>
public class ThreadingFaultInjectionTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task WaitStarted_BodyNeverCallsStarted_ThrowsServiceStartExceptionOnceTheBodyEnds()
    {
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(_ => release.Wait());
        service.Start();

        var wait = service.WaitStartedAsync(s_bound);
        wait.IsCompleted.ShouldBeFalse();
        release.Set();

        await Should.ThrowAsync<ServiceStartException>(() => wait);
        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));
        service.Join(s_bound).ShouldBeTrue();
        service.IsStarted.ShouldBeFalse();
    }

    [Fact]
    public void WaitStarted_BodyThrowsBeforeStarted_ThrowsServiceStartExceptionWithTheOriginal()
    {
        var failure = new IOException("boom");
        var service = new ServiceThread(_ => throw failure);
        service.Start();

        var ex = Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound));

        ex.InnerException.ShouldBeSameAs(failure);
        service.Join(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(failure);
        service.Scope.Exception.ShouldBeSameAs(failure);
    }

    [Fact]
    public void Join_ThreadThatIgnoresStop_ReturnsFalseAndJoinOrLogLogsIt()
    {
        using var release = new ManualResetEventSlim();
        var logger = new CapturingLogger();
        var service = new ServiceThread(s =>
        {
            s.Started();
            release.Wait();
        }, new ServiceThreadOptions { Logger = logger, Name = "stubborn" });
        service.Start();
        service.WaitStarted(s_bound);

        service.Stop("please").ShouldBeTrue();

        service.Join(TimeSpan.Zero).ShouldBeFalse();
        service.JoinOrLog(TimeSpan.Zero).ShouldBeFalse();
        logger.Entries.ShouldContain(e => e.Level >= LogLevel.Warning && e.Message.Contains("stubborn", StringComparison.Ordinal));
        service.IsStopped.ShouldBeFalse();
        release.Set();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void JoinOrLog_LoggerThatThrows_TheTimeoutIsStillReportedOrTheLoggerFailureSurfaces()
    {
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(s =>
        {
            s.Started();
            release.Wait();
        }, new ServiceThreadOptions { Logger = new ThrowingLogger() });
        service.Start();
        service.WaitStarted(s_bound);

        var outcome = Record.Exception(() => service.JoinOrLog(TimeSpan.Zero).ShouldBeFalse());

        // Either the join reports false (the logger's failure contained) or the logger's own exception surfaces; never a hang.
        if (outcome is not null)
        {
            outcome.ShouldBeOfType<ThrowingLoggerException>();
        }

        release.Set();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task LoopServiceThread_AsyncVoidThrowsOnTheLoop_ServiceFailsWithTheOriginal()
    {
        var failure = new IOException("async void");
        var service = new LoopServiceThread();
        service.Start();
        service.WaitStarted(s_bound);

        service.CallSoon(() => AsyncVoid(failure));

        (await service.JoinAsync(s_bound)).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task LoopServiceThread_BodyThrowsAfterStarted_PendingCallSyncWakesAndFailureIsVisible()
    {
        var failure = new IOException("body");
        using var gate = new SemaphoreSlim(0);
        var service = new LoopServiceThread(async (loop, ct) =>
        {
            loop.Started();
            await gate.WaitAsync(ct);
            throw failure;
        });
        service.Start();
        service.WaitStarted(s_bound);
        var never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var pending = service.Submit(async ct => await never.Task.WaitAsync(ct));

        gate.Release();

        var ex = await Record.ExceptionAsync(() => pending.WaitAsync(s_bound));
        ex.ShouldNotBeNull();
        ex.ShouldNotBeOfType<TimeoutException>();
        (await service.JoinAsync(s_bound)).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task ServiceGroup_OneServiceFailsToStart_StartedOnesAreStoppedAndTheOriginalIsInside()
    {
        var failure = new IOException("second fails");
        var first = new ServiceThread(s =>
        {
            s.Started();
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
        });
        var second = new ServiceThread(_ => throw failure);
        var group = new ServiceGroup(first, second).Start();

        var ex = Should.Throw<ServiceStartException>(() => group.WaitStarted(s_bound));

        ex.InnerException.ShouldBeSameAs(failure);
        (await first.JoinAsync(s_bound)).ShouldBeTrue();
        group.StopJoin(s_bound).ShouldBeTrue();
    }

    private static async void AsyncVoid(Exception failure)
    {
        await Task.Yield();
        throw failure;
    }

    private sealed class ThrowingLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new ThrowingLoggerException();
    }

    private sealed class ThrowingLoggerException() : Exception("the logger failed");
}
