using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

/// <summary>
/// The waiter is the one object a request allocates: blocking waits block on it, the first asynchronous wait awaits it
/// directly, its task is made only when read, and its timer and token registration go away when it ends.
/// </summary>
public class WaiterAsSourceTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    // ---- one allocation ----

    [Fact]
    public void Request_AnsweredInSend_AllocatesOnlyTheWaiter()
    {
        var registry = new RequestRegistry<int, int>();
        Action<ReplyHandle<int, int>> send = static reply => reply.Resolve(reply.Key);
        registry.Request(0, send).ShouldBe(0);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var key = 1; key <= 100; key++)
        {
            registry.Request(key, send);
        }

        var perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / 100.0;

        // The waiter of a RequestRegistry<int, int> is about 120 bytes; a task, a handle or a timeout exception more would pass 136.
        perRequest.ShouldBeLessThanOrEqualTo(136);
    }

    [Fact]
    public void Request_AnsweredByAnotherThread_AllocatesOnlyTheWaiterOnTheCallingThread()
    {
        var registry = new RequestRegistry<int, int>();

        // The benchmark's transport, which allocates nothing per message once warm.
        var queue = new System.Collections.Concurrent.ConcurrentQueue<int>();
        using var signal = new SemaphoreSlim(0);
        var responder = new Thread(() =>
        {
            while (true)
            {
                signal.Wait();
                while (queue.TryDequeue(out var key))
                {
                    if (key < 0)
                    {
                        return;
                    }

                    registry.Resolve(key, key);
                }
            }
        });
        responder.Start();
        Action<ReplyHandle<int, int>> send = reply =>
        {
            queue.Enqueue(reply.Key);
            signal.Release();
        };
        for (var key = 1000; key < 1100; key++)
        {
            registry.Request(key, send).ShouldBe(key);
        }

        var sum = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var key = 1; key <= 100; key++)
        {
            sum += registry.Request(key, send);
        }

        var perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / 100.0;
        sum.ShouldBe(5050);
        queue.Enqueue(-1);
        signal.Release();
        responder.Join(s_bound).ShouldBeTrue();

        perRequest.ShouldBeLessThanOrEqualTo(136);
    }

    [Fact]
    public async Task RequestAsync_Pending_AllocatesOnlyTheWaiter()
    {
        Action<ReplyHandle<int, int>> send = static _ => { };
        (await AllocationPerPendingRequestAsync((registry, key) => registry.RequestAsync(key, send))).ShouldBeLessThanOrEqualTo(136);
    }

    // ---- the value task of the first wait ----

    [Fact]
    public async Task RequestAsync_AwaitedDirectly_ReturnsTheValueFromAnotherThread()
    {
        var registry = new RequestRegistry<int, string>();
        var responder = new Thread(() => registry.Resolve(1, "one"));

        var value = await registry.RequestAsync(1, _ => responder.Start());

        value.ShouldBe("one");
        responder.Join(s_bound).ShouldBeTrue();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_Pending_ReportsEachOutcomeInTheValueTaskStatus()
    {
        var registry = new RequestRegistry<int, int>();
        var resolved = registry.Register(1);
        var failed = registry.Register(2);
        var cancelled = registry.Register(3);
        var pending = registry.Register(4);
        var resolvedWait = registry.WaitAsync(1, resolved);
        var failedWait = registry.WaitAsync(2, failed);
        var cancelledWait = registry.WaitAsync(3, cancelled);
        var pendingWait = registry.WaitAsync(4, pending);

        registry.Resolve(1, 10);
        registry.Fail(2, new IOException("no"));
        cancelled.TrySetCanceled();

        resolvedWait.IsCompletedSuccessfully.ShouldBeTrue();
        failedWait.IsFaulted.ShouldBeTrue();
        cancelledWait.IsCanceled.ShouldBeTrue();
        pendingWait.IsCompleted.ShouldBeFalse();
        (await resolvedWait).ShouldBe(10);
        await Should.ThrowAsync<IOException>(failedWait.AsTask());
        await Should.ThrowAsync<OperationCanceledException>(cancelledWait.AsTask());
        registry.Resolve(4, 40);
        (await pendingWait).ShouldBe(40);
    }

    [Fact]
    public async Task WaitAsync_ResultReadBeforeTheEnd_ThrowsInvalidOperation()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter);

        Should.Throw<InvalidOperationException>(() => ((IValueTaskSource<int>)waiter).GetResult(0));
        registry.Resolve(1, 5);
        (await wait).ShouldBe(5);
    }

    [Fact]
    public async Task WaitAsync_TwoWaitsOnOneWaiter_BothGetTheValue()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var first = registry.WaitAsync(1, waiter).AsTask();
        var second = registry.WaitAsync(1, waiter, TimeSpan.FromMinutes(1)).AsTask();

        registry.Resolve(1, 7).ShouldBeTrue();

        (await first.WaitAsync(s_bound)).ShouldBe(7);
        (await second.WaitAsync(s_bound)).ShouldBe(7);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_SecondWaitTimesOut_EndsTheWaiterForBoth()
    {
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<string, int>(time);
        var waiter = registry.Register("k");
        var first = registry.WaitAsync("k", waiter).AsTask();
        var second = registry.WaitAsync("k", waiter, TimeSpan.FromSeconds(2)).AsTask();

        time.Advance(TimeSpan.FromSeconds(2));

        (await Should.ThrowAsync<TimeoutException>(second.WaitAsync(s_bound))).Message.ShouldContain("k");
        await Should.ThrowAsync<TimeoutException>(first.WaitAsync(s_bound));
        registry.Contains("k").ShouldBeFalse();
    }

    [Fact]
    public async Task WaitAsync_SecondWaitCancelled_ThrowsPlainOperationCanceledWithItsToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        var first = registry.WaitAsync(1, waiter).AsTask();
        var second = registry.WaitAsync(1, waiter, cts.Token).AsTask();

        await cts.CancelAsync();

        var error = await Catch(second);
        error.ShouldNotBeNull().GetType().ShouldBe(typeof(OperationCanceledException));
        ((OperationCanceledException)error).CancellationToken.ShouldBe(cts.Token);
        (await Catch(first)).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_CancelledWhilePending_AwaitThrowsPlainOperationCanceledWithTheToken()
    {
        var registry = new RequestRegistry<int, int>();
        using var cts = new CancellationTokenSource();
        var request = registry.RequestAsync(1, _ => { }, TimeSpan.FromMinutes(1), cts.Token);

        await cts.CancelAsync();

        try
        {
            await request;
            throw new ShouldAssertException("the request should have been cancelled");
        }
        catch (OperationCanceledException error)
        {
            error.GetType().ShouldBe(typeof(OperationCanceledException));
            error.CancellationToken.ShouldBe(cts.Token);
        }

        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_WaiterCancelledDirectlyWithOtherToken_ReportsThatToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var waitCts = new CancellationTokenSource();
        using var ownerCts = new CancellationTokenSource();
        var wait = registry.WaitAsync(1, waiter, waitCts.Token).AsTask();

        waiter.TrySetCanceled(ownerCts.Token).ShouldBeTrue();

        (await Catch(wait)).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(ownerCts.Token);
        waiter.Task.IsCanceled.ShouldBeTrue();
    }

    // ---- blocking ----

    [Fact]
    public void Wait_TwoThreadsBlockOnOneWaiter_BothWake()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var results = new int[2];
        var threads = Enumerable.Range(0, 2).Select(i => new Thread(() => results[i] = registry.Wait(1, waiter))).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        registry.Resolve(1, 3).ShouldBeTrue();

        foreach (var thread in threads)
        {
            thread.Join(s_bound).ShouldBeTrue();
        }

        results.ShouldBe([3, 3]);
    }

    [Fact]
    public void Wait_TwoThreadsBlockOnOneWaiterThatFails_BothThrowTheFailure()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var error = new IOException("gone");
        var caught = new Exception?[2];
        using var blocked = new CountdownEvent(2);
        var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
        {
            blocked.Signal();
            caught[i] = Record.Exception(() => registry.Wait(1, waiter, TimeSpan.FromMinutes(1)));
        })).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        blocked.Wait(s_bound).ShouldBeTrue();
        registry.Fail(1, error).ShouldBeTrue();

        foreach (var thread in threads)
        {
            thread.Join(s_bound).ShouldBeTrue();
        }

        caught.ShouldAllBe(e => ReferenceEquals(e, error));
    }

    [Fact]
    public void Wait_OneThreadBlocksOnManyWaitersInTurn_EachWaitReturnsItsOwnValue()
    {
        var registry = new RequestRegistry<int, int>();
        using var queue = new System.Collections.Concurrent.BlockingCollection<int>();
        var responder = new Thread(() =>
        {
            foreach (var key in queue.GetConsumingEnumerable())
            {
                // Each answer comes twice: the second finds nothing, and must not wake this thread's next wait early.
                registry.Resolve(key, key * 2);
                registry.Resolve(key, -1);
            }
        });
        responder.Start();

        for (var key = 0; key < 500; key++)
        {
            registry.Request(key, reply => queue.Add(reply.Key), TimeSpan.FromMinutes(1)).ShouldBe(key * 2);
        }

        queue.CompleteAdding();
        responder.Join(s_bound).ShouldBeTrue();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_RealClockTimeout_ThrowsTimeoutAfterTheTimeNotBefore()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        Should.Throw<TimeoutException>(() => registry.Wait(1, waiter, TimeSpan.FromMilliseconds(100)));

        clock.Elapsed.ShouldBeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(90));
        registry.Contains(1).ShouldBeFalse();
    }

    // ---- the task, made when read ----

    [Fact]
    public void Task_ReadTwice_IsTheSameTask()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        var first = waiter.Task;

        waiter.Task.ShouldBeSameAs(first);
        first.IsCompleted.ShouldBeFalse();
    }

    [Fact]
    public async Task Task_ReadAfterTheWaiterEnded_CarriesTheOutcome()
    {
        var registry = new RequestRegistry<int, int>();
        var resolved = registry.Register(1);
        var failed = registry.Register(2);
        var cancelled = registry.Register(3);
        var error = new IOException("no");
        using var cts = new CancellationTokenSource();
        registry.Resolve(1, 11);
        registry.Fail(2, error);
        cancelled.TrySetCanceled(cts.Token);

        (await resolved.Task.WaitAsync(s_bound)).ShouldBe(11);
        failed.Task.Exception!.InnerException.ShouldBeSameAs(error);
        cancelled.Task.IsCanceled.ShouldBeTrue();
        (await Catch(cancelled.Task)).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
    }

    [Fact]
    public void FailAllAndClose_TaskReadLaterOrBefore_LeaveNoUnobservedTaskException()
    {
        UnobservedTaskExceptions.Collect(Fill).ShouldNotContain(x => x.Message.StartsWith("waiter-probe", StringComparison.Ordinal));

        static void Fill()
        {
            var registry = new RequestRegistry<int, int>();
            var readBefore = Enumerable.Range(0, 5).Select(i => registry.Register(i).Task).ToList();
            var readLater = Enumerable.Range(10, 5).Select(registry.Register).ToList();
            registry.FailAll(new IOException("waiter-probe fail-all")).ShouldBe(10);
            readLater.ForEach(w => w.Task.IsFaulted.ShouldBeTrue());
            readBefore.ForEach(t => t.IsFaulted.ShouldBeTrue());

            var closing = new RequestRegistry<int, int>();
            var waiter = closing.Register(1);
            closing.Close(new IOException("waiter-probe close"));
            waiter.Task.IsFaulted.ShouldBeTrue();

            // A send that fails hands its failure to the caller; the handle it passed on sees it too, observed.
            ReplyHandle<int, int> handed = default;
            Should.Throw<IOException>(() => registry.Request(50, reply =>
            {
                handed = reply;
                throw new IOException("waiter-probe send");
            }));
            handed.Waiter.Task.IsFaulted.ShouldBeTrue();
        }
    }

    [Fact]
    public void Fail_TaskReadAndDropped_IsReportedAsUnobserved()
    {
        // Only failures that the registry hands to everyone are marked observed; a single failure read as a task and
        // dropped is the reader's to observe, as with any task.
        static bool Single(Exception x) => x.Message.StartsWith("single-probe", StringComparison.Ordinal);
        UnobservedTaskExceptions.Collect(Fill, seen => seen.Any(Single), rounds: 5).Any(Single).ShouldBeTrue();

        static void Fill()
        {
            var registry = new RequestRegistry<int, int>();
            for (var i = 0; i < 5; i++)
            {
                var waiter = registry.Register(i);
                registry.Fail(i, new IOException("single-probe")).ShouldBeTrue();
                waiter.Task.IsFaulted.ShouldBeTrue();
            }
        }
    }

    [Fact]
    public void HandleFailAndDirectFailure_TaskReadAndDropped_AreReportedAsUnobserved()
    {
        static bool ByHandle(Exception x) => x.Message.StartsWith("handle-probe", StringComparison.Ordinal);
        static bool Direct(Exception x) => x.Message.StartsWith("direct-probe", StringComparison.Ordinal);
        var seen = UnobservedTaskExceptions.Collect(Fill, seen => seen.Any(ByHandle) && seen.Any(Direct), rounds: 5);
        seen.Any(ByHandle).ShouldBeTrue();
        seen.Any(Direct).ShouldBeTrue();

        static void Fill()
        {
            var registry = new RequestRegistry<int, int>();
            for (var i = 0; i < 5; i++)
            {
                var handle = registry.Reply(i);
                handle.Fail(new IOException("handle-probe")).ShouldBeTrue();
                handle.Waiter.Task.IsFaulted.ShouldBeTrue();
                var waiter = registry.Register(100 + i);
                waiter.TrySetException(new IOException("direct-probe")).ShouldBeTrue();
                waiter.Task.IsFaulted.ShouldBeTrue();
            }
        }
    }

    // ---- timers go away ----

    [Fact]
    public async Task RequestAsync_AnsweredBeforeTheTimeout_DisposesItsTimer()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var request = registry.RequestAsync(1, _ => { }, TimeSpan.FromMinutes(1));
        time.Created.ShouldBe(1);

        registry.Resolve(1, 2);

        (await request).ShouldBe(2);
        time.Disposed.ShouldBe(1);
    }

    [Fact]
    public async Task RequestAsync_NoTimeout_CreatesNoTimer()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var request = registry.RequestAsync(1, _ => { });

        registry.Resolve(1, 2);

        (await request).ShouldBe(2);
        time.Created.ShouldBe(0);
    }

    [Fact]
    public void Wait_FakeClockAnsweredBeforeTheTimeout_DisposesItsTimer()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);
        var responder = new Thread(() =>
        {
            while (time.Created == 0)
            {
                Thread.Yield();
            }

            registry.Resolve(1, 9);
        });
        responder.Start();

        registry.Wait(1, waiter, TimeSpan.FromMinutes(1)).ShouldBe(9);

        responder.Join(s_bound).ShouldBeTrue();
        time.Created.ShouldBe(1);
        time.Disposed.ShouldBe(1);
    }

    [Fact]
    public async Task WaitAsync_TimerFires_TimesOutWithTheKey()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<string, int>(time);
        var waiter = registry.Register("slow-1");
        var wait = registry.WaitAsync("slow-1", waiter, TimeSpan.FromSeconds(5));

        time.Fake.Advance(TimeSpan.FromSeconds(5));

        (await Should.ThrowAsync<TimeoutException>(wait.AsTask().WaitAsync(s_bound))).Message.ShouldContain("slow-1");
        time.Disposed.ShouldBe(1);
        registry.Count.ShouldBe(0);
    }

    // ---- reply handles are values ----

    [Fact]
    public void ReplyHandle_Copies_AreEqualAndHashAlike()
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        var copy = handle;
        var other = registry.Reply(2);

        (handle == copy).ShouldBeTrue();
        (handle != copy).ShouldBeFalse();
        handle.Equals(copy).ShouldBeTrue();
        handle.Equals((object)copy).ShouldBeTrue();
        handle.GetHashCode().ShouldBe(copy.GetHashCode());
        (handle == other).ShouldBeFalse();
        (handle != other).ShouldBeTrue();
        handle.Equals((object)other).ShouldBeFalse();
        handle.Equals("not a handle").ShouldBeFalse();
        (default(ReplyHandle<int, int>) == default).ShouldBeTrue();
        default(ReplyHandle<int, int>).GetHashCode().ShouldBe(0);
        (handle == default).ShouldBeFalse();
    }

    [Fact]
    public void ReplyHandle_Default_ThrowsInvalidOperationFromEveryMember()
    {
        var handle = default(ReplyHandle<int, int>);

        Should.Throw<InvalidOperationException>(() => handle.Key);
        Should.Throw<InvalidOperationException>(() => handle.Waiter);
        Should.Throw<InvalidOperationException>(() => handle.Resolve(1));
        Should.Throw<InvalidOperationException>(() => handle.Fail(new IOException()));
        Should.Throw<InvalidOperationException>(() => handle.Pop());
        Should.Throw<InvalidOperationException>(() => handle.Wait(TimeSpan.Zero));
        Should.Throw<InvalidOperationException>(() => handle.Wait(CancellationToken.None));
        Should.Throw<InvalidOperationException>(() => handle.WaitAsync(TimeSpan.Zero).AsTask());
        Should.Throw<InvalidOperationException>(() => handle.WaitAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task ReplyHandle_WaitAsyncTokenOverload_ReturnsTheValue()
    {
        var registry = new RequestRegistry<int, int>();
        var handle = registry.Reply(1);
        var wait = handle.WaitAsync(CancellationToken.None);

        handle.Resolve(4).ShouldBeTrue();

        (await wait).ShouldBe(4);
    }

    // ---- blocked threads ----

    [Fact]
    public void Request_BlockedUntilAnswered_AllocatesOnlyTheWaiter()
    {
        var registry = new RequestRegistry<int, int>();
        var queue = new System.Collections.Concurrent.ConcurrentQueue<RequestWaiter<int>>();
        using var signal = new SemaphoreSlim(0);
        var responder = new Thread(() =>
        {
            while (true)
            {
                signal.Wait();
                while (queue.TryDequeue(out var waiter))
                {
                    if (waiter is null)
                    {
                        return;
                    }

                    // Answers only once the caller has stopped spinning and blocks on its thread's event.
                    SpinWait.SpinUntil(() => waiter.HasBlockedThread, s_bound).ShouldBeTrue();
                    waiter.TrySetResult(7);
                }
            }
        });
        responder.Start();
        Action<ReplyHandle<int, int>> send = reply =>
        {
            queue.Enqueue(reply.Waiter);
            signal.Release();
        };
        registry.Request(0, send, Timeout.InfiniteTimeSpan).ShouldBe(7);

        var sum = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var key = 1; key <= 20; key++)
        {
            sum += registry.Request(key, send, Timeout.InfiniteTimeSpan);
        }

        var perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / 20.0;
        queue.Enqueue(null!);
        signal.Release();
        responder.Join(s_bound).ShouldBeTrue();

        sum.ShouldBe(140);
        perRequest.ShouldBeLessThanOrEqualTo(136);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void Wait_SecondThreadWhileTheFirstIsBlocked_BothWakeAndNeitherStaysRegistered()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var first = 0;
        var blocked = new Thread(() => first = registry.Wait(1, waiter));
        blocked.Start();
        SpinWait.SpinUntil(() => waiter.HasBlockedThread, s_bound).ShouldBeTrue();
        var caller = Thread.CurrentThread;

        // This thread finds the waiter's event taken and blocks on the waiter's task, which it makes; then the answer comes.
        var responder = new Thread(() =>
        {
            SpinWait.SpinUntil(() => waiter.HasTask && caller.ThreadState.HasFlag(ThreadState.WaitSleepJoin), s_bound);
            registry.Resolve(1, 8);
        });
        responder.Start();
        var second = registry.Wait(1, waiter, TimeSpan.FromMinutes(1));

        blocked.Join(s_bound).ShouldBeTrue();
        responder.Join(s_bound).ShouldBeTrue();
        (first, second).ShouldBe((8, 8));
        waiter.HasBlockedThread.ShouldBeFalse();
    }

    [Fact]
    public void Wait_SecondThreadWhileTheFirstIsBlocked_WaiterFails_BothThrowIt()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var error = new IOException("down");
        Exception? first = null;
        var blocked = new Thread(() => first = Record.Exception(() => registry.Wait(1, waiter)));
        blocked.Start();
        SpinWait.SpinUntil(() => waiter.HasBlockedThread, s_bound).ShouldBeTrue();
        var caller = Thread.CurrentThread;
        var responder = new Thread(() =>
        {
            SpinWait.SpinUntil(() => waiter.HasTask && caller.ThreadState.HasFlag(ThreadState.WaitSleepJoin), s_bound);
            registry.Fail(1, error);
        });
        responder.Start();

        var second = Record.Exception(() => registry.Wait(1, waiter));

        blocked.Join(s_bound).ShouldBeTrue();
        responder.Join(s_bound).ShouldBeTrue();
        first.ShouldBeSameAs(error);
        second.ShouldBeSameAs(error);
    }

    [Fact]
    public void Wait_InfiniteWhileBlocked_ReturnsTheAnswerThatComesLater()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var result = 0;
        var caller = new Thread(() => result = registry.Wait(1, waiter, Timeout.InfiniteTimeSpan));
        caller.Start();
        SpinWait.SpinUntil(() => waiter.HasBlockedThread, s_bound).ShouldBeTrue();

        waiter.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 12).ShouldBeTrue();

        caller.Join(s_bound).ShouldBeTrue();
        result.ShouldBe(12);
    }

    [Fact]
    public void Wait_BlockedThreadInterrupted_RemovesTheKeyEndsTheWaiterAndThrows()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);

        var caught = InterruptABlockedWait(registry, waiter);

        registry.Contains(1).ShouldBeFalse();

        // The request ends with the interrupt, so nobody watching the waiter's task is left waiting.
        waiter.IsCompleted.ShouldBeTrue();
        waiter.Task.Exception!.InnerException.ShouldBeSameAs(caught);
    }

    [Fact]
    public void Wait_TimesOutWithATaskNobodyAwaits_ReportsNoUnobservedTaskException()
    {
        // A unique key, so that only this test's timeout matches, whatever other tests leave for the finalizer.
        var key = Guid.NewGuid().ToString();
        UnobservedTaskExceptions.Collect(() => TimeOutWithAnUnawaitedTask(key)).ShouldNotContain(x => x.Message.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public void Wait_InterruptedWithATaskNobodyAwaits_ReportsNoUnobservedTaskException()
    {
        // The interrupted thread gets the exception itself, so the waiter's task, read and dropped, must not report it.
        var interrupts = new List<Exception>();
        var seen = UnobservedTaskExceptions.Collect(() => InterruptWithAnUnawaitedTask(interrupts), rounds: 3);
        interrupts.Count.ShouldBe(3);
        seen.ShouldNotContain(x => interrupts.Contains(x));
    }

    [Fact]
    public void WaitAsync_AnsweredAndNeverAwaited_DoesNotKeepTheWaiterAliveOnItsToken()
    {
        using var longLived = new CancellationTokenSource();
        var waiter = AnswerAWaitNobodyAwaits(longLived.Token);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        waiter.IsAlive.ShouldBeFalse();
        GC.KeepAlive(longLived);
    }

    // ---- outcomes ----

    [Fact]
    public void Wait_WaiterCancelledByItsOwnerAndTheWaitTokenCancelled_ReportsTheWaitToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var owner = new CancellationTokenSource();
        using var caller = new CancellationTokenSource();
        waiter.TrySetCanceled(owner.Token);
        caller.Cancel();

        var error = Should.Throw<OperationCanceledException>(() => registry.Wait(1, waiter, caller.Token));

        error.CancellationToken.ShouldBe(caller.Token);
        Should.Throw<OperationCanceledException>(() => registry.Wait(1, waiter)).CancellationToken.ShouldBe(owner.Token);
    }

    [Fact]
    public async Task WaitAsync_ZeroTimeoutWhilePending_EndsAtOnceWithoutATimer()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<int, int>(time);
        var waiter = registry.Register(1);

        var wait = registry.WaitAsync(1, waiter, TimeSpan.Zero);

        wait.IsCompleted.ShouldBeTrue();
        time.Created.ShouldBe(0);
        await Should.ThrowAsync<TimeoutException>(wait.AsTask());
    }

    [Fact]
    public async Task WaitAsync_CancelledTokenWhilePending_EndsAtOnceWithThatToken()
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var wait = registry.WaitAsync(1, waiter, cts.Token);

        wait.IsCompleted.ShouldBeTrue();
        (await Catch(wait.AsTask())).ShouldBeOfType<OperationCanceledException>().CancellationToken.ShouldBe(cts.Token);
    }

    [Fact]
    public async Task RequestAsync_AnsweredWhileTheTimerIsBeingMade_DisposesTheTimer()
    {
        var time = new CountingTimeProvider();
        var registry = new RequestRegistry<int, int>(time);

        // The answer comes after the wait checked the waiter and before it stored its timer.
        time.OnCreate = () => registry.Resolve(1, 3).ShouldBeTrue();
        var request = registry.RequestAsync(1, _ => { }, TimeSpan.FromMinutes(1));

        (await request).ShouldBe(3);
        time.Created.ShouldBe(1);
        time.Disposed.ShouldBe(1);
    }

    [Fact]
    public void TrySetResult_WaiterEndedWhileItLeavesTheRegistry_ReturnsFalse()
    {
        RequestWaiter<int>? waiter = null;
        var reentered = false;

        // The comparer runs while the waiter takes its key out: it ends the waiter by another path at that moment.
        var comparer = new HookComparer(() =>
        {
            if (waiter is not null && !reentered)
            {
                reentered = true;
                waiter.TrySetException(new IOException("first")).ShouldBeTrue();
            }
        });
        var registry = new RequestRegistry<int, int>(comparer, TimeProvider.System);
        waiter = registry.Register(1);

        waiter.TrySetResult(2).ShouldBeFalse();

        reentered.ShouldBeTrue();
        Should.Throw<IOException>(() => registry.Wait(1, waiter)).Message.ShouldBe("first");
    }

    [Fact]
    public async Task RequestAsync_AsyncSendAnswersThenFails_PropagatesTheSendFailure()
    {
        var registry = new RequestRegistry<int, int>();
        var error = new IOException("send broke");

        var request = registry.RequestAsync(1, async reply =>
        {
            reply.Resolve(5).ShouldBeTrue();
            await Task.Yield();
            throw error;
        }).AsTask();

        (await Should.ThrowAsync<IOException>(request.WaitAsync(s_bound))).ShouldBeSameAs(error);
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task RequestAsync_SendTaskAlreadyComplete_AllocatesOnlyTheWaiter()
    {
        Func<ReplyHandle<int, int>, Task> send = static _ => Task.CompletedTask;
        (await AllocationPerPendingRequestAsync((registry, key) => registry.RequestAsync(key, send))).ShouldBeLessThanOrEqualTo(136);
    }

    [Fact]
    public async Task RequestAsync_AsyncOverloadWithCancelledToken_FailsAtOnceWithoutSending()
    {
        var registry = new RequestRegistry<int, int>();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var sent = false;

        var request = registry.RequestAsync(1, _ =>
        {
            sent = true;
            return Task.CompletedTask;
        }, cts.Token);

        request.IsFaulted.ShouldBeTrue();
        (await Catch(request.AsTask())).ShouldBeOfType<OperationCanceledException>().CancellationToken.ShouldBe(cts.Token);
        sent.ShouldBeFalse();
        registry.Count.ShouldBe(0);
    }

    [Fact]
    public void NullKeyAndNullSecondArgument_ReportTheKeyFirst()
    {
        var registry = new RequestRegistry<string, int>();

        Should.Throw<ArgumentNullException>(() => registry.Fail(null!, null!)).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.RequestAsync(null!, (Func<ReplyHandle<string, int>, Task>)null!).AsTask()).ParamName.ShouldBe("key");
        Should.Throw<ArgumentNullException>(() => registry.Contains(null!)).ParamName.ShouldBe("key");
    }

    [Fact]
    public void WaitAsync_LongestTimeout_IsAccepted()
    {
        var registry = new RequestRegistry<int, int>(new FakeTimeProvider());
        var waiter = registry.Register(1);

        var wait = registry.WaitAsync(1, waiter, TimeSpan.FromMilliseconds(int.MaxValue));

        registry.Resolve(1, 1).ShouldBeTrue();
        wait.IsCompletedSuccessfully.ShouldBeTrue();
    }

    [Fact]
    public void ReplyHandle_DifferentRequests_HashApart()
    {
        var registry = new RequestRegistry<int, int>();

        var hashes = Enumerable.Range(0, 8).Select(i => registry.Reply(i).GetHashCode()).ToHashSet();

        hashes.Count.ShouldBeGreaterThan(1);
    }

    private static async Task<Exception?> Catch(Task task)
    {
        try
        {
            await task.WaitAsync(s_bound);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>An equality comparer that runs a hook whenever the registry hashes a key (which it does under its lock).</summary>
    private sealed class HookComparer(Action hook) : IEqualityComparer<int>
    {
        public bool Equals(int x, int y) => x == y;

        public int GetHashCode(int obj)
        {
            hook();
            return obj;
        }
    }

    /// <summary>A fake clock that counts the timers it creates and the ones that are disposed.</summary>
    private sealed class CountingTimeProvider : TimeProvider
    {
        private int _created;
        private int _disposed;

        public FakeTimeProvider Fake { get; } = new();

        public int Created => Volatile.Read(ref _created);

        public int Disposed => Volatile.Read(ref _disposed);

        public override DateTimeOffset GetUtcNow() => Fake.GetUtcNow();

        public override long GetTimestamp() => Fake.GetTimestamp();

        /// <summary>Gets or sets code that runs while a timer is made, before it is returned.</summary>
        public Action? OnCreate { get; set; }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _created);
            OnCreate?.Invoke();
            return new CountedTimer(this, Fake.CreateTimer(callback, state, dueTime, period));
        }

        private sealed class CountedTimer(CountingTimeProvider owner, ITimer inner) : ITimer
        {
            private int _done;

            public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _done, 1) == 0)
                {
                    Interlocked.Increment(ref owner._disposed);
                }

                inner.Dispose();
            }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }

    // Out of line, so that the waiter and its task are unreachable once it returns.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TimeOutWithAnUnawaitedTask(string key)
    {
        var registry = new RequestRegistry<string, int>();
        var waiter = registry.Register(key);
        _ = waiter.Task;
        Should.Throw<TimeoutException>(() => registry.Wait(key, waiter, TimeSpan.Zero)).Message.ShouldContain(key);
        waiter.Task.IsFaulted.ShouldBeTrue();
    }

    private static void InterruptWithAnUnawaitedTask(List<Exception> interrupts)
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        _ = waiter.Task;
        interrupts.Add(InterruptABlockedWait(registry, waiter));
        waiter.Task.IsFaulted.ShouldBeTrue();
    }

    /// <summary>Blocks a thread in a wait for key 1, interrupts it once it is blocked, and returns the exception its wait threw.</summary>
    private static ThreadInterruptedException InterruptABlockedWait(RequestRegistry<int, int> registry, RequestWaiter<int> waiter)
    {
        Exception? caught = null;
        var caller = new Thread(() => caught = Record.Exception(() => registry.Wait(1, waiter)));
        caller.Start();
        SpinWait.SpinUntil(() => waiter.HasBlockedThread, s_bound).ShouldBeTrue();
        caller.Interrupt();
        caller.Join(s_bound).ShouldBeTrue();
        return caught.ShouldBeOfType<ThreadInterruptedException>();
    }

    /// <summary>Starts a wait on <paramref name="token"/>, answers it, drops its value task unawaited, and returns a weak reference to its waiter.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference AnswerAWaitNobodyAwaits(CancellationToken token)
    {
        var registry = new RequestRegistry<int, int>();
        var waiter = registry.Register(1);
        var wait = registry.WaitAsync(1, waiter, token);
        wait.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 1).ShouldBeTrue();
        wait.IsCompletedSuccessfully.ShouldBeTrue();
        return new WeakReference(waiter);
    }

    /// <summary>Starts 100 requests that stay pending and returns the bytes each allocated, then answers and awaits them all.</summary>
    private static async Task<double> AllocationPerPendingRequestAsync(Func<RequestRegistry<int, int>, int, ValueTask<int>> start)
    {
        var registry = new RequestRegistry<int, int>();
        var waits = new ValueTask<int>[101];

        // Grows the registry's table first, so the measurement sees only what each request allocates.
        for (var key = 1000; key <= 1100; key++)
        {
            registry.Register(key);
        }

        registry.FailAll(new IOException("warm-up"));

        // Each value task is kept until it is awaited, once, below; the first request warms the path up.
#pragma warning disable CA2012
        waits[0] = start(registry, 0);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var key = 1; key <= 100; key++)
        {
            waits[key] = start(registry, key);
        }
#pragma warning restore CA2012

        var perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / 100.0;
        for (var key = 0; key <= 100; key++)
        {
            registry.Resolve(key, key).ShouldBeTrue();
            (await waits[key]).ShouldBe(key);
        }

        return perRequest;
    }
}
