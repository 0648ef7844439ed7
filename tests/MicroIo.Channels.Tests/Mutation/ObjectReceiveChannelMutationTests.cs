namespace MicroIo.Tests.Mutation;

/// <summary>Cancellation of receives: which check comes first, and which token a cancellation reports (kills Stryker survivors in ObjectReceiveChannel, ChannelCore and AmbientToken).</summary>
public sealed class ObjectReceiveChannelMutationTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task GetAsyncEnumerator_CancelledAfterFirstItem_StopsAndLeavesTheRestQueued()
    {
        var (tx, rx) = ObjectChannel.Create<int>();
        tx.Send(1);
        tx.Send(2);
        tx.Send(3);
        using var cts = new CancellationTokenSource();
        var received = new List<int>();

        var enumerate = Task.Run(async () =>
        {
            await foreach (var item in rx.WithCancellation(cts.Token))
            {
                received.Add(item);
                await cts.CancelAsync();
            }
        });

        await Should.ThrowAsync<OperationCanceledException>(enumerate.WaitAsync(Bound));
        received.ShouldBe([1]);
        rx.Stats.Queued.ShouldBe(2);
    }

    [Fact]
    public async Task WaitToReceiveAsync_CancelledWhileAnotherWaitsOnSingleReceiver_ThrowsCancellationNotMisuse()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { SingleReceiver = true });
        var first = rx.WaitToReceiveAsync().AsTask();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var second = rx.WaitToReceiveAsync(cts.Token).AsTask();

        (await Should.ThrowAsync<OperationCanceledException>(second.WaitAsync(Bound))).CancellationToken.ShouldBe(cts.Token);
        first.IsCompleted.ShouldBeFalse();
        tx.Send(1);
        (await first.WaitAsync(Bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task ReceiveAsync_AmbientScopeCancelledWhileCallerTokenLive_ReportsTheScopesToken()
    {
        var (_, rx) = ObjectChannel.Create<int>();
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Exception? caught = null;

        var run = scope.RunAsync(async _ =>
        {
            var receive = rx.ReceiveAsync(cts.Token).AsTask();
            waiting.SetResult();
            try
            {
                await receive;
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        });
        await waiting.Task.WaitAsync(Bound);
        scope.Cancel();
        await run.WaitAsync(Bound);

        var cancelled = caught.ShouldBeAssignableTo<OperationCanceledException>()!;
        cancelled.CancellationToken.ShouldBe(scope.Token);
        cancelled.CancellationToken.ShouldNotBe(cts.Token);
    }
}
