namespace MicroIo.Tests;

public class RequestWaiterTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task TrySetResult_Twice_OnlyTheFirstWins()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        var first = waiter.TrySetResult(1);
        var second = waiter.TrySetResult(2);

        first.ShouldBeTrue();
        second.ShouldBeFalse();
        waiter.IsCompleted.ShouldBeTrue();
        (await waiter.Task.WaitAsync(s_bound)).ShouldBe(1);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void TrySetException_ThenWait_RethrowsItAndRemovesKey()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var error = new IOException("direct");

        waiter.TrySetException(error).ShouldBeTrue();

        registry.Contains(1).ShouldBeFalse();
        Should.Throw<IOException>(() => registry.Wait(1, waiter)).ShouldBeSameAs(error);
    }

    [Fact]
    public void TrySetException_Null_ThrowsArgumentNull()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        Should.Throw<ArgumentNullException>(() => waiter.TrySetException(null!));
        waiter.IsCompleted.ShouldBeFalse();
        registry.Contains(1).ShouldBeTrue();
    }

    [Fact]
    public async Task TrySetCanceled_ThenWaitAsync_ThrowsOperationCanceledWithTheToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        waiter.TrySetCanceled(cts.Token).ShouldBeTrue();

        registry.Contains(1).ShouldBeFalse();
        var error = await Should.ThrowAsync<OperationCanceledException>(registry.WaitAsync(1, waiter).AsTask().WaitAsync(s_bound));
        error.CancellationToken.ShouldBe(cts.Token);
        waiter.TrySetResult(1).ShouldBeFalse();
    }

    [Fact]
    public async Task TrySetResult_AfterResolve_ReturnsFalse()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        registry.Resolve(1, 5);

        waiter.TrySetResult(6).ShouldBeFalse();
        waiter.TrySetException(new IOException()).ShouldBeFalse();
        waiter.TrySetCanceled().ShouldBeFalse();
        (await waiter.Task.WaitAsync(s_bound)).ShouldBe(5);
    }

    [Fact]
    public void TrySetResult_AfterTheKeyWasRegisteredAgain_LeavesTheNewRequestPending()
    {
        var registry = new RequestRegistry<int, int>();
        var old = registry.Register(1);
        registry.Pop(1, old);
        var newer = registry.Register(1);

        old.TrySetResult(1).ShouldBeTrue();

        registry.Contains(1).ShouldBeTrue();
        newer.IsCompleted.ShouldBeFalse();
    }

    [Theory]
    [InlineData("waiter")]
    [InlineData("resolve")]
    [InlineData("fail")]
    [InlineData("fail-all")]
    [InlineData("close")]
    [InlineData("handle")]
    public async Task Completion_ByAnyPath_NeverRunsTheContinuationOnTheCompletingThread(string path)
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        // Registered before the completion and asking to run synchronously: only the waiter can move it off the completer.
        var continuationThread = handle.Waiter.Task.ContinueWith(
            _ => Environment.CurrentManagedThreadId,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        var completingThread = -1;
        var completer = new Thread(() =>
        {
            completingThread = Environment.CurrentManagedThreadId;
            _ = path switch
            {
                "waiter" => handle.Waiter.TrySetResult(1),
                "resolve" => registry.Resolve(1, 1),
                "fail" => registry.Fail(1, new IOException()),
                "fail-all" => registry.FailAll(new IOException()) == 1,
                "close" => registry.Close(),
                _ => handle.Resolve(1),
            };
        });

        completer.Start();
        completer.Join(s_bound).ShouldBeTrue();

        handle.Waiter.IsCompleted.ShouldBeTrue();
        (await continuationThread.WaitAsync(s_bound)).ShouldNotBe(completingThread);
    }
}
