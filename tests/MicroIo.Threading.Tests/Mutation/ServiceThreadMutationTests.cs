using Microsoft.Extensions.Logging;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// ServiceThread contract details that the unit tests left open (found by Stryker survivors): argument checks that must
/// hold even when nothing needs waiting for, late or out-of-order calls, and failures of callbacks on the service's scope.
/// </summary>
public sealed class ServiceThreadMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_negative = TimeSpan.FromSeconds(-2);

    private static ServiceThread StartWellBehaved(ServiceThreadOptions? options = null)
    {
        var service = new ServiceThread(
            s =>
            {
                s.Started();
                s.Scope.Wait(Timeout.InfiniteTimeSpan);
            },
            options);
        service.Start();
        service.WaitStarted(s_bound);
        return service;
    }

    [Fact]
    public async Task WaitStartedAndJoin_BadTimeout_ThrowEvenWhenThereIsNothingToWaitFor()
    {
        var started = StartWellBehaved();
        var neverStarted = new ServiceThread(_ => { });

        Should.Throw<ArgumentOutOfRangeException>(() => started.WaitStarted(s_negative));
        Should.Throw<ArgumentOutOfRangeException>(() => started.WaitStartedAsync(s_negative));
        Should.Throw<ArgumentOutOfRangeException>(() => neverStarted.Join(s_negative));
        Should.Throw<ArgumentOutOfRangeException>(() => neverStarted.JoinAsync(s_negative));
        started.Stop();
        (await started.JoinAsync(s_bound)).ShouldBeTrue();
        Should.Throw<ArgumentOutOfRangeException>(() => started.JoinAsync(s_negative));
    }

    [Fact]
    public void WaitStarted_LargestFiniteTimeout_IsAccepted()
    {
        var service = StartWellBehaved();

        service.WaitStarted(TimeSpan.FromMilliseconds(int.MaxValue));

        service.IsStarted.ShouldBeTrue();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task JoinAsync_NeverStarted_IsTrueAtOnce()
    {
        var service = new ServiceThread(_ => { });

        (await service.JoinAsync(TimeSpan.Zero)).ShouldBeTrue();
        (await service.JoinOrLogAsync(TimeSpan.Zero)).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitStartedAsyncAndJoinAsync_OnTheServiceThread_ThrowInsteadOfWaitingForItself()
    {
        var outcome = new TaskCompletionSource<(Exception? BeforeStarted, bool AfterStartedDone, Exception? Join)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var service = new ServiceThread(s =>
        {
            var before = ThrownAtTheCall(() => s.WaitStartedAsync(s_bound));
            s.Started();
            var after = s.WaitStartedAsync(s_bound);
            var join = ThrownAtTheCall(() => s.JoinAsync(s_bound));
            outcome.SetResult((before, after.IsCompletedSuccessfully, join));
        });
        service.Start();

        var (beforeStarted, afterStartedDone, join) = await outcome.Task.WaitAsync(s_bound);

        beforeStarted.ShouldBeOfType<InvalidOperationException>();
        afterStartedDone.ShouldBeTrue();
        join.ShouldBeOfType<InvalidOperationException>();
        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void Started_AfterTheServiceEndedWithoutIt_IsIgnored()
    {
        var service = new ServiceThread(_ => { });
        service.Start();
        service.Join(s_bound).ShouldBeTrue();

        service.Started();

        service.IsStarted.ShouldBeFalse();
        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public void Started_WhileTheScopeFails_SettlesWithTheScopesFailureAtOnce()
    {
        var boom = new InvalidDataException("scope failed");
        Exception? seenInCallback = null;

        // The body outlives the close, so its end cannot settle the start first.
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(_ => release.Wait(s_bound));
        service.Start();

        // Token callbacks run last-registered first: this one runs before the service's own, with the scope closed but the
        // start not yet settled.
        service.Scope.Token.Register(() =>
        {
            service.Started();
            seenInCallback = Record.Exception(() => service.WaitStarted(TimeSpan.Zero));
        });
        service.Scope.Fail(boom);

        seenInCallback.ShouldBeOfType<ServiceStartException>().InnerException.ShouldBeSameAs(boom);
        service.IsStarted.ShouldBeFalse();
        release.Set();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Scope_FailedDirectlyBeforeStarted_WaitStartedCarriesTheScopesFailure()
    {
        var boom = new InvalidDataException("scope failed");

        // The body outlives the close, so its end cannot settle the start first.
        using var release = new ManualResetEventSlim();
        var service = new ServiceThread(_ => release.Wait(s_bound));
        service.Start();

        service.Scope.Fail(boom);

        Should.Throw<ServiceStartException>(() => service.WaitStarted(s_bound)).InnerException.ShouldBeSameAs(boom);
        release.Set();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Fail_Null_ThrowsAndLeavesTheServiceUntouched()
    {
        var service = new ServiceThread(s =>
        {
            s.Started();
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
        });

        Should.Throw<ArgumentNullException>(() => service.Fail(null!));
        service.Start();
        service.WaitStarted(s_bound);

        service.IsStarted.ShouldBeTrue();
        service.IsFailed.ShouldBeFalse();
        service.Stop();
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Fail_ScopeCallbackThrows_ThrowsItToTheCaller()
    {
        var service = StartWellBehaved();
        var boom = new InvalidDataException("peer crashed");
        service.Scope.Token.Register(() => throw new FormatException("callback"));

        var thrown = Should.Throw<AggregateException>(() => service.Fail(boom));

        thrown.InnerExceptions.ShouldContain(e => e is FormatException);
        service.Exception.ShouldBeSameAs(boom);
        service.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void BodyThrows_ScopeCallbackThrowsToo_ServiceFailsWithTheBodysExceptionAndLogsTheCallbacks()
    {
        var logger = new CapturingLogger();
        using var registered = new ManualResetEventSlim();
        var boom = new InvalidDataException("body failed");
        var service = new ServiceThread(
            s =>
            {
                registered.Wait(s_bound);
                throw boom;
            },
            new ServiceThreadOptions { Logger = logger });
        service.Scope.Token.Register(() => throw new FormatException("callback"));
        service.Start();

        registered.Set();

        service.JoinOrLog(s_bound).ShouldBeTrue();
        service.Exception.ShouldBeSameAs(boom);
        logger.Entries.ShouldContain(e => e.Exception is AggregateException && ((AggregateException)e.Exception).InnerExceptions.Any(x => x is FormatException));
        logger.Entries.ShouldContain(e => e.Level == LogLevel.Error && e.Exception == boom);
    }

    [Fact]
    public void Body_AggregateOfACancellationAndAFailureAfterStop_IsAFailure()
    {
        var boom = new InvalidDataException("real failure");
        var service = new ServiceThread(s =>
        {
            s.Started();
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
            throw new AggregateException(new OperationCanceledException(s.Scope.Token), boom);
        });
        service.Start();
        service.WaitStarted(s_bound);

        service.Stop();

        service.Join(s_bound).ShouldBeTrue();
        service.IsFailed.ShouldBeTrue();
        service.Exception.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldContain(boom);
    }

    [Fact]
    public void ServiceStartException_NullMessage_GetsTheDefault()
    {
        var inner = new InvalidDataException("x");

        var withMessage = new ServiceStartException(null);
        var withInner = new ServiceStartException(null, inner);

        withMessage.Message.ShouldBe(new ServiceStartException().Message);
        withInner.Message.ShouldBe(new ServiceStartException().Message);
        withInner.InnerException.ShouldBeSameAs(inner);
        new ServiceStartException("custom", inner).Message.ShouldBe("custom");
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
