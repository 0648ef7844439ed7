using System.Collections.Concurrent;

namespace MicroIo.Tests;

public class ActorCoreTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Serial_ItemsBeforeAndAfterRunStarts_HandledInOrder()
    {
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, ct) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        });
        actor.Submit(1);
        actor.Submit(2);

        var run = actor.RunAsync();
        actor.Submit(3);
        actor.Close();

        await run.WaitAsync(s_bound);
        handled.ShouldBe([1, 2, 3]);
        actor.IsConcurrent.ShouldBeFalse();
    }

    [Fact]
    public async Task Serial_HandlersNeverOverlap()
    {
        var active = 0;
        var maxActive = 0;
        var actor = new ActorCore<int>(async (item, ct) =>
        {
            var now = Interlocked.Increment(ref active);
            maxActive = Math.Max(maxActive, now);
            await Task.Yield();
            Interlocked.Decrement(ref active);
        });
        for (var i = 0; i < 100; i++)
        {
            actor.Submit(i);
        }

        actor.Close();
        await actor.RunAsync().WaitAsync(s_bound);

        maxActive.ShouldBe(1);
    }

    [Fact]
    public async Task Serial_HandlerThrows_RunThrowsItAndMailboxFailsKeepingTheRest()
    {
        var error = new IOException("handler broke");
        var actor = new ActorCore<int>((item, ct) => item == 2 ? throw error : Task.CompletedTask);
        actor.Submit(1);
        actor.Submit(2);
        actor.Submit(3);

        var ex = await Should.ThrowAsync<IOException>(actor.RunAsync().WaitAsync(s_bound));

        ex.ShouldBeSameAs(error);
        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Submit(4).ShouldBeFalse();
        actor.Mailbox.Stats.Dropped.ShouldBe(1);
        actor.Drain().ShouldBe([3]);
    }

    [Fact]
    public async Task Serial_AsyncHandlerFaultsAfterAnAwait_RunThrowsItAndMailboxFailsKeepingTheRest()
    {
        var error = new IOException("handler broke later");
        var handled = new List<int>();
        var actor = new ActorCore<int>(async (item, ct) =>
        {
            await Task.Yield();
            handled.Add(item);
            if (item == 2)
            {
                throw error;
            }
        });
        actor.Submit(1);
        actor.Submit(2);
        actor.Submit(3);

        var ex = await Should.ThrowAsync<IOException>(actor.RunAsync().WaitAsync(s_bound));

        ex.ShouldBeSameAs(error);
        handled.ShouldBe([1, 2]);
        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Drain().ShouldBe([3]);
    }

    [Fact]
    public async Task Serial_HandlerReturnsNullTask_RunThrowsNullReferenceAndMailboxFailsKeepingTheRest()
    {
        var actor = new ActorCore<int>((item, ct) => item == 2 ? null! : Task.CompletedTask);
        actor.Submit(1);
        actor.Submit(2);
        actor.Submit(3);

        var ex = await Should.ThrowAsync<NullReferenceException>(actor.RunAsync().WaitAsync(s_bound));

        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Drain().ShouldBe([3]);
        (await Should.ThrowAsync<NullReferenceException>(actor.Mailbox.GetAsync().AsTask().WaitAsync(s_bound))).ShouldBeSameAs(ex);
    }

    [Fact]
    public async Task Serial_SynchronousAndAsynchronousHandlersMixed_AllHandledInOrderAndRunEndsAtClose()
    {
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, ct) =>
        {
            if (item % 3 != 0)
            {
                handled.Add(item);
                return Task.CompletedTask;
            }

            return AddLaterAsync(item);
        });
        for (var i = 0; i < 30; i++)
        {
            actor.Submit(i);
        }

        actor.Close();
        await actor.RunAsync().WaitAsync(s_bound);

        handled.ShouldBe(Enumerable.Range(0, 30));
        actor.Mailbox.Stats.ShouldBe(new ChannelStats(30, 30, 0, 0, true));

        async Task AddLaterAsync(int item)
        {
            await Task.Yield();
            handled.Add(item);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Serial_HandlerStoppedByItsOwnCancelledScope_FailsTheMailboxLikeAnyHandlerFailure(bool asynchronous)
    {
        // The handler's own scope does not catch its cancellation (Enter, not RunAsync), so it escapes the handler: a
        // failure of the handler, not the run's cancellation, whether it is thrown synchronously or after an await.
        Func<int, CancellationToken, Task> handler = asynchronous
            ? async (item, ct) =>
            {
                await Task.Yield();
                CancelOwnScopeAndCheckpoint();
            }
            : (item, ct) =>
            {
                // Thrown synchronously, while the handler's scope is still entered.
                CancelOwnScopeAndCheckpoint();
                return Task.CompletedTask;
            };
        var actor = new ActorCore<int>(handler);
        actor.Submit(1);
        actor.Submit(2);

        var ex = (await Caught.ExceptionAsync(actor.RunAsync())).ShouldBeAssignableTo<OperationCanceledException>();

        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Drain().ShouldBe([2]);
        (await Caught.ExceptionAsync(actor.Mailbox.GetAsync().AsTask())).ShouldBeSameAs(ex);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Concurrent_HandlerStoppedByItsOwnCancelledScope_FailsTheMailboxLikeAnyHandlerFailure(bool asynchronous)
    {
        Func<int, Action, CancellationToken, Task> handler = asynchronous
            ? async (item, release, ct) =>
            {
                await Task.Yield();
                CancelOwnScopeAndCheckpoint();
            }
            : (item, release, ct) =>
            {
                CancelOwnScopeAndCheckpoint();
                return Task.CompletedTask;
            };
        var actor = new ActorCore<int>(handler);
        actor.Submit(1);
        actor.Submit(2);

        var run = actor.RunAsync().WaitAsync(s_bound);
        var error = await Should.ThrowAsync<AggregateException>(run);

        error.InnerExceptions.ShouldHaveSingleItem().ShouldBeAssignableTo<OperationCanceledException>();
        actor.Mailbox.IsClosed.ShouldBeTrue();
        actor.Drain().ShouldBe([2]);
    }

    private static void CancelOwnScopeAndCheckpoint()
    {
        var inner = new CancelScope();
        using (inner.Enter())
        {
            inner.Cancel();
            Checkpoint.ThrowIfCancelled();
        }
    }


    [Fact]
    public async Task Serial_MailboxFailedFromOutside_RunThrowsThatFailureAfterItems()
    {
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, ct) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        });
        var failure = new IOException("peer");
        actor.Submit(1);
        actor.Fail(failure);

        (await Should.ThrowAsync<IOException>(actor.RunAsync().WaitAsync(s_bound))).ShouldBeSameAs(failure);
        handled.ShouldBe([1]);
    }

    [Fact]
    public async Task Serial_Cancelled_StopsWithoutFailingMailbox()
    {
        using var cts = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var actor = new ActorCore<int>(async (item, ct) =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        });
        actor.Submit(1);

        var run = actor.RunAsync(cts.Token);
        await started.Task.WaitAsync(s_bound);
        await cts.CancelAsync();

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
        actor.Mailbox.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public async Task Concurrent_CancelledWhileAHandlerWaitsOnTheRunsTokenItself_StopsWithoutFailingMailbox()
    {
        using var cts = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            // Registered after the run's own link to the token, so the cancellation reaches this wait first, and ends the
            // handler inline (no context to return to) before it reaches the run.
            var wait = new TaskCompletionSource();
            using var registration = cts.Token.Register(() => wait.TrySetCanceled(cts.Token));
            started.SetResult();
            await wait.Task.ConfigureAwait(false);
        });
        actor.Submit(1);

        // Off the test's synchronization context: the actor awaits its handlers on the caller's, and the race needs inline continuations.
        var run = Task.Run(() => actor.RunAsync(cts.Token));
        await started.Task.WaitAsync(s_bound);
        await Task.Run(cts.Cancel);

        await Should.ThrowAsync<OperationCanceledException>(run.WaitAsync(s_bound));
        actor.Mailbox.IsClosed.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_Twice_Throws()
    {
        var actor = new ActorCore<int>((i, ct) => Task.CompletedTask);
        var run = actor.RunAsync();

        await Should.ThrowAsync<InvalidOperationException>(actor.RunAsync());

        actor.Close();
        await run.WaitAsync(s_bound);
    }

    [Fact]
    public void NullHandler_Throws()
    {
        Should.Throw<ArgumentNullException>(() => new ActorCore<int>((Func<int, CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => new ActorCore<int>((Func<int, Action, CancellationToken, Task>)null!));
    }

    [Fact]
    public async Task Concurrent_WithoutRelease_OneAtATimeInOrder()
    {
        var handled = new List<int>();
        var active = 0;
        var maxActive = 0;
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            var now = Interlocked.Increment(ref active);
            maxActive = Math.Max(maxActive, now);
            await Task.Yield();
            lock (handled)
            {
                handled.Add(item);
            }

            Interlocked.Decrement(ref active);
        });
        for (var i = 0; i < 20; i++)
        {
            actor.Submit(i);
        }

        actor.Close();
        await actor.RunAsync().WaitAsync(s_bound);

        actor.IsConcurrent.ShouldBeTrue();
        maxActive.ShouldBe(1);
        handled.ShouldBe(Enumerable.Range(0, 20));
    }

    [Fact]
    public async Task Concurrent_WithRelease_NextStartsBeforePreviousFinishes()
    {
        var starts = new ConcurrentQueue<int>();
        var finishes = new ConcurrentQueue<int>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var allStarted = new CountdownEvent(3);
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            starts.Enqueue(item);
            allStarted.Signal();
            release();
            release();
            await gate.Task;
            finishes.Enqueue(item);
        });
        actor.Submit(1);
        actor.Submit(2);
        actor.Submit(3);
        actor.Close();

        var run = actor.RunAsync();
        await Task.Run(() => allStarted.Wait(s_bound)).WaitAsync(s_bound);
        finishes.ShouldBeEmpty();
        run.IsCompleted.ShouldBeFalse();
        gate.SetResult();

        await run.WaitAsync(s_bound);
        starts.ShouldBe([1, 2, 3]);
        finishes.Count.ShouldBe(3);
    }

    [Fact]
    public async Task Concurrent_HandlerThrowsBeforeRelease_AggregateAndNoItemLost()
    {
        for (var iteration = 0; iteration < 50; iteration++)
        {
            var handled = new ConcurrentBag<int>();
            var error = new IOException("boom");
            var actor = new ActorCore<int>(async (item, release, ct) =>
            {
                handled.Add(item);
                if (item == 5)
                {
                    throw error;
                }

                release();
                await Task.Yield();
            });
            for (var i = 0; i < 20; i++)
            {
                actor.Submit(i);
            }

            var ex = await Should.ThrowAsync<AggregateException>(actor.RunAsync().WaitAsync(s_bound));

            ex.InnerExceptions.Single().ShouldBeSameAs(error);
            actor.Mailbox.IsClosed.ShouldBeTrue();
            var left = actor.Drain();
            (handled.Count + left.Count).ShouldBe(20, $"iteration {iteration}");
            handled.Concat(left).Order().ShouldBe(Enumerable.Range(0, 20));
            actor.Submit(99).ShouldBeFalse();
        }
    }

    [Fact]
    public async Task Concurrent_HandlerFailsAfterRelease_EveryItemHandledToTheEndOrLeftInMailbox()
    {
        for (var iteration = 0; iteration < 100; iteration++)
        {
            var handled = new ConcurrentBag<int>();
            var cancelled = new ConcurrentBag<int>();
            var error = new IOException("after release");
            var actor = new ActorCore<int>(async (item, release, ct) =>
            {
                release();
                await Task.Yield();
                if (item == 1)
                {
                    throw error;
                }

                try
                {
                    await Checkpoint.YieldAsync(ct);
                    handled.Add(item);
                }
                catch (OperationCanceledException)
                {
                    cancelled.Add(item);
                    throw;
                }
            });
            for (var i = 1; i <= 50; i++)
            {
                actor.Submit(i);
            }

            var ex = await Should.ThrowAsync<AggregateException>(actor.RunAsync().WaitAsync(s_bound));

            ex.InnerExceptions.Single().ShouldBeSameAs(error);
            cancelled.ShouldBeEmpty($"iteration {iteration}");
            var left = actor.Drain();
            (handled.Count + 1 + left.Count).ShouldBe(50, $"iteration {iteration}");
        }
    }

    [Fact]
    public async Task Concurrent_RunsHandlersOnCallersContext()
    {
        using var loop = new SingleThreadContext();
        var threads = new ConcurrentBag<int>();
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            threads.Add(Environment.CurrentManagedThreadId);
            release();
            await Task.Yield();
            threads.Add(Environment.CurrentManagedThreadId);
        });
        var serial = new ActorCore<int>(async (item, ct) =>
        {
            threads.Add(Environment.CurrentManagedThreadId);
            await Task.Yield();
            threads.Add(Environment.CurrentManagedThreadId);
        });
        for (var i = 0; i < 5; i++)
        {
            actor.Submit(i);
            serial.Submit(i);
        }

        actor.Close();
        serial.Close();

        await loop.RunAsync(async () =>
        {
            await actor.RunAsync();
            await serial.RunAsync();
            return true;
        }).WaitAsync(s_bound);

        threads.Count.ShouldBe(20);
        threads.ShouldAllBe(id => id == loop.ThreadId);
    }

    [Fact]
    public async Task PriorityMailbox_DrivesActorInPriorityOrder()
    {
        var mailbox = new PriorityMailbox<int>(x => x);
        var handled = new List<int>();
        var actor = new ActorCore<int>((item, ct) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        }, mailbox);
        foreach (var item in new[] { 1, 5, 3 })
        {
            actor.Submit(item);
        }

        actor.Close();
        await actor.RunAsync().WaitAsync(s_bound);

        handled.ShouldBe([5, 3, 1]);
    }

    [Fact]
    public async Task SubmitRacingClose_EveryItemHandledOrDropped()
    {
        const int producers = 4;
        const int perProducer = 25_000;
        var handled = 0;
        var accepted = 0;
        var dropped = 0;
        var actor = new ActorCore<int>((item, ct) =>
        {
            Interlocked.Increment(ref handled);
            return Task.CompletedTask;
        });
        var run = Task.Run(() => actor.RunAsync());
        var submitted = 0;
        var closeAt = new Random().Next(1, producers * perProducer);
        var threads = Enumerable.Range(0, producers).Select(_ => new Thread(() =>
        {
            for (var i = 0; i < perProducer; i++)
            {
                if (Interlocked.Increment(ref submitted) == closeAt)
                {
                    actor.Close();
                }

                if (actor.Submit(i))
                {
                    Interlocked.Increment(ref accepted);
                }
                else
                {
                    Interlocked.Increment(ref dropped);
                }
            }
        })).ToList();

        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join(TimeSpan.FromSeconds(60)).ShouldBeTrue());
        await run.WaitAsync(TimeSpan.FromSeconds(60));

        handled.ShouldBe(accepted);
        (accepted + dropped).ShouldBe(producers * perProducer);
        actor.Mailbox.Stats.ShouldBe(new ChannelStats(accepted, accepted, dropped, 0, true));
    }
}
