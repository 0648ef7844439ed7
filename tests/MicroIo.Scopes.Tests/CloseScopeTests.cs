namespace MicroIo.Tests;

public class CloseScopeTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void New_IsOpen()
    {
        var scope = new CloseScope();

        scope.IsClosed.ShouldBeFalse();
        scope.IsFailed.ShouldBeFalse();
        scope.Reason.ShouldBeNull();
        scope.Exception.ShouldBeNull();
        scope.Token.IsCancellationRequested.ShouldBeFalse();
        Should.NotThrow(scope.ThrowIfClosed);
    }

    [Fact]
    public void Close_First_ReturnsTrueAndRecordsReason()
    {
        var scope = new CloseScope();

        var first = scope.Close("shutdown");
        var second = scope.Close("again", new InvalidOperationException());

        first.ShouldBeTrue();
        second.ShouldBeFalse();
        scope.IsClosed.ShouldBeTrue();
        scope.IsFailed.ShouldBeFalse();
        scope.Reason.ShouldBe("shutdown");
        scope.Exception.ShouldBeNull();
        scope.Token.IsCancellationRequested.ShouldBeTrue();
    }

    [Fact]
    public void Close_WithException_IsFailed()
    {
        var scope = new CloseScope();
        var error = new IOException("disk");

        scope.Close("reason", error).ShouldBeTrue();

        scope.IsFailed.ShouldBeTrue();
        scope.Exception.ShouldBeSameAs(error);
        scope.Reason.ShouldBe("reason");
    }

    [Fact]
    public void Fail_WithoutReason_TakesExceptionMessage()
    {
        var scope = new CloseScope();
        var error = new IOException("pipe broke");

        var result = scope.Fail(error);

        result.ShouldBeTrue();
        scope.IsClosed.ShouldBeTrue();
        scope.IsFailed.ShouldBeTrue();
        scope.Exception.ShouldBeSameAs(error);
        scope.Reason.ShouldBe("pipe broke");
    }

    [Fact]
    public void Fail_EmptyReason_TakesExceptionMessage()
    {
        var scope = new CloseScope();

        scope.Fail(new IOException("disk full"), string.Empty);

        scope.Reason.ShouldBe("disk full");
    }

    [Fact]
    public void Fail_WithReason_KeepsReason()
    {
        var scope = new CloseScope();

        scope.Fail(new IOException("x"), "reader crashed");

        scope.Reason.ShouldBe("reader crashed");
    }

    [Fact]
    public void Fail_AfterClose_ReturnsFalseAndKeepsFirstState()
    {
        var scope = new CloseScope();
        scope.Close("done");

        var result = scope.Fail(new IOException("late"));

        result.ShouldBeFalse();
        scope.IsFailed.ShouldBeFalse();
        scope.Reason.ShouldBe("done");
    }

    [Fact]
    public void Fail_Null_ThrowsArgumentNullAndStaysOpen()
    {
        var scope = new CloseScope();

        Should.Throw<ArgumentNullException>(() => scope.Fail(null!)).ParamName.ShouldBe("exception");

        scope.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public void ThrowIfClosed_AfterClose_ThrowsClosedWithReasonAsMessage()
    {
        var scope = new CloseScope();
        scope.Close("stopping");

        var ex = Should.Throw<ClosedResourceException>(scope.ThrowIfClosed);

        ex.Message.ShouldBe("stopping");
        ex.InnerException.ShouldBeNull();
    }

    [Fact]
    public void ThrowIfClosed_AfterCloseWithoutReason_ThrowsClosedWithDefaultMessage()
    {
        var scope = new CloseScope();
        scope.Close();

        var ex = Should.Throw<ClosedResourceException>(scope.ThrowIfClosed);

        ex.Message.ShouldNotBeNullOrWhiteSpace();
    }

    [Fact]
    public void ThrowIfClosed_AfterFail_ThrowsBrokenWithCauseAsInner()
    {
        var scope = new CloseScope();
        var error = new IOException("boom");
        scope.Fail(error, "reader died");

        var ex = Should.Throw<BrokenResourceException>(scope.ThrowIfClosed);

        ex.Message.ShouldBe("reader died");
        ex.InnerException.ShouldBeSameAs(error);
    }

    [Fact]
    public void Close_RacingFromManyThreads_HasExactlyOneWinner()
    {
        for (var iteration = 0; iteration < 200; iteration++)
        {
            var scope = new CloseScope();
            var winners = 0;
            const int threads = 8;
            using var barrier = new Barrier(threads);

            var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
            {
                barrier.SignalAndWait();
                var won = i % 2 == 0 ? scope.Close($"close {i}") : scope.Fail(new IOException($"fail {i}"));
                if (won)
                {
                    Interlocked.Increment(ref winners);
                }
            })).ToList();
            workers.ForEach(t => t.Start());
            workers.ForEach(t => t.Join(s_bound).ShouldBeTrue());

            winners.ShouldBe(1);
            scope.IsClosed.ShouldBeTrue();
            // The reason and the exception come from the same (winning) call.
            if (scope.Exception is { } error)
            {
                scope.Reason.ShouldBe(error.Message);
            }
            else
            {
                scope.Reason.ShouldStartWith("close ");
            }
        }
    }

    [Fact]
    public void Token_IsCancelledExactlyOnce_EvenUnderRacingCloses()
    {
        for (var iteration = 0; iteration < 100; iteration++)
        {
            var scope = new CloseScope();
            var callbacks = 0;
            using var registration = scope.Token.Register(() => Interlocked.Increment(ref callbacks));

            Parallel.For(0, 8, i => scope.Close());

            callbacks.ShouldBe(1);
        }
    }

    [Fact]
    public void Token_CallbackThrows_ScopeStillClosedAndWaitersWoken()
    {
        var scope = new CloseScope();
        var waiter = scope.WaitAsync();
        using var registration = scope.Token.Register(() => throw new InvalidOperationException("callback"));

        Should.Throw<AggregateException>(() => scope.Close("x"));

        scope.IsClosed.ShouldBeTrue();
        waiter.IsCompletedSuccessfully.ShouldBeTrue();
    }

    [Fact]
    public void Wait_OnOtherThread_IsWokenByClose()
    {
        var scope = new CloseScope();
        bool? result = null;
        var waiting = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            waiting.Set();
            result = scope.Wait(Timeout.InfiniteTimeSpan);
        });
        thread.Start();
        waiting.Wait(s_bound).ShouldBeTrue();

        scope.Close("bye");

        thread.Join(s_bound).ShouldBeTrue();
        result.ShouldBe(true);
    }

    [Fact]
    public void Wait_OnOtherThread_IsWokenByFail()
    {
        var scope = new CloseScope();
        bool? result = null;
        var waiting = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            waiting.Set();
            result = scope.Wait(CancellationToken.None);
        });
        thread.Start();
        waiting.Wait(s_bound).ShouldBeTrue();

        scope.Fail(new IOException("x"));

        thread.Join(s_bound).ShouldBeTrue();
        result.ShouldBe(true);
    }

    [Fact]
    public void Wait_Timeout_ReturnsFalseWhileOpen()
    {
        var scope = new CloseScope();

        scope.Wait(TimeSpan.Zero).ShouldBeFalse();
        scope.Wait(TimeSpan.FromMilliseconds(1)).ShouldBeFalse();
    }

    [Fact]
    public void Wait_AlreadyClosed_ReturnsTrueAtOnce()
    {
        var scope = new CloseScope();
        scope.Close();

        scope.Wait(TimeSpan.Zero).ShouldBeTrue();
        scope.Wait(new CancellationToken(true)).ShouldBeTrue();
    }

    [Fact]
    public void Wait_TokenCancelled_ReturnsFalse()
    {
        var scope = new CloseScope();
        using var cts = new CancellationTokenSource();
        var waiting = new ManualResetEventSlim();
        bool? result = null;
        var thread = new Thread(() =>
        {
            waiting.Set();
            result = scope.Wait(cts.Token);
        });
        thread.Start();
        waiting.Wait(s_bound).ShouldBeTrue();

        cts.Cancel();

        thread.Join(s_bound).ShouldBeTrue();
        result.ShouldBe(false);
        scope.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public void Wait_NegativeTimeout_ThrowsArgumentOutOfRange()
    {
        var scope = new CloseScope();

        Should.Throw<ArgumentOutOfRangeException>(() => scope.Wait(TimeSpan.FromSeconds(-1))).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => scope.Wait(TimeSpan.FromMilliseconds(-2), CancellationToken.None));
    }

    [Fact]
    public void Wait_InfiniteTimeout_IsAccepted()
    {
        var scope = new CloseScope();
        scope.Close();

        scope.Wait(Timeout.InfiniteTimeSpan).ShouldBeTrue();
    }

    [Fact]
    public async Task WaitAsync_CompletesOnClose_NotInlineOnClosingThread()
    {
        var scope = new CloseScope();
        // Registered before the close, and asking to run synchronously: only the scope can move it off the closer.
        var continuationThread = scope.WaitAsync().ContinueWith(
            _ => Environment.CurrentManagedThreadId,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        var closingThread = -1;

        var closer = new Thread(() =>
        {
            closingThread = Environment.CurrentManagedThreadId;
            scope.Close("x");
        });
        closer.Start();
        closer.Join(s_bound).ShouldBeTrue();

        (await continuationThread.WaitAsync(s_bound)).ShouldNotBe(closingThread);
    }

    [Fact]
    public async Task WaitAsync_HonoursCancellationToken()
    {
        var scope = new CloseScope();
        using var cts = new CancellationTokenSource();
        var wait = scope.WaitAsync(cts.Token);

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(s_bound));
        scope.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_AfterFail_CompletesSuccessfully()
    {
        var scope = new CloseScope();
        var wait = scope.WaitAsync();

        scope.Fail(new IOException("x"));

        await wait.WaitAsync(s_bound);
        wait.IsCompletedSuccessfully.ShouldBeTrue();
    }

    [Fact]
    public async Task Token_ObservableByBclApis()
    {
        var scope = new CloseScope();
        var delay = Task.Delay(Timeout.Infinite, scope.Token);

        scope.Close();

        await Should.ThrowAsync<TaskCanceledException>(delay.WaitAsync(s_bound));
    }
}
