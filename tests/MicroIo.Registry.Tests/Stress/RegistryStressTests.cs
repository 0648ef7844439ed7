using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>
/// Races register, resolve, fail, timeout, fail-all and close on one registry: every waiter ends exactly once, each
/// successful completion is seen by its caller, and the registry ends empty.
/// </summary>
[Trait("Category", "Stress")]
public class RegistryStressTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RequestAsync_ResolveFailTimeoutFailAllAndCloseRacing_EveryWaiterEndsOnceAndRegistryEndsEmpty()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var time = new FakeTimeProvider();
            var registry = new RequestRegistry<long, long>(time);
            var callers = random.Next(2, 5);
            var perCaller = random.Next(50, 400);
            var closeAt = random.Next(callers * perCaller);
            long started = 0;
            var outcomes = new ConcurrentDictionary<long, string>();
            var resolvedByResponder = new ConcurrentDictionary<long, bool>();
            var failedByResponder = new ConcurrentDictionary<long, bool>();
            var failedAll = new InvalidOperationException("fail-all");
            var closed = new IOException("closed");

            // The responders' bookkeeping (what they resolved) happens after the caller may already have its value:
            // the checks below wait for every responder, or they would race the test's own records.
            var responders = new ConcurrentBag<Task>();

            var callerTasks = Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
            {
                var local = new Random(random.Next() + c);
                for (var i = 0; i < perCaller; i++)
                {
                    var key = ((long)c << 32) | (uint)i;
                    var n = Interlocked.Increment(ref started);
                    if (n == closeAt)
                    {
                        registry.Close(closed);
                    }
                    else if (n % 97 == 0)
                    {
                        registry.FailAll(failedAll);
                    }

                    var plan = local.Next(5);
                    try
                    {
                        var value = await registry.RequestAsync(key, (Action<ReplyHandle<long, long>>)(reply =>
                        {
                            // The responder runs elsewhere, as a reader thread would.
                            responders.Add(Task.Run(() =>
                            {
                                switch (plan)
                                {
                                    case 0:
                                        if (registry.Resolve(key, key))
                                        {
                                            resolvedByResponder[key] = true;
                                        }

                                        break;
                                    case 1:
                                        if (reply.Fail(new TimeoutException("responder")))
                                        {
                                            failedByResponder[key] = true;
                                        }

                                        break;
                                    case 2:
                                        time.Advance(TimeSpan.FromSeconds(2));
                                        break;
                                    case 3:
                                        if (reply.Resolve(key))
                                        {
                                            resolvedByResponder[key] = true;
                                        }

                                        break;
                                    default:
                                        // No answer: only the timeout, a fail-all or the close ends it.
                                        time.Advance(TimeSpan.FromSeconds(2));
                                        break;
                                }
                            }));
                        }), TimeSpan.FromSeconds(1));
                        value.ShouldBe(key);
                        outcomes.TryAdd(key, "value").ShouldBeTrue();
                    }
                    catch (TimeoutException ex) when (ex.Message == "responder")
                    {
                        outcomes.TryAdd(key, "failed").ShouldBeTrue();
                    }
                    catch (TimeoutException)
                    {
                        outcomes.TryAdd(key, "timeout").ShouldBeTrue();
                    }
                    catch (InvalidOperationException ex) when (ReferenceEquals(ex, failedAll))
                    {
                        outcomes.TryAdd(key, "fail-all").ShouldBeTrue();
                    }
                    catch (IOException ex) when (ReferenceEquals(ex, closed))
                    {
                        outcomes.TryAdd(key, "close").ShouldBeTrue();
                    }
                    catch (ClosedResourceException ex) when (ReferenceEquals(ex.InnerException, closed))
                    {
                        outcomes.TryAdd(key, "refused").ShouldBeTrue();
                    }

                    // Keep fake time moving so an unanswered request cannot wait forever.
                    time.Advance(TimeSpan.FromSeconds(2));
                }
            })).ToList();

            // A request whose timeout timer was registered after the last advance still needs time to move: keep moving it,
            // yielding to the callers in between, until every caller has finished (the outcome, not the pace, is checked).
            while (callerTasks.Any(t => !t.IsCompleted))
            {
                time.Advance(TimeSpan.FromSeconds(2));
                await Task.Yield();
            }

            await Task.WhenAll(callerTasks);
            await Task.WhenAll(responders).WaitAsync(TimeSpan.FromSeconds(30));

            outcomes.Count.ShouldBe(callers * perCaller);
            foreach (var key in resolvedByResponder.Keys)
            {
                outcomes[key].ShouldBe("value", $"key {key} was resolved by the responder, so its caller must see the value");
            }

            foreach (var key in failedByResponder.Keys)
            {
                outcomes[key].ShouldBe("failed");
            }

            outcomes.Values.Count(v => v == "value").ShouldBe(resolvedByResponder.Count);
            registry.Count.ShouldBe(0);
            registry.PendingKeys.ShouldBeEmpty();
            if (closeAt > 0)
            {
                registry.IsClosed.ShouldBeTrue();
            }

            return outcomes.Count;
        });
    }

    [Fact]
    public async Task Wait_BlockingWaitersRacingResolveAndClose_EveryThreadWakesAndNothingStaysPending()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var registry = new RequestRegistry<int, int>();
            var count = random.Next(4, 16);
            var waiters = Enumerable.Range(0, count).Select(k => (Key: k, Waiter: registry.Register(k))).ToList();
            var results = new ConcurrentDictionary<int, string>();
            var threads = waiters.Select(w => new Thread(() =>
            {
                try
                {
                    results[w.Key] = registry.Wait(w.Key, w.Waiter) == w.Key ? "value" : "wrong";
                }
                catch (ClosedResourceException)
                {
                    results[w.Key] = "closed";
                }
            })).ToList();
            threads.ForEach(t => t.Start());

            var resolved = 0;
            foreach (var (key, _) in waiters.Take(random.Next(count)))
            {
                if (registry.Resolve(key, key))
                {
                    resolved++;
                }
            }

            registry.Close();
            await Task.Run(() => threads.ForEach(t => t.Join(StressRun.HangBound).ShouldBeTrue()));

            results.Count.ShouldBe(count);
            results.Values.Count(v => v == "value").ShouldBe(resolved);
            results.Values.ShouldNotContain("wrong");
            registry.Count.ShouldBe(0);
            Should.Throw<ClosedResourceException>(() => registry.Register(-1));
            return count;
        });
    }
}
