// The calls below must throw at the call, before any ValueTask exists; the tests never keep one.
#pragma warning disable CA2012

namespace MicroIo.Tests.BadInput;

/// <summary>Gives the registry, its reply handles and its waiters bad input: each call throws the documented exception and the registry stays usable.</summary>
public class RegistryBadInputTests
{
    public static TheoryData<TimeSpan> BadTimeouts => new()
    {
        TimeSpan.FromMilliseconds(-2),
        TimeSpan.FromTicks(-1),
        TimeSpan.MinValue,
        TimeSpan.FromMilliseconds((double)int.MaxValue + 1),
        TimeSpan.MaxValue,
    };

    [Fact]
    public void Contains_NullKey_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.Contains(null!)).ParamName.ShouldBe("key");

        registry.Contains("a").ShouldBeFalse();
    }

    [Fact]
    public void ConstructorWithComparer_NullTimeProvider_ThrowsArgumentNull()
    {
        Should.Throw<ArgumentNullException>(() => new RequestRegistry<string, int>(StringComparer.Ordinal, null!)).ParamName.ShouldBe("timeProvider");
    }

    [Fact]
    public void ConstructorWithComparer_NullComparer_UsesDefault()
    {
        var registry = new RequestRegistry<string, int>(null, TimeProvider.System);

        registry.Register("a");

        registry.Contains("a").ShouldBeTrue();
        registry.Contains("A").ShouldBeFalse();
    }

    [Theory]
    [MemberData(nameof(BadTimeouts))]
    public async Task EveryTimedMember_BadTimeout_ThrowsAtTheCallAndLeavesTheRequestPending(TimeSpan timeout)
    {
        var registry = new RequestRegistry<string, int>();
        var reply = registry.Reply("a");
        var sent = false;

        Should.Throw<ArgumentOutOfRangeException>(() => registry.Wait("a", reply.Waiter, timeout)).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => registry.WaitAsync("a", reply.Waiter, timeout).AsTask()).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => reply.Wait(timeout)).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => reply.WaitAsync(timeout).AsTask()).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => registry.Request("b", _ => sent = true, timeout)).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => registry.RequestAsync("b", _ => sent = true, timeout).AsTask()).ParamName.ShouldBe("timeout");
        Should.Throw<ArgumentOutOfRangeException>(() => registry.RequestAsync("b", _ => { sent = true; return Task.CompletedTask; }, timeout).AsTask()).ParamName.ShouldBe("timeout");

        sent.ShouldBeFalse();
        registry.PendingKeys.ShouldBe(["a"]);
        reply.Resolve(7).ShouldBeTrue();
        (await reply.WaitAsync(TimeSpan.Zero)).ShouldBe(7);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_NullArguments_ThrowAtTheCallWithoutRegistering()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.RequestAsync(null!, _ => { }).AsTask()).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.RequestAsync("a", (Action<ReplyHandle<string, int>>)null!).AsTask()).ParamName.ShouldBe("send");
        Should.Throw<ArgumentNullException>(() => registry.RequestAsync("a", (Func<ReplyHandle<string, int>, Task>)null!).AsTask()).ParamName.ShouldBe("send");
        Should.Throw<ArgumentNullException>(() => registry.RequestAsync(null!, _ => Task.CompletedTask, CancellationToken.None).AsTask()).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.RequestAsync(null!, _ => { }, CancellationToken.None).AsTask()).ParamName.ShouldBe("key");

        registry.Count.ShouldBe(0);
        (await registry.RequestAsync("a", reply => reply.Resolve(1), CancellationToken.None)).ShouldBe(1);
        (await registry.RequestAsync("a", reply => { reply.Resolve(2); return Task.CompletedTask; }, CancellationToken.None)).ShouldBe(2);
    }

    [Fact]
    public void WaitAndWaitAsyncTokenOverloads_NullArguments_ThrowArgumentNull()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        Should.Throw<ArgumentNullException>(() => registry.Wait(null!, waiter, CancellationToken.None)).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.Wait("a", null!, CancellationToken.None)).ParamName.ShouldBe("waiter");
        Should.Throw<ArgumentNullException>(() => registry.WaitAsync(null!, waiter, CancellationToken.None).AsTask()).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.WaitAsync("a", null!, CancellationToken.None).AsTask()).ParamName.ShouldBe("waiter");

        registry.Contains("a").ShouldBeTrue();
    }

    [Fact]
    public void ReplyHandleFail_Null_ThrowsAndTheRequestStaysPending()
    {
        var registry = new RequestRegistry<string, int>();
        var reply = registry.Reply("a");

        Should.Throw<ArgumentNullException>(() => reply.Fail(null!)).ParamName.ShouldBe("exception");

        reply.Waiter.IsCompleted.ShouldBeFalse();
        registry.Contains("a").ShouldBeTrue();
        reply.Fail(new IOException("real")).ShouldBeTrue();
        Should.Throw<IOException>(() => reply.Wait());
    }

    [Fact]
    public void ReplyHandle_DoubleAnswers_OnlyTheFirstCounts()
    {
        var registry = new RequestRegistry<string, int>();
        var reply = registry.Reply("a");

        reply.Resolve(1).ShouldBeTrue();
        reply.Resolve(2).ShouldBeFalse();
        reply.Fail(new IOException()).ShouldBeFalse();
        reply.Pop().ShouldBeFalse();

        reply.Wait(TimeSpan.Zero).ShouldBe(1);
        reply.Key.ShouldBe("a");
    }

    [Fact]
    public void ReplyHandle_AfterClose_AnswersReturnFalseAndWaitThrowsClosed()
    {
        var registry = new RequestRegistry<string, int>();
        var reply = registry.Reply("a");

        registry.Close().ShouldBeTrue();

        reply.Resolve(1).ShouldBeFalse();
        reply.Fail(new IOException()).ShouldBeFalse();
        Should.Throw<ClosedResourceException>(() => reply.Wait(CancellationToken.None));
        Should.Throw<ClosedResourceException>(() => registry.Reply("a"));
        registry.Resolve("a", 1).ShouldBeFalse();
        registry.Fail("a", new IOException()).ShouldBeFalse();
        registry.FailAll(new IOException()).ShouldBe(0);
        registry.Close(new IOException()).ShouldBeFalse();
        registry.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public async Task ReplyHandleWaitAsync_TokenOverload_CancelledRemovesTheRequest()
    {
        var registry = new RequestRegistry<string, int>();
        var reply = registry.Reply("a");
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(() => reply.WaitAsync(cts.Token).AsTask());

        registry.Count.ShouldBe(0);
        reply.Waiter.Task.IsCanceled.ShouldBeTrue();
        registry.Register("a").ShouldNotBeSameAs(reply.Waiter);
    }

    [Fact]
    public void RequestWaiterTrySetException_Null_ThrowsAndTheWaiterStaysPending()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        Should.Throw<ArgumentNullException>(() => waiter.TrySetException(null!)).ParamName.ShouldBe("exception");

        waiter.IsCompleted.ShouldBeFalse();
        registry.Contains("a").ShouldBeTrue();
    }

    [Fact]
    public void RequestWaiter_DoubleCompletions_OnlyTheFirstWinsAndTheKeyLeaves()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");

        waiter.TrySetCanceled().ShouldBeTrue();
        waiter.TrySetResult(1).ShouldBeFalse();
        waiter.TrySetException(new IOException()).ShouldBeFalse();
        waiter.TrySetCanceled().ShouldBeFalse();

        registry.Contains("a").ShouldBeFalse();
        waiter.Task.IsCanceled.ShouldBeTrue();
    }

    [Fact]
    public void RequestWaiterTrySetResult_AfterKeyWasReused_LeavesTheNewRequestPending()
    {
        var registry = new RequestRegistry<string, int>();
        var old = registry.Register("a");
        registry.Pop("a", old).ShouldBeTrue();
        var newer = registry.Register("a");

        old.TrySetResult(1).ShouldBeTrue();
        old.TrySetException(new IOException()).ShouldBeFalse();

        registry.Contains("a").ShouldBeTrue();
        newer.IsCompleted.ShouldBeFalse();
    }

    [Fact]
    public void RequestWaiterTrySetException_CompletesAndRemovesKey()
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register("a");
        var failure = new IOException();

        waiter.TrySetException(failure).ShouldBeTrue();

        registry.Contains("a").ShouldBeFalse();
        Should.Throw<IOException>(() => registry.Wait("a", waiter)).ShouldBeSameAs(failure);
    }

    [Fact]
    public void Request_SendThrowsAfterHandingReplyOn_ResponderCannotAnswerAnymore()
    {
        var registry = new RequestRegistry<string, int>();
        ReplyHandle<string, int>? handed = null;
        var failure = new IOException("send");

        Should.Throw<IOException>(() => registry.Request("a", reply =>
        {
            handed = reply;
            throw failure;
        })).ShouldBeSameAs(failure);

        handed.ShouldNotBeNull();
        handed.Value.Resolve(1).ShouldBeFalse();
        handed.Value.Waiter.Task.Exception!.InnerException.ShouldBeSameAs(failure);
        registry.Count.ShouldBe(0);
        registry.Request("a", reply => reply.Resolve(5)).ShouldBe(5);
    }

    [Fact]
    public async Task RequestAsync_AsyncSendThrowsSynchronously_FailsTheTaskAndFreesTheKey()
    {
        var registry = new RequestRegistry<string, int>();
        var failure = new IOException("send");

        var ex = await Should.ThrowAsync<IOException>(() => registry.RequestAsync("a", (Func<ReplyHandle<string, int>, Task>)(_ => throw failure)).AsTask());

        ex.ShouldBeSameAs(failure);
        registry.Count.ShouldBe(0);
        (await registry.RequestAsync("a", reply => { reply.Resolve(3); return Task.CompletedTask; })).ShouldBe(3);
    }

    [Fact]
    public async Task RequestAsync_ClosedRegistry_FailsTheTaskWithClosedResourceAndInner()
    {
        var registry = new RequestRegistry<string, int>();
        var cause = new IOException("gone");
        registry.Close(cause);

        var ex = await Should.ThrowAsync<ClosedResourceException>(() => registry.RequestAsync("a", _ => { }).AsTask());
        var ex2 = await Should.ThrowAsync<ClosedResourceException>(() => registry.RequestAsync("a", _ => Task.CompletedTask).AsTask());

        ex.InnerException.ShouldBeSameAs(cause);
        ex2.InnerException.ShouldBeSameAs(cause);
    }
}
