using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

public class ReplyHandleTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Reply_RegistersTheKeyAndBindsTheHandle()
    {
        var registry = new RequestRegistry<string, int>();

        var handle = registry.Reply("k");

        handle.Key.ShouldBe("k");
        handle.Waiter.IsCompleted.ShouldBeFalse();
        registry.Contains("k").ShouldBeTrue();
    }

    [Fact]
    public void Reply_KeyAlreadyPending_ThrowsInvalidOperationNamingKey()
    {
        var registry = new RequestRegistry<string, int>();
        registry.Register("k-9");

        Should.Throw<InvalidOperationException>(() => registry.Reply("k-9")).Message.ShouldContain("k-9");
    }

    [Fact]
    public void Resolve_ThenWait_ReturnsValueAndRemovesKey()
    {
        var registry = new RequestRegistry<int, string>();
        var handle = registry.Reply(1);

        var resolved = handle.Resolve("done");

        resolved.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        handle.Wait(TimeSpan.FromSeconds(1)).ShouldBe("done");
        handle.Resolve("again").ShouldBeFalse();
    }

    [Fact]
    public async Task Resolve_ThenWaitAsync_ReturnsValue()
    {
        var registry = new RequestRegistry<int, string>();
        var handle = registry.Reply(1);
        var wait = handle.WaitAsync(TimeSpan.FromMinutes(1)).AsTask();

        handle.Resolve("done");

        (await wait.WaitAsync(s_bound)).ShouldBe("done");
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Fail_ThenWait_RethrowsTheSameException()
    {
        var registry = new RequestRegistry<int, string>();
        var handle = registry.Reply(1);
        var error = new IOException("no");

        handle.Fail(error).ShouldBeTrue();

        Should.Throw<IOException>(() => handle.Wait()).ShouldBeSameAs(error);
        handle.Fail(error).ShouldBeFalse();
    }

    [Fact]
    public void Fail_NullException_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<int, string>();
        var handle = registry.Reply(1);

        Should.Throw<ArgumentNullException>(() => handle.Fail(null!));
        registry.Contains(1).ShouldBeTrue();
    }

    [Fact]
    public void Pop_RemovesTheRequestWithoutCompletingIt()
    {
        var registry = new RequestRegistry<int, string>();
        var handle = registry.Reply(1);

        var popped = handle.Pop();

        popped.ShouldBeTrue();
        registry.Contains(1).ShouldBeFalse();
        handle.Waiter.IsCompleted.ShouldBeFalse();
        handle.Pop().ShouldBeFalse();
        handle.Resolve("late").ShouldBeFalse();
    }

    [Fact]
    public void Resolve_AfterTimeoutAndTheKeyRegisteredAgain_LeavesTheNewRequestAlone()
    {
        var registry = new RequestRegistry<int, string>();
        var old = registry.Reply(1);
        Should.Throw<TimeoutException>(() => old.Wait(TimeSpan.Zero));
        var newer = registry.Register(1);

        var resolved = old.Resolve("stale");
        var failed = old.Fail(new IOException("stale"));
        var popped = old.Pop();

        resolved.ShouldBeFalse();
        failed.ShouldBeFalse();
        popped.ShouldBeFalse();
        newer.IsCompleted.ShouldBeFalse();
        registry.Contains(1).ShouldBeTrue();
        registry.Resolve(1, "fresh").ShouldBeTrue();
        registry.Wait(1, newer).ShouldBe("fresh");
    }

    [Fact]
    public void Resolve_AfterPopAndTheKeyRegisteredAgain_LeavesTheNewRequestAlone()
    {
        var registry = new RequestRegistry<int, string>();
        var old = registry.Reply(1);
        old.Pop();
        var newer = registry.Reply(1);

        old.Resolve("stale").ShouldBeFalse();
        old.Fail(new IOException()).ShouldBeFalse();

        newer.Waiter.IsCompleted.ShouldBeFalse();
        newer.Resolve("fresh").ShouldBeTrue();
        newer.Wait().ShouldBe("fresh");
    }

    [Fact]
    public async Task WaitAsync_Timeout_ThrowsTimeoutAndRemovesKey()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<string, int>(time);
        var handle = registry.Reply("slow");
        var wait = handle.WaitAsync(TimeSpan.FromSeconds(3)).AsTask();

        time.Advance(TimeSpan.FromSeconds(3));

        (await Should.ThrowAsync<TimeoutException>(wait.WaitAsync(s_bound))).Message.ShouldContain("slow");
        registry.Contains("slow").ShouldBeFalse();
        handle.Resolve(1).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_Cancelled_ThrowsOperationCanceled()
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        using var cts = new CancellationTokenSource();
        var wait = handle.WaitAsync(cts.Token).AsTask();

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(s_bound));
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_Cancelled_ThrowsOperationCanceled()
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Should.Throw<OperationCanceledException>(() => handle.Wait(cts.Token));
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Resolve_FromAnotherThread_WakesABlockedWait()
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        var resolved = false;
        var responder = new Thread(() => resolved = handle.Resolve(21));

        responder.Start();
        var result = handle.Wait(Timeout.InfiniteTimeSpan);

        result.ShouldBe(21);
        responder.Join(s_bound).ShouldBeTrue();
        resolved.ShouldBeTrue();
    }
}
