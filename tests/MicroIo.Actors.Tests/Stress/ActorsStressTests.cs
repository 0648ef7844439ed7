using System.Collections.Concurrent;
using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>Submits racing close, handler failures, and concurrent actors that release under load: every message is handled once, left in the mailbox, or counted as dropped.</summary>
[Trait("Category", "Stress")]
public class ActorsStressTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SerialActor_SubmitRacingCloseAndAHandlerFailure_EveryMessageIsHandledLeftOrDropped()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            IMailbox<int> mailbox = random.Next(2) == 0 ? new Mailbox<int>() : new PriorityMailbox<int>(i => i % 3);
            var handled = new ConcurrentDictionary<int, int>();
            var failAt = random.Next(3) == 0 ? random.Next(1, 2_000) : -1;
            var failure = new IOException("handler");
            var actor = new ActorCore<int>((item, ct) =>
            {
                handled.AddOrUpdate(item, 1, (_, n) => n + 1);
                return item == failAt ? Task.FromException(failure) : Task.CompletedTask;
            }, mailbox);
            var producers = random.Next(1, 4);
            var perProducer = random.Next(100, 1_000);
            var accepted = new ConcurrentDictionary<int, bool>();
            var closeAfter = random.Next(producers * perProducer);
            var attempts = 0;

            var run = Task.Run(() => actor.RunAsync());
            var producerTasks = Enumerable.Range(0, producers).Select(p => Task.Run(() =>
            {
                for (var i = 0; i < perProducer; i++)
                {
                    var item = (p * perProducer) + i;
                    if (Interlocked.Increment(ref attempts) == closeAfter)
                    {
                        actor.Close();
                    }

                    if (actor.Submit(item))
                    {
                        accepted[item] = true;
                    }
                }
            })).ToList();
            await Task.WhenAll(producerTasks);
            actor.Close();
            var outcome = await Record.ExceptionAsync(() => run);
            var left = actor.Drain();

            handled.Values.ShouldAllBe(n => n == 1);
            handled.Keys.ShouldAllBe(k => accepted.ContainsKey(k));
            left.ShouldAllBe(k => accepted.ContainsKey(k) && !handled.ContainsKey(k));
            (handled.Count + left.Count).ShouldBe(accepted.Count);
            var stats = mailbox.Stats;
            (stats.Sent + stats.Dropped).ShouldBe(producers * perProducer);
            stats.Sent.ShouldBe(accepted.Count);
            if (handled.ContainsKey(failAt))
            {
                outcome.ShouldBeSameAs(failure);
            }
            else
            {
                outcome.ShouldBeNull();
                left.ShouldBeEmpty();
            }

            return producers * perProducer;
        });
    }

    [Fact]
    public async Task ConcurrentActor_ReleaseUnderLoadWithFailures_EveryTakenMessageIsHandledToTheEnd()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var mailbox = new Mailbox<int>();
            var started = new ConcurrentDictionary<int, bool>();
            var finished = new ConcurrentDictionary<int, bool>();
            var running = 0;
            var maxRunning = 0;
            var failAt = random.Next(2) == 0 ? random.Next(0, 300) : -1;
            var failure = new IOException("handler " + failAt);
            var actor = new ActorCore<int>(async (item, release, ct) =>
            {
                started[item] = true;
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref maxRunning, now);
                try
                {
                    await Task.Yield();
                    release();
                    await Task.Yield();
                    if (item == failAt)
                    {
                        throw failure;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref running);
                    finished[item] = true;
                }
            }, mailbox);
            var count = random.Next(50, 300);
            for (var i = 0; i < count; i++)
            {
                actor.Submit(i).ShouldBeTrue();
            }

            actor.Close();
            var outcome = await Record.ExceptionAsync(() => actor.RunAsync());
            var left = actor.Drain();

            running.ShouldBe(0, "RunAsync returned with a handler still running");
            finished.Count.ShouldBe(started.Count);
            (started.Count + left.Count).ShouldBe(count);
            if (started.ContainsKey(failAt))
            {
                outcome.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldContain(failure);
            }
            else
            {
                outcome.ShouldBeNull();
            }

            return count;
        });
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
