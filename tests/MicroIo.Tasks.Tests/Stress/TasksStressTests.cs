using System.Collections.Concurrent;
using Xunit.Abstractions;

namespace MicroIo.Tests.Stress;

/// <summary>Runs this suite alone, so the unobserved-task-exception check sees only its own tasks.</summary>
[CollectionDefinition(nameof(TasksStressRunsAlone), DisableParallelization = true)]
public class TasksStressRunsAlone;

/// <summary>
/// Races a group's own cancel, a child's failure and an outer cancel, in nested scopes: <c>RunAsync</c> never returns
/// with a child still running, no failure is lost, and no task exception goes unobserved.
/// </summary>
[Trait("Category", "Stress")]
[Collection(nameof(TasksStressRunsAlone))]
public sealed class TasksStressTests(ITestOutputHelper output) : IDisposable
{
    private readonly ConcurrentQueue<Exception> _unobserved = new();

    public void Dispose() => TaskScheduler.UnobservedTaskException -= OnUnobserved;

    [Fact]
    public async Task TaskGroupRunAsync_GroupCancelChildFailureAndOuterCancelRacing_NoChildOutlivesAndNoFailureIsLost()
    {
        FlushFinalizers();
        TaskScheduler.UnobservedTaskException += OnUnobserved;

        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var running = 0;
            var childCount = random.Next(2, 12);
            var thrown = new ConcurrentBag<Exception>();
            using var outer = new CancellationTokenSource();
            var mode = random.Next(2) == 0 ? TaskGroupMode.FailFast : TaskGroupMode.Supervise;
            var nested = random.Next(2) == 0;
            Exception? outcome = null;

            async Task Body(TaskGroup group)
            {
                for (var c = 0; c < childCount; c++)
                {
                    var plan = random.Next(6);
                    var spin = random.Next(50);
                    group.StartSoon(async ct =>
                    {
                        Interlocked.Increment(ref running);
                        try
                        {
                            Thread.SpinWait(spin);
                            await Task.Yield();
                            switch (plan)
                            {
                                case 0:
                                    var failure = new ChildFailureException();
                                    thrown.Add(failure);
                                    throw failure;
                                case 1:
                                    group.Cancel("child cancels the group");
                                    break;
                                case 2:
                                    await outer.CancelAsync();
                                    break;
                                case 3:
                                    // Waits for a cancellation, which some other child or the body brings.
                                    await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                                    break;
                                default:
                                    await Checkpoint.YieldAsync(ct);
                                    break;
                            }
                        }
                        finally
                        {
                            Interlocked.Decrement(ref running);
                        }
                    });
                }

                await Task.Yield();

                // Make sure the waiting children end: the body always cancels somebody in the end.
                if (random.Next(2) == 0)
                {
                    group.Cancel("body");
                }
                else
                {
                    await outer.CancelAsync();
                }
            }

            try
            {
                if (nested)
                {
                    var scope = new CancelScope();
                    await scope.RunAsync(ct => TaskGroup.RunAsync(Body, new TaskGroupOptions { Mode = mode }, ct), outer.Token);
                }
                else
                {
                    await TaskGroup.RunAsync(Body, new TaskGroupOptions { Mode = mode }, outer.Token);
                }
            }
            catch (Exception ex)
            {
                outcome = ex;
            }

            Volatile.Read(ref running).ShouldBe(0, "RunAsync returned with a child still running");
            if (!thrown.IsEmpty)
            {
                var aggregate = outcome.ShouldBeOfType<AggregateException>();
                aggregate.InnerExceptions.ShouldBeSubsetOf(thrown);
                thrown.ShouldBeSubsetOf(aggregate.InnerExceptions);
            }
            else if (outcome is not null)
            {
                outcome.ShouldBeAssignableTo<OperationCanceledException>();
                outer.IsCancellationRequested.ShouldBeTrue("only an outer cancel may propagate when no child failed");
            }

            return childCount;
        });

        FlushFinalizers();
        _unobserved.ShouldBeEmpty();
    }

    [Fact]
    public async Task TaskGroupStartAsync_ReadinessRacingCancelAndFailure_EveryStarterEndsAndNoFailureIsLost()
    {
        FlushFinalizers();
        TaskScheduler.UnobservedTaskException += OnUnobserved;

        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var starters = random.Next(2, 8);
            var starterOutcomes = new ConcurrentBag<string>();
            var groupFailures = new ConcurrentBag<Exception>();
            Exception? outcome = null;
            try
            {
                await TaskGroup.RunAsync(async group =>
                {
                    var starts = Enumerable.Range(0, starters).Select(async s =>
                    {
                        var plan = random.Next(5);
                        try
                        {
                            var value = await group.StartAsync<int>(async (ready, ct) =>
                            {
                                await Task.Yield();
                                switch (plan)
                                {
                                    case 0:
                                        throw new ChildFailureException();
                                    case 1:
                                        return;
                                    case 2:
                                        ready.Started(s);
                                        var failure = new ChildFailureException();
                                        groupFailures.Add(failure);
                                        throw failure;
                                    case 3:
                                        group.Cancel("racing readiness");
                                        ready.Started(s);
                                        break;
                                    default:
                                        ready.Started(s);
                                        await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                                        break;
                                }
                            });
                            value.ShouldBe(s);
                            starterOutcomes.Add("started");
                        }
                        catch (ChildFailureException)
                        {
                            plan.ShouldBe(0);
                            starterOutcomes.Add("failed-before-ready");
                        }
                        catch (InvalidOperationException)
                        {
                            starterOutcomes.Add("no-readiness");
                        }
                        catch (OperationCanceledException)
                        {
                            starterOutcomes.Add("cancelled");
                        }
                    }).ToList();
                    await Task.WhenAll(starts);
                    group.Cancel("done");
                });
            }
            catch (Exception ex)
            {
                outcome = ex;
            }

            starterOutcomes.Count.ShouldBe(starters);
            if (!groupFailures.IsEmpty)
            {
                var aggregate = outcome.ShouldBeOfType<AggregateException>();
                groupFailures.ShouldBeSubsetOf(aggregate.InnerExceptions);
                aggregate.InnerExceptions.ShouldAllBe(e => e is ChildFailureException);
            }
            else
            {
                outcome.ShouldBeNull();
            }

            return starters;
        });

        FlushFinalizers();
        _unobserved.ShouldBeEmpty();
    }

    [Fact]
    public async Task CancelScope_NestedScopesCancelledFromRandomLevels_EachCatchesOnlyItsOwn()
    {
        await StressRun.RunAsync(output, async (random, iteration) =>
        {
            var depth = random.Next(2, 6);
            var scopes = Enumerable.Range(0, depth).Select(_ => new CancelScope()).ToArray();
            var cancelled = random.Next(depth);
            using var go = new SemaphoreSlim(0);

            async Task Level(int level, CancellationToken ct)
            {
                if (level == depth)
                {
                    go.Release();
                    await Task.Delay(Timeout.InfiniteTimeSpan, ct);
                    return;
                }

                await scopes[level].RunAsync(inner => Level(level + 1, inner), ct);
            }

            var run = Task.Run(() => Level(0, CancellationToken.None));
            (await go.WaitAsync(StressRun.HangBound)).ShouldBeTrue();
            scopes[cancelled].Cancel("level " + cancelled);
            await run;

            for (var level = 0; level < depth; level++)
            {
                scopes[level].CancelledCaught.ShouldBe(level == cancelled, $"level {level}, cancelled {cancelled}");
                scopes[level].IsActive.ShouldBeFalse();
            }

            return depth;
        });
    }

    private static void FlushFinalizers()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        _unobserved.Enqueue(e.Exception);
        output.WriteLine("unobserved: " + e.Exception);
    }

    private sealed class ChildFailureException() : Exception("child failed");
}
