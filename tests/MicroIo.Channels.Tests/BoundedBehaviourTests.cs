namespace MicroIo.Tests;

public class BoundedBehaviourTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Send_OnFullChannel_ReturnsFalseWithoutBlockingOrCounting()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 2 });

        tx.Send(1).ShouldBeTrue();
        tx.Send(2).ShouldBeTrue();
        tx.Send(3).ShouldBeFalse();

        tx.Stats.ShouldBe(new ChannelStats(2, 0, 0, 2, false));
    }

    [Fact]
    public async Task SendAsync_WaitsForRoom()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        tx.Send(1);

        var send = tx.SendAsync(2).AsTask();
        send.IsCompleted.ShouldBeFalse();
        (await rx.ReceiveAsync()).ShouldBe(1);

        (await send.WaitAsync(s_bound)).ShouldBeTrue();
        (await rx.ReceiveAsync()).ShouldBe(2);
    }

    [Fact]
    public async Task SendAsync_WaitingWhenClosed_IsRefusedAndCounted()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1, LateSend = LateSendPolicy.Drop });
        tx.Send(1);
        var send = tx.SendAsync(2).AsTask();

        rx.Close();

        (await send.WaitAsync(s_bound)).ShouldBeFalse();
        tx.Stats.ShouldBe(new ChannelStats(1, 0, 1, 1, true));
    }

    [Fact]
    public async Task SendAsync_WaitingWhenClosed_ThrowPolicy_Throws()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        tx.Send(1);
        var send = tx.SendAsync(2).AsTask();

        tx.Fail(new IOException("x"));

        await Should.ThrowAsync<ClosedResourceException>(send.WaitAsync(s_bound));
        tx.Stats.Dropped.ShouldBe(1);
    }

    [Fact]
    public async Task SendAsync_Cancelled_WhileWaiting_IsNotCounted()
    {
        var (tx, _) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        tx.Send(1);
        using var cts = new CancellationTokenSource();
        var send = tx.SendAsync(2, cts.Token).AsTask();

        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(send.WaitAsync(s_bound));
        tx.Stats.ShouldBe(new ChannelStats(1, 0, 0, 1, false));
    }

    [Fact]
    public async Task SendAsync_AmbientScopeCancelled_StopsWaiting()
    {
        var (tx, _) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        tx.Send(1);
        var scope = new CancelScope();

        var completed = await scope.RunAsync(async _ =>
        {
            var send = tx.SendAsync(2);
            scope.Cancel();
            await send;
        }).WaitAsync(s_bound);

        completed.ShouldBeFalse();
    }

    [Fact]
    public void Options_BadValues_Throw()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new ObjectChannelOptions { Capacity = 0 });
        Should.Throw<ArgumentOutOfRangeException>(() => new ObjectChannelOptions { Capacity = -1 });
        Should.Throw<ArgumentOutOfRangeException>(() => new ObjectChannelOptions { LateSend = (LateSendPolicy)7 });
    }

    [Fact]
    public async Task SeveralReceivers_UnderLoad_BoundedSmallCapacity()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 4 });
        const int items = 20_000;
        var receivers = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            var got = new List<int>();
            await foreach (var item in rx)
            {
                got.Add(item);
            }

            return got;
        })).ToArray();
        var producers = Enumerable.Range(0, 2).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < items / 2; i++)
            {
                (await tx.SendAsync((p * (items / 2)) + i)).ShouldBeTrue();
            }
        })).ToArray();

        await Task.WhenAll(producers).WaitAsync(TimeSpan.FromSeconds(60));
        tx.Close();
        var all = (await Task.WhenAll(receivers).WaitAsync(TimeSpan.FromSeconds(60))).SelectMany(x => x).ToList();

        all.Order().ShouldBe(Enumerable.Range(0, items));
        rx.Stats.ShouldBe(new ChannelStats(items, items, 0, 0, true));
    }
}
