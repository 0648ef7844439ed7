using System.Collections.Concurrent;
using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>
/// N producers x M items with a close or a failure at a random moment, bounded and unbounded, one and several
/// receivers: every item is received exactly once or counted as dropped, and the stats add up.
/// </summary>
[Trait("Category", "Stress")]
public class ChannelsStressTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SendAndReceive_ProducersReceiversAndARandomCloseOrFail_NoItemIsLostOrDuplicated()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var producers = random.Next(1, 5);
            var perProducer = random.Next(100, 3_000);
            var receivers = random.Next(1, 4);
            int? capacity = random.Next(3) == 0 ? null : random.Next(1, 64);
            var lateSend = random.Next(2) == 0 ? LateSendPolicy.Throw : LateSendPolicy.Drop;
            var (sender, receiver) = ObjectChannel.Create<long>(new ObjectChannelOptions
            {
                Capacity = capacity,
                LateSend = lateSend,
                SingleReceiver = receivers == 1 && random.Next(2) == 0,
            });

            // Half the time, a one-tick pause after a burst (ReceivePauseTests), which pauses on one processor too; the
            // default pauses only on more than one.
            if (random.Next(2) == 0)
            {
                receiver.Core.PauseTicks = 1;
            }

            var failWith = random.Next(2) == 0 ? new IOException("failed") : null;
            var closeAfter = random.Next(producers * perProducer + 1);
            long attempts = 0;
            var accepted = new ConcurrentDictionary<long, bool>();
            var refused = 0L;
            var received = new ConcurrentDictionary<long, int>();
            var receiverEnds = new ConcurrentBag<Exception?>();

            var producerTasks = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
            {
                var local = new Random(random.Next() + p);
                for (var i = 0; i < perProducer; i++)
                {
                    var item = ((long)p << 32) | (uint)i;
                    if (Interlocked.Increment(ref attempts) == closeAfter)
                    {
                        if (failWith is null)
                        {
                            sender.Close();
                        }
                        else
                        {
                            receiver.Fail(failWith);
                        }
                    }

                    bool queued;
                    try
                    {
                        // Send on a bounded channel cannot tell "full" from "dropped" when a close lands between the two
                        // (see RELIABILITY.md), so bounded producers use SendAsync, which waits for room.
                        queued = capacity is null && local.Next(2) == 0
                            ? sender.Send(item)
                            : await sender.SendAsync(item);
                    }
                    catch (ClosedResourceException)
                    {
                        lateSend.ShouldBe(LateSendPolicy.Throw);
                        queued = false;
                    }

                    if (queued)
                    {
                        accepted[item] = true;
                    }
                    else
                    {
                        Interlocked.Increment(ref refused);
                    }
                }
            })).ToList();

            var receiverTasks = Enumerable.Range(0, receivers).Select(r => Task.Run(async () =>
            {
                try
                {
                    if (r % 2 == 0)
                    {
                        await foreach (var item in receiver)
                        {
                            received.AddOrUpdate(item, 1, (_, n) => n + 1);
                        }
                    }
                    else
                    {
                        while (true)
                        {
                            var item = await receiver.ReceiveAsync();
                            received.AddOrUpdate(item, 1, (_, n) => n + 1);
                        }
                    }

                    receiverEnds.Add(null);
                }
                catch (EndOfChannelException ex)
                {
                    receiverEnds.Add(ex);
                }
                catch (IOException ex)
                {
                    receiverEnds.Add(ex);
                }
            })).ToList();

            await Task.WhenAll(producerTasks);
            sender.Close();
            await Task.WhenAll(receiverTasks);

            // Every accepted item arrived exactly once; nothing else arrived.
            received.Values.ShouldAllBe(n => n == 1);
            received.Count.ShouldBe(accepted.Count);
            received.Keys.ShouldAllBe(k => accepted.ContainsKey(k));

            var stats = sender.Stats;
            stats.Sent.ShouldBe(accepted.Count);
            stats.Received.ShouldBe(accepted.Count);
            stats.Queued.ShouldBe(0);
            stats.Dropped.ShouldBe(refused);
            (stats.Sent + stats.Dropped).ShouldBe(producers * perProducer);
            stats.IsClosed.ShouldBeTrue();

            if (failWith is not null && closeAfter > 0)
            {
                // The failure reaches every receiver, as the very exception, once the queue is drained.
                receiverEnds.ShouldAllBe(e => e == null || ReferenceEquals(e, failWith));
                receiverEnds.Count(e => ReferenceEquals(e, failWith)).ShouldBe(receivers);
            }
            else
            {
                receiverEnds.ShouldAllBe(e => e == null || e is EndOfChannelException);
            }

            return producers * perProducer;
        });
    }

    [Fact]
    public async Task DrainNowait_RacingSendersAndReceivers_StatsBalanceAtEveryQuiescentPoint()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { LateSend = LateSendPolicy.Drop });
            var count = random.Next(1_000, 10_000);
            var taken = 0L;
            var producer = Task.Run(() =>
            {
                for (var i = 0; i < count; i++)
                {
                    sender.Send(i).ShouldBeTrue();
                }

                sender.Close();
            });
            var drainer = Task.Run(async () =>
            {
                while (await receiver.WaitToReceiveAsync())
                {
                    Interlocked.Add(ref taken, receiver.DrainNowait(random.Next(0, 50)).Count);
                }
            });

            await Task.WhenAll(producer, drainer);
            sender.Send(-1).ShouldBeFalse();

            taken.ShouldBe(count);
            receiver.Stats.ShouldBe(new ChannelStats(count, count, 1, 0, true));
            return count;
        });
    }
}
