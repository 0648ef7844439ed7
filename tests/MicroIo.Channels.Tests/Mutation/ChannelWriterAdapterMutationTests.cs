namespace MicroIo.Tests.Mutation;

/// <summary>The <c>AsChannelWriter()</c> adapter's contract for failures and cancellation (kills Stryker survivors in WriterAdapter and ChannelCore.SendAsync).</summary>
public sealed class ChannelWriterAdapterMutationTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task WaitToWriteAsync_AfterFail_ReturnsFalse()
    {
        var (tx, _) = ObjectChannel.Create<int>();
        var writer = tx.AsChannelWriter();

        tx.Fail(new IOException("broken"));

        (await writer.WaitToWriteAsync().AsTask().WaitAsync(Bound)).ShouldBeFalse();
    }

    [Fact]
    public async Task WaitToWriteAsync_CancelledToken_ThrowsCancellation()
    {
        var (tx, _) = ObjectChannel.Create<int>();
        var writer = tx.AsChannelWriter();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var wait = writer.WaitToWriteAsync(cts.Token).AsTask();

        (await Should.ThrowAsync<OperationCanceledException>(wait.WaitAsync(Bound))).CancellationToken.ShouldBe(cts.Token);
    }

    [Fact]
    public async Task WriteAsync_CancelledToken_ThrowsAndQueuesNothing()
    {
        var (tx, rx) = ObjectChannel.Create<int>();
        var writer = tx.AsChannelWriter();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var write = writer.WriteAsync(1, cts.Token).AsTask();

        await Should.ThrowAsync<OperationCanceledException>(write.WaitAsync(Bound));
        rx.TryReceive(out _).ShouldBeFalse();
        rx.Stats.Sent.ShouldBe(0);
    }

    [Fact]
    public async Task WriteAsync_InCancelledScope_ThrowsAndQueuesNothing()
    {
        var (tx, rx) = ObjectChannel.Create<int>();
        var writer = tx.AsChannelWriter();
        var scope = new CancelScope();
        scope.Cancel();
        Exception? caught = null;

        await scope.RunAsync(async _ =>
        {
            try
            {
                await writer.WriteAsync(1);
            }
            catch (Exception ex)
            {
                caught = ex;
            }
        }).WaitAsync(Bound);

        caught.ShouldBeAssignableTo<OperationCanceledException>();
        rx.TryReceive(out _).ShouldBeFalse();
        rx.Stats.Sent.ShouldBe(0);
    }
}
