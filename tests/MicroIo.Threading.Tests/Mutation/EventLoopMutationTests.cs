using System.Reflection;
using MicroIo.Internal;

namespace MicroIo.Tests.Mutation;

/// <summary>
/// The loop itself (found by Stryker survivors): its argument checks, Send from either side, what it accepts while it is
/// ending, async void bookkeeping, and what happens to queued work when a callback's exception ends it.
/// </summary>
public sealed class EventLoopMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);
    private static readonly AsyncLocal<string?> s_callerValue = new();

    [Fact]
    public void PostAndSend_NullCallback_ThrowAtTheCallAndTheLoopGoesOn()
    {
        Exception? post = null;
        Exception? send = null;

        var result = EventLoop.Run(async () =>
        {
            var loop = SynchronizationContext.Current!;
            post = Record.Exception(() => loop.Post(null!, null));
            send = await Task.Run(() => Record.Exception(() => loop.Send(null!, null)));
            await Task.Yield();
            return 7;
        });

        post.ShouldBeOfType<ArgumentNullException>();
        send.ShouldBeOfType<ArgumentNullException>();
        result.ShouldBe(7);
    }

    [Fact]
    public void Send_OnTheLoopThread_RunsInlineBeforeItReturns()
    {
        var loopThread = Environment.CurrentManagedThreadId;
        var ranOn = 0;
        var ranBeforeReturn = false;

        EventLoop.Run(() =>
        {
            SynchronizationContext.Current!.Send(_ => ranOn = Environment.CurrentManagedThreadId, null);
            ranBeforeReturn = ranOn != 0;
            return Task.CompletedTask;
        });

        ranBeforeReturn.ShouldBeTrue();
        ranOn.ShouldBe(loopThread);
    }

    [Fact]
    public void Send_FromAnotherThread_ReturnsAfterTheCallbackRanInTheCallersContextAndRethrowsItsException()
    {
        var boom = new InvalidDataException("send failed");
        string? seen = null;
        var ranBeforeReturn = false;
        Exception? thrown = null;

        EventLoop.Run(async () =>
        {
            var loop = SynchronizationContext.Current!;
            await Task.Run(() =>
            {
                s_callerValue.Value = "caller";
                var ran = false;
                loop.Send(_ =>
                {
                    seen = s_callerValue.Value;
                    ran = true;
                }, null);
                ranBeforeReturn = ran;
                thrown = Record.Exception(() => loop.Send(_ => throw boom, null));
            });
        });

        ranBeforeReturn.ShouldBeTrue();
        seen.ShouldBe("caller");
        thrown.ShouldBeSameAs(boom);
    }

    [Fact]
    public async Task Send_FromAnotherThreadAfterTheLoopEnded_ThrowsClosedResource()
    {
        SynchronizationContext? loop = null;
        EventLoop.Run(() =>
        {
            loop = SynchronizationContext.Current;
            return Task.CompletedTask;
        });
        var ran = false;

        Exception? thrown = null;

        // A thread of its own: a pool thread could be the one that ran the loop, where Send runs inline.
        await DedicatedThread.Run(() => thrown = Record.Exception(() => loop!.Send(_ => ran = true, null)));

        thrown.ShouldBeOfType<ClosedResourceException>();
        ran.ShouldBeFalse();
    }

    [Fact]
    public void Run_Twice_ThrowsInvalidOperation()
    {
        var loop = new LoopSynchronizationContext(onError: null);
        loop.Run(() => Task.CompletedTask);

        // The second start never runs: refused up front, not failed later by what is left of the first run.
        var secondStarted = false;
        Should.Throw<InvalidOperationException>(() => loop.Run(() =>
        {
            secondStarted = true;
            return Task.CompletedTask;
        }));
        secondStarted.ShouldBeFalse();
        loop.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public void Ending_RefusesExternalWorkButRunsContinuationsOfWorkAlreadyOnIt()
    {
        var loop = new LoopSynchronizationContext(onError: null);
        var loopThread = Environment.CurrentManagedThreadId;
        bool? externalAccepted = null;
        var continuationRanOn = 0;

        loop.Run(() =>
        {
            // The main task is done at once, so the loop is ending when this callback runs.
            loop.Post(
                _ =>
                {
                    externalAccepted = loop.TryEnqueue(new PostedCallback(_ => { }, null), external: true);
                    loop.Post(_ => continuationRanOn = Environment.CurrentManagedThreadId, null);
                },
                null);
            return Task.CompletedTask;
        });

        externalAccepted.ShouldBe(false);
        continuationRanOn.ShouldBe(loopThread);
    }

    [Fact]
    public void Ending_AcceptsASendFromAnotherThreadLikeWorkAlreadyOnIt()
    {
        // Send is the context's own traffic, as a posted continuation is: an ending loop still takes it, where it refuses
        // work offered through the service's API.
        var loop = new LoopSynchronizationContext(onError: null);
        var loopThread = Environment.CurrentManagedThreadId;
        var queueField = typeof(LoopSynchronizationContext).GetField("_queue", BindingFlags.NonPublic | BindingFlags.Instance)!;
        var pushed = queueField.FieldType.GetField("Pushed")!;
        Exception? thrown = null;
        var sentRanOn = 0;
        Thread? sender = null;

        loop.Run(() =>
        {
            // The main task is done at once, so the loop is ending when this callback runs.
            loop.Post(
                _ =>
                {
                    var thread = new Thread(() => thrown = Record.Exception(() => loop.Send(_ => sentRanOn = Environment.CurrentManagedThreadId, null)))
                    {
                        IsBackground = true,
                    };
                    sender = thread;
                    thread.Start();

                    // Until the call is on the loop's stack (accepted) or the sender has ended (refused), so the loop, once
                    // this callback returns, does not end before the call is offered.
                    SpinWait.SpinUntil(() => pushed.GetValue(queueField.GetValue(loop)) is not null || !thread.IsAlive, s_bound).ShouldBeTrue();
                },
                null);
            return Task.CompletedTask;
        });

        // Joined first: the sender's outcome is read only once its Send has returned or thrown.
        sender!.Join(s_bound).ShouldBeTrue();
        thrown.ShouldBeNull();
        sentRanOn.ShouldBe(loopThread);
    }

    [Fact]
    public async Task Run_AsyncVoidCompletingOnAnotherThread_WakesTheLoopWhichThenEnds()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = false;
        Thread? loopThread = null;

        var run = DedicatedThread.Run(() => EventLoop.Run(() =>
        {
            loopThread = Thread.CurrentThread;
            CompleteElsewhere(release.Task, () => finished = true);
            return Task.CompletedTask;
        }));

        // The loop must wait for the async void method: it sleeps until that method completes on another thread.
        SpinWait.SpinUntil(() => loopThread is { } t && (t.ThreadState & ThreadState.WaitSleepJoin) != 0, s_bound).ShouldBeTrue();
        run.IsCompleted.ShouldBeFalse();
        release.SetResult();

        await run.WaitAsync(s_bound);
        finished.ShouldBeTrue();
    }

    [Fact]
    public async Task Run_CallbackThrows_QueuedCallbacksRunElsewhereAndNothingIsLost()
    {
        var boom = new InvalidDataException("callback failed");
        var later = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var thrown = Should.Throw<InvalidDataException>(() => EventLoop.Run(async () =>
        {
            var loop = SynchronizationContext.Current!;
            loop.Post(_ => throw boom, null);
            loop.Post(_ => later.SetResult(), null);
            await new TaskCompletionSource().Task;
        }));

        thrown.ShouldBeSameAs(boom);
        await later.Task.WaitAsync(s_bound);
    }

    [Fact]
    public void Run_CallbackThrows_WhatWasTakenAndWhatWasPushedSinceAreEachAbandonedOnceInOrder()
    {
        var loop = new LoopSynchronizationContext(onError: null);
        var abandoned = new List<string>();

        Should.Throw<InvalidDataException>(() => loop.Run(() =>
        {
            // The three are taken together; the first pushes two more while it runs, then ends the loop.
            loop.TryEnqueue(
                new RecordingItem("thrower", abandoned, () =>
                {
                    loop.TryEnqueue(new RecordingItem("pushed 1", abandoned), external: false).ShouldBeTrue();
                    loop.TryEnqueue(new RecordingItem("pushed 2", abandoned), external: false).ShouldBeTrue();
                    throw new InvalidDataException("callback failed");
                }),
                external: false);
            loop.TryEnqueue(new RecordingItem("taken 1", abandoned), external: false);
            loop.TryEnqueue(new RecordingItem("taken 2", abandoned), external: false);
            return new TaskCompletionSource().Task;
        }));

        abandoned.ShouldBe(["taken 1", "taken 2", "pushed 1", "pushed 2"]);
        loop.IsClosed.ShouldBeTrue();
        loop.TryEnqueue(new RecordingItem("late", abandoned), external: false).ShouldBeFalse();
    }

    [Fact]
    public void TryEnqueue_InterruptedWhileWakingASleepingLoop_AcceptsTheItemAndKeepsTheInterrupt()
    {
        var loop = new LoopSynchronizationContext(onError: null);
        var gate = typeof(LoopSynchronizationContext).GetField("_lock", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(loop)!;

        // As if the loop had just decided to sleep: it holds the lock until Monitor.Wait releases it.
        var queueField = typeof(LoopSynchronizationContext).GetField("_queue", BindingFlags.NonPublic | BindingFlags.Instance)!;
        var queue = queueField.GetValue(loop)!;
        var sleeping = queueField.FieldType.GetField("Sleeping")!;
        sleeping.SetValue(queue, true);
        queueField.SetValue(loop, queue);
        sleeping.GetValue(queueField.GetValue(loop)).ShouldBe(true);
        bool? accepted = null;
        Exception? thrown = null;
        var interruptKept = false;
        var pusher = new Thread(() =>
        {
            // Pending: the pusher's wait for the lock throws it.
            Thread.CurrentThread.Interrupt();
            try
            {
                accepted = loop.TryEnqueue(new PostedCallback(_ => { }, null), external: true);
            }
            catch (Exception ex)
            {
                thrown = ex;
                return;
            }

            // The kept interrupt ends the caller's next blocking wait at once; a lost one lets it run out.
            using var never = new ManualResetEventSlim();
            try
            {
                never.Wait(s_bound);
            }
            catch (ThreadInterruptedException)
            {
                interruptKept = true;
            }
        })
        { IsBackground = true };
        lock (gate)
        {
            pusher.Start();
            SpinWait.SpinUntil(() => (pusher.ThreadState & ThreadState.WaitSleepJoin) != 0, s_bound).ShouldBeTrue();
        }

        pusher.Join(s_bound).ShouldBeTrue();
        thrown.ShouldBeNull();
        accepted.ShouldBe(true);
        interruptKept.ShouldBeTrue();
    }

    [Fact]
    public void Run_CallbackReplacesTheSynchronizationContext_TheNextCallbackStillSeesTheLoop()
    {
        SynchronizationContext? seenByNext = null;
        SynchronizationContext? loop = null;

        EventLoop.Run(() =>
        {
            loop = SynchronizationContext.Current!;
            loop.Post(_ => SynchronizationContext.SetSynchronizationContext(null), null);
            loop.Post(_ => seenByNext = SynchronizationContext.Current, null);
            return Task.CompletedTask;
        });

        seenByNext.ShouldNotBeNull();
        seenByNext.ShouldBeSameAs(loop);
    }

    [Fact]
    public void Abandon_PostedCallback_RunsOnTheThreadPool()
    {
        using var ran = new ManualResetEventSlim();

        new PostedCallback(_ => ran.Set(), null).Abandon();

        ran.Wait(s_bound).ShouldBeTrue();
    }

    private static async void CompleteElsewhere(Task gate, Action action)
    {
        await gate.ConfigureAwait(false);
        action();
    }

    // An item that records its abandonment, in order, on the thread that abandons it.
    private sealed class RecordingItem(string name, List<string> abandoned, Action? run = null) : LoopItem
    {
        public override void Invoke() => run?.Invoke();

        public override void Abandon() => abandoned.Add(name);
    }
}
