using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class RequestRegistryTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    // ---- Construction and inspection ----

    [Fact]
    public void New_IsEmptyAndOpen()
    {
        var registry = new RequestRegistry<int, string>();

        registry.Count.ShouldBe(0);
        registry.PendingKeys.ShouldBeEmpty();
        registry.Contains(1).ShouldBeFalse();
        registry.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public void Constructor_NullTimeProvider_ThrowsArgumentNull()
    {
        Should.Throw<ArgumentNullException>(() => new RequestRegistry<int, string>(null!));
        Should.Throw<ArgumentNullException>(() => new RequestRegistry<int, string>(null, null!));
    }

    [Fact]
    public void Constructor_Comparer_IsUsedForKeys()
    {
        var registry = new RequestRegistry<string, int>(StringComparer.OrdinalIgnoreCase, TimeProvider.System);
        registry.Register("Ping");

        var duplicate = Should.Throw<InvalidOperationException>(() => registry.Register("PING"));

        duplicate.Message.ShouldContain("PING");
        registry.Contains("ping").ShouldBeTrue();
        registry.Resolve("pInG", 1).ShouldBeTrue();
    }

    [Fact]
    public void PendingKeys_IsASnapshot()
    {
        var registry = new RequestRegistry<int, string>();
        registry.Register(1);
        registry.Register(2);

        var keys = registry.PendingKeys;
        registry.Register(3);
        registry.Resolve(1, "a");

        keys.ShouldBe([1, 2], ignoreOrder: true);
        registry.PendingKeys.ShouldBe([2, 3], ignoreOrder: true);
        registry.Count.ShouldBe(2);
    }

    // ---- Register ----

    [Fact]
    public void Register_NewKey_IsPending()
    {
        var registry = new RequestRegistry<string, int>();

        var waiter = registry.Register("a");

        waiter.IsCompleted.ShouldBeFalse();
        registry.Count.ShouldBe(1);
        registry.Contains("a").ShouldBeTrue();
        registry.PendingKeys.ShouldBe(["a"]);
    }

    [Fact]
    public async Task Register_KeyAlreadyPending_ThrowsInvalidOperationNamingKey()
    {
        var registry = new RequestRegistry<string, int>();
        var first = registry.Register("req-42");

        var error = Should.Throw<InvalidOperationException>(() => registry.Register("req-42"));

        error.Message.ShouldContain("req-42");
        registry.Count.ShouldBe(1);
        registry.Resolve("req-42", 7).ShouldBeTrue();
        (await first.Task.WaitAsync(s_bound)).ShouldBe(7);
    }

    [Fact]
    public void Register_NullKey_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.Register(null!));
    }

    [Fact]
    public void Register_KeyAgainAfterItWasAnswered_Succeeds()
    {
        var registry = new RequestRegistry<int, int>();
        var first = registry.Register(1);
        registry.Resolve(1, 10);

        var second = registry.Register(1);

        second.ShouldNotBeSameAs(first);
        registry.Resolve(1, 20).ShouldBeTrue();
        registry.Wait(1, first).ShouldBe(10);
        registry.Wait(1, second).ShouldBe(20);
    }

    // ---- Resolve and Fail ----

    [Fact]
    public void Resolve_ThenWait_ReturnsValueAndRemovesKey()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);

        var resolved = registry.Resolve(1, "one");

        resolved.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        registry.Wait(1, waiter, TimeSpan.FromSeconds(1)).ShouldBe("one");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Resolve_KeyNeverRegistered_ReturnsFalse()
    {
        var registry = new RequestRegistry<int, string>();

        registry.Resolve(1, "x").ShouldBeFalse();
    }

    [Fact]
    public void Resolve_Twice_SecondReturnsFalseAndFirstValueWins()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);

        var first = registry.Resolve(1, "first");
        var second = registry.Resolve(1, "second");

        first.ShouldBeTrue();
        second.ShouldBeFalse();
        registry.Wait(1, waiter).ShouldBe("first");
    }

    [Fact]
    public void Resolve_NullKey_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.Resolve(null!, 1));
    }

    [Fact]
    public async Task Resolve_WithExceptionAsValue_DeliversItAsValue()
    {
        var registry = new RequestRegistry<int, object>();
        var error = new IOException("a value, not a failure");
        var syncWaiter = registry.Register(1);
        var asyncWaiter = registry.Register(2);

        registry.Resolve(1, error);
        registry.Resolve(2, error);

        registry.Wait(1, syncWaiter).ShouldBeSameAs(error);
        (await registry.WaitAsync(2, asyncWaiter).AsTask().WaitAsync(s_bound)).ShouldBeSameAs(error);
    }

    [Fact]
    public void Resolve_RegistryOfExceptions_DeliversExceptionAsValue()
    {
        var registry = new RequestRegistry<int, Exception>();
        var error = new InvalidOperationException("payload");

        var result = registry.Request(1, reply => reply.Resolve(error), TimeSpan.FromSeconds(1));

        result.ShouldBeSameAs(error);
    }

    [Fact]
    public void Resolve_NullValue_IsAValue()
    {
        var registry = new RequestRegistry<int, string?>();
        var waiter = registry.Register(1);

        registry.Resolve(1, null).ShouldBeTrue();

        registry.Wait(1, waiter).ShouldBeNull();
    }

    [Fact]
    public void Fail_ThenWait_RethrowsTheSameException()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        var error = new IOException("peer said no");

        var failed = registry.Fail(1, error);

        failed.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        Should.Throw<IOException>(() => registry.Wait(1, waiter)).ShouldBeSameAs(error);
    }

    [Fact]
    public async Task Fail_ThenWaitAsync_RethrowsTheSameException()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        var error = new IOException("peer said no");

        registry.Fail(1, error);

        var thrown = await Should.ThrowAsync<IOException>(registry.WaitAsync(1, waiter).AsTask().WaitAsync(s_bound));
        thrown.ShouldBeSameAs(error);
    }

    [Fact]
    public void Fail_WithTimeoutException_RethrowsItAsTheFailure()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        var error = new TimeoutException("the peer's own timeout");

        registry.Fail(1, error);

        Should.Throw<TimeoutException>(() => registry.Wait(1, waiter, TimeSpan.FromSeconds(5))).ShouldBeSameAs(error);
    }

    [Fact]
    public void Fail_NotPending_ReturnsFalse()
    {
        var registry = new RequestRegistry<int, string>();
        registry.Register(1);
        registry.Resolve(1, "done");

        registry.Fail(1, new IOException()).ShouldBeFalse();
        registry.Fail(2, new IOException()).ShouldBeFalse();
    }

    [Fact]
    public void Fail_NullArguments_ThrowArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();
        registry.Register("a");

        Should.Throw<ArgumentNullException>(() => registry.Fail("a", null!));
        Should.Throw<ArgumentNullException>(() => registry.Fail(null!, new IOException()));
        registry.Contains("a").ShouldBeTrue();
    }

    // ---- FailAll ----

    [Fact]
    public void FailAll_WakesABlockedWaiter()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        var error = new IOException("reader crashed");
        Exception? caught = null;
        var thread = new Thread(() => caught = Record.Exception(() => registry.Wait(1, waiter)));
        thread.Start();

        var woken = registry.FailAll(error);

        thread.Join(s_bound).ShouldBeTrue();
        woken.ShouldBe(1);
        caught.ShouldBeSameAs(error);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task FailAll_ManyPending_FailsAllAndReturnsCount()
    {
        var registry = new RequestRegistry<int, string>();
        var waiters = Enumerable.Range(0, 5).Select(registry.Register).ToArray();
        var error = new IOException("gone");

        var woken = registry.FailAll(error);

        woken.ShouldBe(5);
        registry.Count.ShouldBe(0);
        for (var i = 0; i < waiters.Length; i++)
        {
            (await Should.ThrowAsync<IOException>(registry.WaitAsync(i, waiters[i]).AsTask().WaitAsync(s_bound))).ShouldBeSameAs(error);
        }
    }

    [Fact]
    public void FailAll_Empty_ReturnsZero()
    {
        var registry = new RequestRegistry<int, string>();

        registry.FailAll(new IOException()).ShouldBe(0);
    }

    [Fact]
    public void FailAll_DoesNotCountWaitersThatAlreadyEnded()
    {
        var registry = new RequestRegistry<int, string>();
        var answered = registry.Register(1);
        registry.Register(2);
        answered.TrySetResult("direct");

        var woken = registry.FailAll(new IOException());

        woken.ShouldBe(1);
        registry.Wait(1, answered).ShouldBe("direct");
    }

    [Fact]
    public void FailAll_KeepsRegistryOpen()
    {
        var registry = new RequestRegistry<int, string>();
        registry.Register(1);
        registry.FailAll(new IOException());

        var waiter = registry.Register(1);

        registry.IsClosed.ShouldBeFalse();
        registry.Resolve(1, "after").ShouldBeTrue();
        registry.Wait(1, waiter).ShouldBe("after");
    }

    [Fact]
    public void FailAll_NullException_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<int, string>();

        Should.Throw<ArgumentNullException>(() => registry.FailAll(null!));
    }

    // ---- Wait (sync) ----

    [Fact]
    public void Wait_Timeout_ThrowsTimeoutNamingKeyAndRemovesKey()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("req-7");

        var error = Should.Throw<TimeoutException>(() => registry.Wait("req-7", waiter, TimeSpan.FromMilliseconds(20)));

        error.Message.ShouldContain("req-7");
        registry.Contains("req-7").ShouldBeFalse();
        registry.Count.ShouldBe(0);
        waiter.IsCompleted.ShouldBeTrue();
    }

    [Fact]
    public void Wait_ZeroTimeoutWhilePending_ThrowsTimeoutAndRemovesKey()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        Should.Throw<TimeoutException>(() => registry.Wait(1, waiter, TimeSpan.Zero));

        registry.Contains(1).ShouldBeFalse();
    }

    [Fact]
    public void Wait_AfterTimeout_LateAnswerReturnsFalse()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        Should.Throw<TimeoutException>(() => registry.Wait(1, waiter, TimeSpan.Zero));

        registry.Resolve(1, 5).ShouldBeFalse();
        registry.Fail(1, new IOException()).ShouldBeFalse();
        waiter.TrySetResult(5).ShouldBeFalse();
    }

    [Fact]
    public void Wait_ResolvedFromAnotherThread_ReturnsValue()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var thread = new Thread(() => registry.Resolve(1, 99));

        thread.Start();
        var result = registry.Wait(1, waiter, Timeout.InfiniteTimeSpan);

        result.ShouldBe(99);
        thread.Join(s_bound).ShouldBeTrue();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_AlreadyAnswered_ReturnsEvenWithZeroTimeoutAndCancelledToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        registry.Resolve(1, 3);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        registry.Wait(1, waiter, TimeSpan.Zero, cts.Token).ShouldBe(3);
    }

    [Fact]
    public void Wait_Cancelled_ThrowsOperationCanceledAndRemovesKey()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        Exception? caught = null;
        using var started = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            started.Set();
            caught = Record.Exception(() => registry.Wait(1, waiter, cts.Token));
        });
        thread.Start();
        started.Wait(s_bound).ShouldBeTrue();

        cts.Cancel();

        thread.Join(s_bound).ShouldBeTrue();
        caught.ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        registry.Contains(1).ShouldBeFalse();
        registry.Resolve(1, 1).ShouldBeFalse();
    }

    [Fact]
    public void Wait_CancelledTokenWhilePending_ThrowsOperationCanceled()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Should.Throw<OperationCanceledException>(() => registry.Wait(1, waiter, TimeSpan.FromSeconds(5), cts.Token));

        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_InvalidArguments_Throw()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        Should.Throw<ArgumentOutOfRangeException>(() => registry.Wait("a", waiter, TimeSpan.FromMilliseconds(-2))).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => registry.Wait("a", waiter, TimeSpan.FromDays(365)));
        Should.Throw<ArgumentNullException>(() => registry.Wait("a", null!));
        Should.Throw<ArgumentNullException>(() => registry.Wait(null!, waiter));
        registry.Contains("a").ShouldBeTrue();
    }

    [Fact]
    public void Wait_FakeTimeProvider_TimesOutWhenTheFakeClockPassesTheTimeout()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);
        Exception? caught = null;
        var thread = new Thread(() => caught = Record.Exception(() => registry.Wait(1, waiter, TimeSpan.FromHours(1))));
        thread.Start();

        // The blocked thread creates its timer at some point we cannot observe: keep moving the clock until it fires.
        // Each step is smaller than the timeout, so a timer created before a step cannot fire in that same step.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!thread.Join(TimeSpan.Zero) && clock.Elapsed < s_bound)
        {
            time.Advance(TimeSpan.FromMinutes(30));
            Thread.Yield();
        }

        thread.Join(s_bound).ShouldBeTrue();
        caught.ShouldBeOfType<TimeoutException>();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_FakeTimeProvider_ResolvedBeforeTheFakeTimeout_ReturnsValue()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);
        var thread = new Thread(() => registry.Resolve(1, 8));

        thread.Start();
        var result = registry.Wait(1, waiter, TimeSpan.FromSeconds(1));

        result.ShouldBe(8);
        thread.Join(s_bound).ShouldBeTrue();
    }

    // ---- WaitAsync ----

    [Fact]
    public async Task WaitAsync_ResolvedLater_ReturnsValueAndRemovesKey()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter, TimeSpan.FromSeconds(30)).AsTask();

        registry.Resolve(1, "later");

        (await wait.WaitAsync(s_bound)).ShouldBe("later");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_AlreadyResolved_CompletesSynchronously()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);
        registry.Resolve(1, "now");

        var wait = registry.WaitAsync(1, waiter, TimeSpan.Zero).AsTask();

        wait.IsCompletedSuccessfully.ShouldBeTrue();
        (await wait).ShouldBe("now");
    }

    [Fact]
    public async Task WaitAsync_Timeout_ThrowsTimeoutNamingKeyAndRemovesKey()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<string, int>(time);
        var waiter = registry.Register("call-3");
        var wait = registry.WaitAsync("call-3", waiter, TimeSpan.FromSeconds(5)).AsTask();

        time.Advance(TimeSpan.FromSeconds(4));
        wait.IsCompleted.ShouldBeFalse();
        registry.Contains("call-3").ShouldBeTrue();
        time.Advance(TimeSpan.FromSeconds(1));

        var error = await Should.ThrowAsync<TimeoutException>(wait.WaitAsync(s_bound));
        error.Message.ShouldContain("call-3");
        registry.Contains("call-3").ShouldBeFalse();
        registry.Resolve("call-3", 1).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_InfiniteTimeout_NeverTimesOut()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter, Timeout.InfiniteTimeSpan).AsTask();

        time.Advance(TimeSpan.FromDays(1000));
        wait.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 4);

        (await wait.WaitAsync(s_bound)).ShouldBe(4);
    }

    [Fact]
    public async Task WaitAsync_NullTimeout_WaitsForever()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter).AsTask();

        time.Advance(TimeSpan.FromDays(1000));
        wait.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 4);

        (await wait.WaitAsync(s_bound)).ShouldBe(4);
    }

    [Fact]
    public async Task WaitAsync_Cancelled_ThrowsOperationCanceledAndRemovesKey()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        var wait = registry.WaitAsync(1, waiter, cts.Token).AsTask();

        await cts.CancelAsync();

        var error = await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(s_bound));
        error.CancellationToken.ShouldBe(cts.Token);
        registry.Contains(1).ShouldBeFalse();
        registry.Resolve(1, 1).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_AlreadyAnswered_ReturnsEvenWithCancelledToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        registry.Resolve(1, 6);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var result = await registry.WaitAsync(1, waiter, TimeSpan.Zero, cts.Token);

        result.ShouldBe(6);
    }

    [Fact]
    public void WaitAsync_InvalidArguments_ThrowAtTheCall()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        Should.Throw<ArgumentOutOfRangeException>(Call(() => registry.WaitAsync("a", waiter, TimeSpan.FromSeconds(-1)).AsTask()));
        Should.Throw<ArgumentNullException>(Call(() => registry.WaitAsync("a", null!).AsTask()));
        Should.Throw<ArgumentNullException>(Call(() => registry.WaitAsync(null!, waiter).AsTask()));
        registry.Contains("a").ShouldBeTrue();
    }

    [Fact]
    public async Task WaitAsync_ContinuationNeverRunsOnTheResolvingThread()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var release = new ManualResetEventSlim();
        var continuationThread = -1;
        var consumer = Task.Run(async () =>
        {
            var value = await registry.WaitAsync(1, waiter, TimeSpan.FromMinutes(1));
            continuationThread = Environment.CurrentManagedThreadId;
            // Had the continuation run inline, this would block the resolver, and Resolve would not return.
            release.Wait(s_bound);
            return value;
        });
        var resolverThread = -1;
        var resolved = false;
        var resolver = new Thread(() =>
        {
            resolverThread = Environment.CurrentManagedThreadId;
            resolved = registry.Resolve(1, 12);
        });

        resolver.Start();
        resolver.Join(s_bound).ShouldBeTrue();
        release.Set();

        resolved.ShouldBeTrue();
        (await consumer.WaitAsync(s_bound)).ShouldBe(12);
        continuationThread.ShouldNotBe(resolverThread);
    }

    // ---- A waiter completed directly ----

    [Fact]
    public void Wait_ValuePutDirectlyOnTheWaiter_ReturnsItAndRemovesKey()
    {
        var registry = new RequestRegistry<int, string>();
        var waiter = registry.Register(1);

        var set = waiter.TrySetResult("direct");

        set.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        registry.Resolve(1, "late").ShouldBeFalse();
        registry.Wait(1, waiter, TimeSpan.FromSeconds(1)).ShouldBe("direct");
        registry.Count.ShouldBe(0);
    }

    // ---- Pop ----

    [Fact]
    public void Pop_MatchingWaiter_RemovesKeyWithoutCompletingTheWaiter()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        var popped = registry.Pop(1, waiter);

        popped.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        waiter.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 1).ShouldBeFalse();
        registry.FailAll(new IOException()).ShouldBe(0);
        waiter.TrySetResult(2).ShouldBeTrue();
        registry.Wait(1, waiter).ShouldBe(2);
    }

    [Fact]
    public void Pop_KeyMapsToANewerWaiter_KeepsIt()
    {
        var registry = new RequestRegistry<int, int>();
        var old = registry.Register(1);
        Should.Throw<TimeoutException>(() => registry.Wait(1, old, TimeSpan.Zero));
        var newer = registry.Register(1);

        var popped = registry.Pop(1, old);

        popped.ShouldBeFalse();
        registry.Contains(1).ShouldBeTrue();
        registry.Resolve(1, 5).ShouldBeTrue();
        registry.Wait(1, newer).ShouldBe(5);
    }

    [Fact]
    public void Pop_NotPending_ReturnsFalse()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        registry.Resolve(1, 0);

        registry.Pop(1, waiter).ShouldBeFalse();
        registry.Pop(2, waiter).ShouldBeFalse();
    }

    [Fact]
    public void Pop_NullArguments_ThrowArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        Should.Throw<ArgumentNullException>(() => registry.Pop("a", null!));
        Should.Throw<ArgumentNullException>(() => registry.Pop(null!, waiter));
    }

    // ---- Request ----

    [Fact]
    public void Request_SendResolves_ReturnsValue()
    {
        var registry = new RequestRegistry<int, string>();

        var result = registry.Request(1, reply => reply.Resolve("pong"), TimeSpan.FromSeconds(1));

        result.ShouldBe("pong");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Request_SendHandsReplyToAnotherThread_ReturnsItsAnswer()
    {
        var registry = new RequestRegistry<int, string>();
        Thread? responder = null;

        var result = registry.Request(
            1,
            reply =>
            {
                registry.Contains(1).ShouldBeTrue();
                responder = new Thread(() => reply.Resolve("from responder"));
                responder.Start();
            },
            TimeSpan.FromSeconds(10));

        result.ShouldBe("from responder");
        responder!.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public void Request_SendThrows_RemovesKeyAndPropagates()
    {
        var registry = new RequestRegistry<int, string>();
        var error = new IOException("pipe closed");
        ReplyHandle<int, string>? handle = null;

        var thrown = Should.Throw<IOException>(() => registry.Request(1, reply =>
        {
            handle = reply;
            throw error;
        }));

        thrown.ShouldBeSameAs(error);
        registry.Contains(1).ShouldBeFalse();
        handle!.Value.Resolve("too late").ShouldBeFalse();
        handle.Value.Waiter.IsCompleted.ShouldBeTrue();
        handle.Value.Waiter.Task.Exception!.InnerException.ShouldBeSameAs(error);
        registry.Register(1).ShouldNotBeNull();
    }

    [Fact]
    public void Request_SendAnswersThenThrows_PropagatesTheSendFailure()
    {
        var registry = new RequestRegistry<int, string>();

        Should.Throw<IOException>(() => registry.Request(1, reply =>
        {
            reply.Resolve("answered");
            throw new IOException("but the send failed");
        }));

        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Request_NoAnswer_ThrowsTimeoutAndRemovesKey()
    {
        var registry = new RequestRegistry<string, int>();

        var error = Should.Throw<TimeoutException>(() => registry.Request("silent", _ => { }, TimeSpan.FromMilliseconds(10)));

        error.Message.ShouldContain("silent");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Request_FailedAnswer_RethrowsIt()
    {
        var registry = new RequestRegistry<int, string>();
        var error = new InvalidDataException("bad reply");

        Should.Throw<InvalidDataException>(() => registry.Request(1, reply => reply.Fail(error))).ShouldBeSameAs(error);
    }

    [Fact]
    public void Request_DuplicateKey_ThrowsWithoutCallingSend()
    {
        var registry = new RequestRegistry<int, string>();
        registry.Register(1);
        var sent = false;

        Should.Throw<InvalidOperationException>(() => registry.Request(1, _ => sent = true, TimeSpan.FromSeconds(10))).Message.ShouldContain("1");

        sent.ShouldBeFalse();
        registry.Count.ShouldBe(1);
    }

    [Fact]
    public void Request_InvalidArguments_ThrowBeforeRegistering()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.Request("a", null!));
        Should.Throw<ArgumentNullException>(() => registry.Request(null!, _ => { }));
        Should.Throw<ArgumentOutOfRangeException>(() => registry.Request("a", _ => { }, TimeSpan.FromSeconds(-1)));
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Request_AlreadyCancelledToken_ThrowsWithoutSending()
    {
        var registry = new RequestRegistry<int, int>();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var sent = false;

        Should.Throw<OperationCanceledException>(() => registry.Request(1, _ => sent = true, cts.Token));

        sent.ShouldBeFalse();
        registry.Count.ShouldBe(0);
    }

    // ---- RequestAsync ----

    [Fact]
    public async Task RequestAsync_SyncSendResolves_ReturnsValue()
    {
        var registry = new RequestRegistry<int, string>();

        var result = await registry.RequestAsync(1, reply => reply.Resolve("pong"), TimeSpan.FromSeconds(1)).AsTask().WaitAsync(s_bound);

        result.ShouldBe("pong");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_AsyncSendAnsweredLater_ReturnsValue()
    {
        var registry = new RequestRegistry<int, string>();
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var request = registry.RequestAsync(
            1,
            async reply =>
            {
                await Task.Yield();
                sent.SetResult();
            },
            TimeSpan.FromSeconds(30)).AsTask();
        await sent.Task.WaitAsync(s_bound);
        registry.Resolve(1, "answer").ShouldBeTrue();

        (await request.WaitAsync(s_bound)).ShouldBe("answer");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_AsyncSendFails_RemovesKeyAndPropagates()
    {
        var registry = new RequestRegistry<int, string>();
        var error = new IOException("write failed");
        ReplyHandle<int, string>? handle = null;

        var request = registry.RequestAsync(1, async reply =>
        {
            handle = reply;
            await Task.Yield();
            throw error;
        }).AsTask();

        (await Should.ThrowAsync<IOException>(request.WaitAsync(s_bound))).ShouldBeSameAs(error);
        registry.Contains(1).ShouldBeFalse();
        handle!.Value.Resolve("late").ShouldBeFalse();
    }

    [Fact]
    public async Task RequestAsync_SyncSendThrows_RemovesKeyAndFailsTheTask()
    {
        var registry = new RequestRegistry<int, string>();
        var error = new IOException("write failed");
        Action<ReplyHandle<int, string>> send = _ => throw error;

        var request = registry.RequestAsync(1, send).AsTask();

        (await Should.ThrowAsync<IOException>(request.WaitAsync(s_bound))).ShouldBeSameAs(error);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_NoAnswer_ThrowsTimeoutAfterFakeTimeout()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<string, int>(time);

        var request = registry.RequestAsync("q", _ => { }, TimeSpan.FromSeconds(2)).AsTask();
        time.Advance(TimeSpan.FromSeconds(2));

        (await Should.ThrowAsync<TimeoutException>(request.WaitAsync(s_bound))).Message.ShouldContain("q");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_Cancelled_ThrowsOperationCanceledAndRemovesKey()
    {
        var registry = new RequestRegistry<int, int>();
        using var cts = new CancellationTokenSource();

        var request = registry.RequestAsync(1, async _ => await Task.Yield(), cts.Token).AsTask();
        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(request.WaitAsync(s_bound));
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_AlreadyCancelledToken_DoesNotSend()
    {
        var registry = new RequestRegistry<int, int>();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var sent = false;

        var request = registry.RequestAsync(1, _ => sent = true, TimeSpan.FromSeconds(1), cts.Token).AsTask();

        await Should.ThrowAsync<OperationCanceledException>(request.WaitAsync(s_bound));
        sent.ShouldBeFalse();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_DuplicateKey_FailsTheTaskWithoutSending()
    {
        var registry = new RequestRegistry<int, int>();
        registry.Register(1);
        var sent = false;

        var request = registry.RequestAsync(1, async _ =>
        {
            sent = true;
            await Task.Yield();
        }).AsTask();

        await Should.ThrowAsync<InvalidOperationException>(request.WaitAsync(s_bound));
        sent.ShouldBeFalse();
        registry.Count.ShouldBe(1);
    }

    [Fact]
    public void RequestAsync_InvalidArguments_ThrowAtTheCall()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(Call(() => registry.RequestAsync("a", (Action<ReplyHandle<string, int>>)null!).AsTask()));
        Should.Throw<ArgumentNullException>(Call(() => registry.RequestAsync("a", (Func<ReplyHandle<string, int>, Task>)null!).AsTask()));
        Should.Throw<ArgumentNullException>(Call(() => registry.RequestAsync(null!, _ => { }).AsTask()));
        Should.Throw<ArgumentOutOfRangeException>(Call(() => registry.RequestAsync("a", _ => { }, TimeSpan.FromSeconds(-1)).AsTask()));
        registry.Count.ShouldBe(0);
    }

    // ---- Close ----

    [Fact]
    public void Close_WithException_FailsPendingWithThatException()
    {
        var registry = new RequestRegistry<int, int>();
        var first = registry.Register(1);
        var second = registry.Register(2);
        var error = new IOException("service crashed");

        var closed = registry.Close(error);

        closed.ShouldBeTrue();
        registry.IsClosed.ShouldBeTrue();
        registry.Count.ShouldBe(0);
        Should.Throw<IOException>(() => registry.Wait(1, first)).ShouldBeSameAs(error);
        Should.Throw<IOException>(() => registry.Wait(2, second)).ShouldBeSameAs(error);
    }

    [Fact]
    public async Task Close_WithoutException_FailsPendingWithClosedResource()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter, TimeSpan.FromMinutes(1)).AsTask();

        registry.Close();

        await Should.ThrowAsync<ClosedResourceException>(wait.WaitAsync(s_bound));
    }

    [Fact]
    public void Close_ThenRegister_ThrowsClosedResourceWithTheCause()
    {
        var registry = new RequestRegistry<int, int>();
        var error = new IOException("service crashed");
        registry.Close(error);

        Should.Throw<ClosedResourceException>(() => registry.Register(1)).InnerException.ShouldBeSameAs(error);
        Should.Throw<ClosedResourceException>(() => registry.Reply(1)).InnerException.ShouldBeSameAs(error);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Close_ThenRequest_FailsAtOnceWithoutSending()
    {
        var registry = new RequestRegistry<int, int>();
        registry.Close();
        var sent = false;

        var error = Should.Throw<ClosedResourceException>(() => registry.Request(1, _ => sent = true, Timeout.InfiniteTimeSpan));

        error.InnerException.ShouldBeNull();
        sent.ShouldBeFalse();
    }

    [Fact]
    public async Task Close_ThenRequestAsync_FailsAtOnceWithoutSending()
    {
        var registry = new RequestRegistry<int, int>();
        registry.Close(new IOException());
        var sent = false;

        var request = registry.RequestAsync(1, async _ =>
        {
            sent = true;
            await Task.Yield();
        }).AsTask();

        request.IsFaulted.ShouldBeTrue();
        await Should.ThrowAsync<ClosedResourceException>(request);
        sent.ShouldBeFalse();
    }

    [Fact]
    public void Close_Twice_SecondReturnsFalseAndKeepsTheFirstCause()
    {
        var registry = new RequestRegistry<int, int>();
        var first = new IOException("first");

        registry.Close(first).ShouldBeTrue();
        registry.Close(new IOException("second")).ShouldBeFalse();

        Should.Throw<ClosedResourceException>(() => registry.Register(1)).InnerException.ShouldBeSameAs(first);
    }

    [Fact]
    public void Close_ThenAnswers_ReturnFalse()
    {
        var registry = new RequestRegistry<int, int>();
        registry.Register(1);
        registry.Close();

        registry.Resolve(1, 1).ShouldBeFalse();
        registry.Fail(1, new IOException()).ShouldBeFalse();
        registry.FailAll(new IOException()).ShouldBe(0);
    }

    [Fact]
    public void Close_WakesABlockedWaiter()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        Exception? caught = null;
        var thread = new Thread(() => caught = Record.Exception(() => registry.Wait(1, waiter)));
        thread.Start();

        registry.Close();

        thread.Join(s_bound).ShouldBeTrue();
        caught.ShouldBeOfType<ClosedResourceException>();
    }

    [Fact]
    public void Close_RacingRegistrations_LeavesNoRequestPending()
    {
        for (var round = 0; round < 50; round++)
        {
            var registry = new RequestRegistry<int, int>();
            var error = new IOException("closed");
            var registered = new System.Collections.Concurrent.ConcurrentBag<RequestWaiter<int>>();
            var refusals = new System.Collections.Concurrent.ConcurrentBag<ClosedResourceException>();
            using var go = new Barrier(3);
            var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
            {
                go.SignalAndWait();
                for (var i = 0; ; i++)
                {
                    try
                    {
                        registered.Add(registry.Register((t * 1_000_000) + i));
                    }
                    catch (ClosedResourceException closed)
                    {
                        refusals.Add(closed);
                        return;
                    }
                }
            })).ToArray();
            foreach (var thread in threads)
            {
                thread.Start();
            }

            go.SignalAndWait();
            registry.Close(error);

            foreach (var thread in threads)
            {
                thread.Join(s_bound).ShouldBeTrue();
            }

            registry.Count.ShouldBe(0);
            refusals.Count.ShouldBe(2);
            refusals.ShouldAllBe(closed => closed.InnerException == error);
            registered.ShouldAllBe(w => w.Task.IsFaulted && w.Task.Exception!.InnerException == error);
        }
    }

    /// <summary>Calls an async member for its synchronous argument checks, dropping the task it would return.</summary>
    private static Action Call<T>(Func<Task<T>> call) => () => call();

    [Fact]
    public async Task Cancellation_IsAPlainOperationCanceledWithTheCallersToken_SyncAndAsync()
    {
        var registry = new RequestRegistry<int, string>();
        using var cts = new CancellationTokenSource();
        var asyncWaiter = registry.Register(1);
        var pending = registry.WaitAsync(1, asyncWaiter, TimeSpan.FromSeconds(30), cts.Token).AsTask();
        var syncWaiter = registry.Register(2);
        Exception? syncError = null;
        var sync = new Thread(() =>
        {
            try
            {
                registry.Wait(2, syncWaiter, TimeSpan.FromSeconds(30), cts.Token);
            }
            catch (Exception ex)
            {
                syncError = ex;
            }
        });
        sync.Start();

        await cts.CancelAsync();

        var asyncError = await Record(pending);
        sync.Join(TimeSpan.FromSeconds(10)).ShouldBeTrue();
        foreach (var error in new[] { asyncError, syncError, await Record(registry.RequestAsync(3, _ => { }, TimeSpan.FromSeconds(1), cts.Token).AsTask()) })
        {
            error.ShouldNotBeNull().GetType().ShouldBe(typeof(OperationCanceledException));
            ((OperationCanceledException)error).CancellationToken.ShouldBe(cts.Token);
        }

        registry.Count.ShouldBe(0);

        static async Task<Exception?> Record(Task task)
        {
            try
            {
                await task.WaitAsync(TimeSpan.FromSeconds(10));
                return null;
            }
            catch (Exception ex)
            {
                return ex;
            }
        }
    }

    [Fact]
    public void FailedSendsAndFailAll_LeaveNoUnobservedTaskException()
    {
        UnobservedTaskExceptions.Collect(Fill).ShouldNotContain(x => x.Message.StartsWith("registry-probe", StringComparison.Ordinal));

        static void Fill()
        {
            var registry = new RequestRegistry<int, int>();
            for (var i = 0; i < 10; i++)
            {
                Should.Throw<IOException>(() => registry.Request(i, _ => throw new IOException("registry-probe send"), TimeSpan.FromSeconds(1)));
                registry.Register(100 + i);
            }

            registry.FailAll(new IOException("registry-probe fail-all")).ShouldBe(10);
        }
    }
}
