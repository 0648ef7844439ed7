namespace MicroIo.Tests;

[Collection(nameof(MetricsTests))]
public class ChannelMetricsTests
{
    [Fact]
    public async Task KnownWorkload_ReportsSentReceivedDroppedAndQueueDepth()
    {
        using var metrics = new MetricsRecorder();
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { LateSend = LateSendPolicy.Drop });
        var depthBefore = metrics.Observe("microio.channel.queue.depth");

        for (var i = 0; i < 5; i++)
        {
            tx.Send(i).ShouldBeTrue();
        }

        metrics.Observe("microio.channel.queue.depth").ShouldBe(depthBefore + 5);
        (await rx.ReceiveAsync()).ShouldBe(0);
        rx.TryReceive(out _).ShouldBeTrue();
        rx.DrainNowait(1).Count.ShouldBe(1);
        tx.Close();
        tx.Send(99).ShouldBeFalse();
        (await tx.SendAsync(100)).ShouldBeFalse();

        metrics.Sum("microio.channel.items.sent").ShouldBe(5);
        metrics.Sum("microio.channel.items.received").ShouldBe(3);
        metrics.Sum("microio.channel.items.dropped").ShouldBe(2);
        metrics.Observe("microio.channel.queue.depth").ShouldBe(depthBefore + 2);
        GC.KeepAlive(rx);
    }

    [Fact]
    public async Task ReceiveThatHadToWait_IsCountedAsReceived()
    {
        using var metrics = new MetricsRecorder();
        var (tx, rx) = ObjectChannel.Create<int>();

        // Nothing is queued yet, so the receive takes the waiting path.
        var receive = rx.ReceiveAsync();
        receive.IsCompleted.ShouldBeFalse();
        tx.Send(7).ShouldBeTrue();

        (await receive).ShouldBe(7);
        metrics.Sum("microio.channel.items.sent").ShouldBe(1);
        metrics.Sum("microio.channel.items.received").ShouldBe(1);
    }

    [Fact]
    public async Task SendThatHadToWaitForRoom_IsCountedAsSent_OnceItIsIn()
    {
        using var metrics = new MetricsRecorder();
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        tx.Send(1).ShouldBeTrue();

        // Full, so the send waits; the receive makes room and moves its item in.
        var send = tx.SendAsync(2);
        send.IsCompleted.ShouldBeFalse();
        metrics.Sum("microio.channel.items.sent").ShouldBe(1);
        (await rx.ReceiveAsync()).ShouldBe(1);

        (await send.AsTask().WaitAsync(TimeSpan.FromSeconds(10))).ShouldBeTrue();
        metrics.Sum("microio.channel.items.sent").ShouldBe(2);
        GC.KeepAlive(rx);
    }
}
