using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

/// <summary>
/// Races answers, timeouts, cancellations, fail-all and close against each other, and checks that every waiter ends
/// exactly once: each completion that reported success is seen by exactly one caller, and nothing is left pending.
/// </summary>
public class RequestRegistryRaceTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Request_FourThreadsRacingAResponderTimeoutsAndFailAll_EveryWaiterEndsExactlyOnce()
    {
        RunSyncRace(threads: 4, requestsPerThread: 100_000, seed: 1);
    }

    [Fact]
    public async Task RequestAsync_FourFlowsRacingAResponderTimeoutsAndFailAll_EveryWaiterEndsExactlyOnce()
    {
        await RunAsyncRace(flows: 4, requestsPerFlow: 100_000, seed: 2);
    }

    [StressFact]
    [Trait("Category", "Stress")]
    public async Task RequestAndRequestAsync_StressManySeeds_EveryWaiterEndsExactlyOnce()
    {
        for (var seed = 10; seed < 30; seed++)
        {
            RunSyncRace(threads: 4, requestsPerThread: 100_000, seed);
            await RunAsyncRace(flows: 4, requestsPerFlow: 100_000, seed);
        }
    }

    [Fact]
    public void Wait_TimeoutRacingResolve_ValueIsReturnedExactlyWhenResolveWon()
    {
        var registry = new RequestRegistry<int, int>();
        using var go = new Barrier(2);

        for (var i = 0; i < 2_000; i++)
        {
            var key = i;
            var waiter = registry.Register(key);
            var resolved = false;
            var resolver = new Thread(() =>
            {
                go.SignalAndWait();
                resolved = registry.Resolve(key, key);
            });
            resolver.Start();

            go.SignalAndWait();
            var exception = Record.Exception(() => registry.Wait(key, waiter, TimeSpan.Zero).ShouldBe(key));
            resolver.Join(s_bound).ShouldBeTrue();

            // Either side may win; what matters is that the caller saw the value exactly when Resolve said it delivered it.
            if (resolved)
            {
                exception.ShouldBeNull();
            }
            else
            {
                exception.ShouldBeOfType<TimeoutException>();
            }

            registry.Count.ShouldBe(0);
        }
    }

    [Fact]
    public async Task WaitAsync_FakeTimeoutRacingResolve_ValueIsReturnedExactlyWhenResolveWon()
    {
        for (var i = 0; i < 1_000; i++)
        {
            var time = new FakeTimeProvider();
            var registry = new RequestRegistry<int, int>(time);
            var waiter = registry.Register(1);
            var wait = registry.WaitAsync(1, waiter, TimeSpan.FromSeconds(1)).AsTask();
            using var go = new Barrier(2);
            var resolved = false;

            var resolver = Task.Run(() =>
            {
                go.SignalAndWait();
                resolved = registry.Resolve(1, 42);
            });
            var clock = Task.Run(() =>
            {
                go.SignalAndWait();
                time.Advance(TimeSpan.FromSeconds(1));
            });
            await Task.WhenAll(resolver, clock).WaitAsync(s_bound);

            var exception = await Record.ExceptionAsync(async () => (await wait.WaitAsync(s_bound)).ShouldBe(42));
            if (resolved)
            {
                exception.ShouldBeNull();
            }
            else
            {
                exception.ShouldBeOfType<TimeoutException>();
            }

            registry.Count.ShouldBe(0);
        }
    }

    [Fact]
    public async Task WaitAsync_CancellationRacingResolve_ValueIsReturnedExactlyWhenResolveWon()
    {
        var registry = new RequestRegistry<int, int>();
        for (var i = 0; i < 1_000; i++)
        {
            var waiter = registry.Register(i);
            using var cts = new CancellationTokenSource();
            var wait = registry.WaitAsync(i, waiter, cts.Token).AsTask();
            using var go = new Barrier(2);
            var resolved = false;
            var key = i;

            var resolver = Task.Run(() =>
            {
                go.SignalAndWait();
                resolved = registry.Resolve(key, key);
            });
            var canceller = Task.Run(() =>
            {
                go.SignalAndWait();
                cts.Cancel();
            });
            await Task.WhenAll(resolver, canceller).WaitAsync(s_bound);

            var exception = await Record.ExceptionAsync(async () => (await wait.WaitAsync(s_bound)).ShouldBe(key));
            if (resolved)
            {
                exception.ShouldBeNull();
            }
            else
            {
                exception.ShouldBeAssignableTo<OperationCanceledException>();
            }

            registry.Count.ShouldBe(0);
        }
    }

    [Fact]
    public void Close_RacingRequestsAndAnswers_EveryRequestEndsAndNoneIsLeftPending()
    {
        for (var round = 0; round < 20; round++)
        {
            var registry = new RequestRegistry<int, int>();
            var cause = new IOException("service stopped");
            var values = 0;
            var failures = new ConcurrentQueue<Exception>();
            using var go = new Barrier(4);
            var threads = Enumerable.Range(0, 3).Select(t => new Thread(() =>
            {
                go.SignalAndWait();
                for (var i = 0; ; i++)
                {
                    var key = (t * 10_000_000) + i;
                    try
                    {
                        // Most requests are answered at once; one in fifty waits until the close fails it.
                        if (registry.Request(key, reply => { if (key % 50 != 49) { reply.Resolve(key); } }, s_bound) != key)
                        {
                            failures.Enqueue(new ShouldAssertException($"request {key} got another request's value"));
                        }

                        Interlocked.Increment(ref values);
                    }
                    catch (ClosedResourceException closed) when (closed.InnerException == cause)
                    {
                        return;
                    }
                    catch (IOException failed) when (failed == cause)
                    {
                        // Pending when the close came: failed with the cause, as it should be.
                    }
                    catch (Exception unexpected)
                    {
                        failures.Enqueue(unexpected);
                        return;
                    }
                }
            })).ToArray();
            foreach (var thread in threads)
            {
                thread.Start();
            }

            go.SignalAndWait();
            // Let each worker get some requests through before the close, without sleeping.
            SpinWait.SpinUntil(() => Volatile.Read(ref values) > 30 || threads.All(t => !t.IsAlive), s_bound);
            registry.Close(cause);

            foreach (var thread in threads)
            {
                thread.Join(s_bound).ShouldBeTrue();
            }

            failures.ShouldBeEmpty();
            registry.Count.ShouldBe(0);
            Should.Throw<ClosedResourceException>(() => registry.Register(-1));
        }
    }

    // A fresh exception for every completion, told apart by type: one exception object rethrown by thousands of waits
    // over time grows its stack trace with every capture and rethrow, which makes the race quadratic and says nothing
    // about the registry.
    private sealed class SendFailure : Exception;

    private sealed class ResponderFailure : Exception;

    private sealed class FailAllFailure : Exception;

    /// <summary>The ways a request in the race is answered, or not.</summary>
    private enum Plan
    {
        ResolveInSend,
        ResolveByKeyInSend,
        FailInSend,
        Responder,
        ResponderWithZeroTimeout,
        NoAnswerZeroTimeout,
        NoAnswerShortTimeout,
    }

    private static Plan Choose(Random random)
    {
        // Most requests are answered at once or time out at once, so 400,000 of them fit in a few seconds on two busy
        // cores. Round trips through the responder thread are kept rare: each one is a thread hand-off both ways,
        // which costs a scheduler quantum when the machine is oversubscribed. Zero timeouts still race the responder.
        var roll = random.Next(1000);
        return roll switch
        {
            < 550 => Plan.ResolveInSend,
            < 700 => Plan.ResolveByKeyInSend,
            < 750 => Plan.FailInSend,
            < 760 => Plan.Responder,
            < 900 => Plan.ResponderWithZeroTimeout,
            < 999 => Plan.NoAnswerZeroTimeout,
            _ => Plan.NoAnswerShortTimeout,
        };
    }

    private static void RunSyncRace(int threads, int requestsPerThread, int seed)
    {
        var race = new Race(TimeProvider.System);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() => race.Guard(() =>
        {
            var random = new Random((seed * 100) + t);
            for (long i = 0; i < requestsPerThread; i++)
            {
                var key = (t * (long)requestsPerThread) + i;
                var plan = race.Next(t, key, random);
                var timeout = plan switch
                {
                    Plan.ResponderWithZeroTimeout or Plan.NoAnswerZeroTimeout => TimeSpan.Zero,
                    Plan.NoAnswerShortTimeout => TimeSpan.FromMilliseconds(1),
                    _ => Timeout.InfiniteTimeSpan,
                };
                ReplyHandle<long, long> handle = default;
                long? value = null;
                Exception? failure = null;
                try
                {
                    value = race.Registry.Request(key, reply => race.Send(reply, plan, out handle), timeout);
                }
                catch (Exception exception)
                {
                    failure = exception;
                }

                race.Record(key, value, failure, handle);
            }
        }))).ToArray();

        try
        {
            foreach (var worker in workers)
            {
                worker.Start();
            }

            foreach (var worker in workers)
            {
                worker.Join(TimeSpan.FromSeconds(60)).ShouldBeTrue($"a worker hung: {race.Progress()}");
            }
        }
        finally
        {
            race.StopResponder();
        }

        race.ShouldBalance((long)threads * requestsPerThread);
    }

    private static async Task RunAsyncRace(int flows, int requestsPerFlow, int seed)
    {
        // The fake clock never moves, so a non-zero timeout here never fires: short real timeouts are the sync race's job.
        var race = new Race(new FakeTimeProvider());

        async Task Flow(int f)
        {
            var random = new Random((seed * 100) + f);
            for (long i = 0; i < requestsPerFlow; i++)
            {
                var key = (f * (long)requestsPerFlow) + i;
                var plan = race.Next(f, key, random);
                var timeout = plan is Plan.ResponderWithZeroTimeout or Plan.NoAnswerZeroTimeout or Plan.NoAnswerShortTimeout
                    ? TimeSpan.Zero
                    : TimeSpan.FromMinutes(1);
                ReplyHandle<long, long> handle = default;
                long? value = null;
                Exception? failure = null;
                try
                {
                    value = await race.Registry.RequestAsync(key, reply => race.Send(reply, plan, out handle), timeout);
                }
                catch (Exception exception)
                {
                    failure = exception;
                }

                race.Record(key, value, failure, handle);
            }
        }

        try
        {
            var all = Task.WhenAll(Enumerable.Range(0, flows).Select(f => Task.Run(() => race.GuardAsync(() => Flow(f)))));
            var finished = await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60)));
            finished.ShouldBeSameAs(all, $"a flow hung: {race.Progress()}");
        }
        finally
        {
            race.StopResponder();
        }

        race.ShouldBalance((long)flows * requestsPerFlow);
    }

    /// <summary>The shared state of one race: the registry, a responder thread, the tallies and any assertion failures.</summary>
    private sealed class Race
    {
        private readonly ConcurrentQueue<Exception> _failures = new();
        private readonly BlockingCollection<ReplyHandle<long, long>> _queue = [];
        private readonly ConcurrentDictionary<int, string> _progress = new();
        private readonly Thread _responder;

        private long _requests;
        private long _resolvedTrue;
        private long _failedBySendTrue;
        private long _failedByResponderTrue;
        private long _failAllWoken;
        private long _failAllCalls;
        private long _sawValue;
        private long _sawSendFailure;
        private long _sawResponderFailure;
        private long _sawFailAll;
        private long _sawTimeout;

        public Race(TimeProvider timeProvider)
        {
            Registry = new RequestRegistry<long, long>(timeProvider);
            _responder = new Thread(() => Guard(Respond)) { IsBackground = true, Name = "responder" };
            _responder.Start();
        }

        public RequestRegistry<long, long> Registry { get; }

        public Plan Next(int worker, long key, Random random)
        {
            // FailAll from a random caller at a random moment: it hits whatever the other callers have in flight.
            if (random.Next(500) == 0)
            {
                FailAll();
            }

            var plan = Choose(random);
            _progress[worker] = $"{key}:{plan}";
            return plan;
        }

        public void Send(ReplyHandle<long, long> reply, Plan plan, out ReplyHandle<long, long> handle)
        {
            handle = reply;
            switch (plan)
            {
                case Plan.ResolveInSend:
                    Count(reply.Resolve(reply.Key), ref _resolvedTrue);
                    break;
                case Plan.ResolveByKeyInSend:
                    Count(Registry.Resolve(reply.Key, reply.Key), ref _resolvedTrue);
                    break;
                case Plan.FailInSend:
                    Count(reply.Fail(new SendFailure()), ref _failedBySendTrue);
                    break;
                case Plan.Responder:
                case Plan.ResponderWithZeroTimeout:
                    _queue.Add(reply);
                    break;
                default:
                    break;
            }
        }

        public void Record(long key, long? value, Exception? failure, ReplyHandle<long, long> handle)
        {
            Interlocked.Increment(ref _requests);
            if (value is { } v)
            {
                v.ShouldBe(key);
                Interlocked.Increment(ref _sawValue);
            }
            else if (failure is SendFailure)
            {
                Interlocked.Increment(ref _sawSendFailure);
            }
            else if (failure is ResponderFailure)
            {
                Interlocked.Increment(ref _sawResponderFailure);
            }
            else if (failure is FailAllFailure)
            {
                Interlocked.Increment(ref _sawFailAll);
            }
            else if (failure is TimeoutException)
            {
                Interlocked.Increment(ref _sawTimeout);
            }
            else
            {
                throw new ShouldAssertException($"request {key} ended with an unexpected outcome: {failure}");
            }

            handle.ShouldNotBe(default, $"request {key} returned, but send never ran");
            handle.Waiter.IsCompleted.ShouldBeTrue($"request {key} returned, but its waiter did not end");
        }

        public void Guard(Action body)
        {
            try
            {
                body();
            }
            catch (Exception exception)
            {
                _failures.Enqueue(exception);
            }
        }

        public async Task GuardAsync(Func<Task> body)
        {
            try
            {
                await body();
            }
            catch (Exception exception)
            {
                _failures.Enqueue(exception);
            }
        }

        public string Progress() =>
            $"{string.Join(", ", _progress.OrderBy(p => p.Key).Select(p => $"#{p.Key} at {p.Value}"))}; pending {Registry.Count}; queued {_queue.Count}; responder alive {_responder.IsAlive}; failures: {string.Join(" | ", _failures)}";

        public void StopResponder()
        {
            _queue.CompleteAdding();
            _responder.Join(s_bound).ShouldBeTrue("the responder did not stop");
        }

        public void ShouldBalance(long expectedRequests)
        {
            _failures.ShouldBeEmpty();
            _requests.ShouldBe(expectedRequests);
            (_sawValue + _sawSendFailure + _sawResponderFailure + _sawFailAll + _sawTimeout).ShouldBe(expectedRequests, "every request ends exactly once");
            _sawValue.ShouldBe(_resolvedTrue, "each resolve that returned true is seen by exactly one caller");
            _sawSendFailure.ShouldBe(_failedBySendTrue);
            _sawResponderFailure.ShouldBe(_failedByResponderTrue);
            _sawFailAll.ShouldBe(_failAllWoken, "FailAll counts exactly the waiters it woke");
            _failAllCalls.ShouldBeGreaterThan(0);
            Registry.Count.ShouldBe(0);
        }

        private static void Count(bool completed, ref long counter)
        {
            if (completed)
            {
                Interlocked.Increment(ref counter);
            }
        }

        private void FailAll()
        {
            Interlocked.Increment(ref _failAllCalls);
            Interlocked.Add(ref _failAllWoken, Registry.FailAll(new FailAllFailure()));
        }

        private void Respond()
        {
            // A reader thread: answers what it is given by handle or by key, with values or failures, and now and then
            // fails everything in flight.
            foreach (var reply in _queue.GetConsumingEnumerable())
            {
                switch (reply.Key % 8)
                {
                    case 0:
                    case 1:
                    case 2:
                        Count(reply.Resolve(reply.Key), ref _resolvedTrue);
                        break;
                    case 3:
                    case 4:
                        Count(Registry.Resolve(reply.Key, reply.Key), ref _resolvedTrue);
                        break;
                    case 5:
                    case 6:
                        Count(reply.Fail(new ResponderFailure()), ref _failedByResponderTrue);
                        break;
                    default:
                        FailAll();
                        break;
                }
            }
        }
    }
}
