using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>Races closes, failures and waits on one scope, and adds and ends work on one tracker, from many threads.</summary>
[Trait("Category", "Stress")]
public class ScopesStressTests(ITestOutputHelper output)
{
    [Fact]
    public async Task CloseScope_ClosersFailersAndWaitersRacing_ExactlyOneWinsAndEveryWaiterWakes()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var scope = new CloseScope();
            var callbackRuns = 0;
            using var registration = scope.Token.Register(() => Interlocked.Increment(ref callbackRuns));
            var closers = random.Next(2, 6);
            var wins = 0;
            using var go = new Barrier(closers + 2);
            var failure = new InvalidOperationException("boom");

            var racers = Enumerable.Range(0, closers).Select(i => Task.Run(() =>
            {
                go.SignalAndWait();
                var won = i % 2 == 0 ? scope.Close($"closer {i}") : scope.Fail(failure, $"failer {i}");
                if (won)
                {
                    Interlocked.Increment(ref wins);
                }
            })).ToList();
            var syncWaiter = Task.Run(() =>
            {
                go.SignalAndWait();
                return scope.Wait(Timeout.InfiniteTimeSpan);
            });
            var asyncWaiter = Task.Run(async () =>
            {
                go.SignalAndWait();
                await scope.WaitAsync();
            });

            await Task.WhenAll(racers);
            (await syncWaiter).ShouldBeTrue();
            await asyncWaiter;

            wins.ShouldBe(1);
            callbackRuns.ShouldBe(1);
            scope.IsClosed.ShouldBeTrue();
            scope.Token.IsCancellationRequested.ShouldBeTrue();
            scope.Reason.ShouldNotBeNull();
            if (scope.IsFailed)
            {
                scope.Exception.ShouldBeSameAs(failure);
                scope.Reason.ShouldStartWith("failer");
                Should.Throw<BrokenResourceException>(scope.ThrowIfClosed).InnerException.ShouldBeSameAs(failure);
            }
            else
            {
                scope.Exception.ShouldBeNull();
                scope.Reason.ShouldStartWith("closer");
                Should.Throw<ClosedResourceException>(scope.ThrowIfClosed);
            }

            return closers;
        });
    }

    [Fact]
    public async Task WorkTracker_ManyWorkersAddingAndEnding_CountReturnsToZeroAndEveryIdleWaiterWakes()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var tracker = new WorkTracker();
            var workers = random.Next(2, 6);
            var itemsPerWorker = random.Next(100, 2_000);
            var observedNegative = false;

            // Idle waiters taken at random moments: each must wake once the count is back at zero.
            var idleWaits = new List<Task>();
            var workerTasks = Enumerable.Range(0, workers).Select(w => Task.Run(() =>
            {
                var local = new Random(random.Next() + w);
                for (var i = 0; i < itemsPerWorker; i++)
                {
                    if (local.Next(2) == 0)
                    {
                        tracker.Add();
                        if (tracker.Count < 1)
                        {
                            observedNegative = true;
                        }

                        tracker.Done();
                    }
                    else
                    {
                        using (tracker.Track())
                        {
                            Thread.SpinWait(local.Next(10));
                        }
                    }
                }
            })).ToList();
            for (var i = 0; i < 10; i++)
            {
                idleWaits.Add(tracker.WaitIdleAsync());
                await Task.Yield();
            }

            await Task.WhenAll(workerTasks);
            await Task.WhenAll(idleWaits);

            observedNegative.ShouldBeFalse();
            tracker.Count.ShouldBe(0);
            tracker.IsBusy.ShouldBeFalse();
            tracker.WaitIdle(TimeSpan.Zero).ShouldBeTrue();
            Should.Throw<InvalidOperationException>(tracker.Done);
            tracker.Count.ShouldBe(0);
            return (long)workers * itemsPerWorker;
        });
    }
}
