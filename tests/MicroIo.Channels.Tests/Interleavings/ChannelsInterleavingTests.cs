namespace MicroIo.Tests.Interleavings;

/// <summary>
/// Explores close vs send and fail vs receive under seeded interleavings: an item is either received or counted as
/// dropped, and a waiting receiver or sender always wakes.
/// </summary>
public class ChannelsInterleavingTests
{
    private const int Seeds = 200;

    [Theory]
    [InlineData(null)]
    [InlineData(1)]
    public async Task SendAsync_RacingClose_ItemIsReceivedOrCountedAsDropped(int? capacity)
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = capacity, LateSend = LateSendPolicy.Drop });
            if (capacity is not null)
            {
                // Full: the racing send must wait, so the close lands on a waiting sender in some interleavings.
                sender.Send(0).ShouldBeTrue();
            }

            var sent = false;
            await sched.RaceAsync(
                async () =>
                {
                    await sched.PointAsync();
                    sent = await sender.SendAsync(1);
                },
                async () =>
                {
                    await sched.PointAsync();
                    if (capacity is not null)
                    {
                        (await receiver.ReceiveAsync()).ShouldBe(0);
                    }

                    await sched.PointAsync();
                    sender.Close();
                });

            var rest = receiver.DrainNowait();
            (await Should.ThrowAsync<EndOfChannelException>(() => receiver.ReceiveAsync().AsTask())).ShouldNotBeNull();
            var stats = receiver.Stats;
            if (sent)
            {
                rest.ShouldBe([1]);
                stats.Dropped.ShouldBe(0);
            }
            else
            {
                rest.ShouldBeEmpty();
                stats.Dropped.ShouldBe(1);
            }

            stats.Queued.ShouldBe(0);
            stats.Sent.ShouldBe(stats.Received);
        });
    }

    [Fact]
    public async Task ReceiveAsync_RacingSendAndFail_ReceiverGetsTheItemThenTheSameFailure()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var (sender, receiver) = ObjectChannel.Create<int>();
            var failure = new IOException("fail");
            var got = new List<int>();
            Exception? end = null;

            var receive = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        await sched.PointAsync();
                        got.Add(await receiver.ReceiveAsync());
                    }
                }
                catch (Exception ex)
                {
                    end = ex;
                }
            });
            bool sendOk;
            await sched.PointAsync();
            try
            {
                sendOk = sender.Send(5);
            }
            catch (ClosedResourceException)
            {
                sendOk = false;
            }

            await sched.PointAsync();
            sender.Fail(failure);
            await receive;

            end.ShouldBeSameAs(failure);
            got.ShouldBe(sendOk ? [5] : []);
        });
    }
}
