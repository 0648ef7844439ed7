using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests.Interleavings;

/// <summary>
/// Explores the registry's contested points (resolve vs timeout, resolve vs cancel, register vs close, pop vs
/// reregister) under many seeded interleavings: the yields are injected from inside the send delegate and from the
/// racing answerers, which the public API allows.
/// </summary>
public class RegistryInterleavingTests
{
    private const int Seeds = 200;

    [Fact]
    public async Task RequestAsync_ResolveRacingFakeTimeout_ExactlyOneOutcomeAndItMatchesTheAnswerer()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var time = new FakeTimeProvider();
            var registry = new RequestRegistry<int, int>(time);
            var resolved = false;
            ReplyHandle<int, int>? handle = null;

            var request = registry.RequestAsync(1, async reply =>
            {
                handle = reply;
                await sched.PointAsync();
            }, TimeSpan.FromSeconds(1)).AsTask();
            await sched.RaceAsync(
                async () =>
                {
                    while (handle is null)
                    {
                        await Task.Yield();
                    }

                    await sched.PointAsync();
                    resolved = handle.Value.Resolve(42);
                },
                async () =>
                {
                    await sched.PointAsync();
                    time.Advance(TimeSpan.FromSeconds(1));
                });

            // A timer that was set after the advance still needs the clock to move; only then is the outcome decided.
            while (!request.IsCompleted)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                await Task.Yield();
            }

            var outcome = await Record.ExceptionAsync(() => request);
            if (resolved)
            {
                outcome.ShouldBeNull();
                (await request).ShouldBe(42);
            }
            else
            {
                outcome.ShouldBeOfType<TimeoutException>();
            }

            registry.Count.ShouldBe(0);
        });
    }

    [Fact]
    public async Task WaitAsync_ResolveRacingCancel_ValueExactlyWhenResolveReportedSuccess()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var registry = new RequestRegistry<int, int>();
            var waiter = registry.Register(1);
            using var cts = new CancellationTokenSource();
            var resolved = false;

            var wait = registry.WaitAsync(1, waiter, cancellationToken: cts.Token).AsTask();
            await sched.RaceAsync(
                async () =>
                {
                    await sched.PointAsync();
                    resolved = registry.Resolve(1, 5);
                },
                async () =>
                {
                    await sched.PointAsync();
                    await cts.CancelAsync();
                });

            var outcome = await Record.ExceptionAsync(() => wait);
            if (resolved)
            {
                outcome.ShouldBeNull();
            }
            else
            {
                outcome.ShouldBeAssignableTo<OperationCanceledException>();
            }

            registry.Count.ShouldBe(0);
        });
    }

    [Fact]
    public async Task Register_RacingCloseAndFailAll_NoRequestIsLeftPendingAndEveryWaiterEnds()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var registry = new RequestRegistry<int, int>();
            var waiters = new System.Collections.Concurrent.ConcurrentBag<RequestWaiter<int>>();

            await sched.RaceAsync(
                async () =>
                {
                    for (var k = 0; k < 8; k++)
                    {
                        await sched.PointAsync();
                        try
                        {
                            waiters.Add(registry.Register(k));
                        }
                        catch (ClosedResourceException)
                        {
                            return;
                        }
                    }
                },
                async () =>
                {
                    await sched.PointAsync();
                    registry.FailAll(new IOException("all"));
                },
                async () =>
                {
                    await sched.PointAsync();
                    registry.Close();
                });

            registry.Count.ShouldBe(0);
            foreach (var waiter in waiters)
            {
                waiter.IsCompleted.ShouldBeTrue();
            }
        });
    }

    [Fact]
    public async Task ReplyHandle_OldHandleRacingReregistration_NeverAnswersTheNewRequest()
    {
        await Interleaver.ExploreAsync(Seeds, async sched =>
        {
            var registry = new RequestRegistry<int, int>();
            var old = registry.Reply(1);
            RequestWaiter<int>? newer = null;
            var oldResolved = false;

            await sched.RaceAsync(
                async () =>
                {
                    await sched.PointAsync();
                    oldResolved = old.Resolve(1);
                },
                async () =>
                {
                    await sched.PointAsync();
                    if (old.Pop())
                    {
                        await sched.PointAsync();
                        newer = registry.Register(1);
                    }
                });

            if (newer is not null)
            {
                // The old handle was popped before it could answer: it must not have answered the newer request.
                oldResolved.ShouldBeFalse();
                newer.IsCompleted.ShouldBeFalse();
                registry.Contains(1).ShouldBeTrue();
            }
            else
            {
                oldResolved.ShouldBeTrue();
                registry.Count.ShouldBe(0);
            }
        });
    }
}
