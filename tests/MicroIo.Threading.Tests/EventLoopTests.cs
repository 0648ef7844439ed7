namespace MicroIo.Tests;

public class EventLoopTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Run_AwaitsWithoutConfigureAwait_ContinueOnTheCallingThread()
    {
        var caller = Environment.CurrentManagedThreadId;

        var seen = EventLoop.Run(async () =>
        {
            var ids = new List<int> { Environment.CurrentManagedThreadId };
            await Task.Yield();
            ids.Add(Environment.CurrentManagedThreadId);
            await Task.Run(() => { });
            ids.Add(Environment.CurrentManagedThreadId);
            return ids;
        });

        seen.Count.ShouldBe(3);
        seen.ShouldAllBe(id => id == caller);
    }

    [Fact]
    public void Run_ReturnsTheResult()
    {
        var result = EventLoop.Run(async () =>
        {
            await Task.Yield();
            return 42;
        });

        result.ShouldBe(42);
    }

    [Fact]
    public void Run_FunctionThrows_RethrowsTheOriginalException()
    {
        var boom = new InvalidDataException("boom");

        var thrown = Should.Throw<InvalidDataException>(() => EventLoop.Run(async () =>
        {
            await Task.Yield();
            throw boom;
        }));

        thrown.ShouldBeSameAs(boom);
    }

    [Fact]
    public void Run_FunctionCancelled_ThrowsOperationCanceled()
    {
        Should.Throw<OperationCanceledException>(() => EventLoop.Run(async () =>
        {
            await Task.Yield();
            throw new OperationCanceledException();
        }));
    }

    [Fact]
    public void Run_TaskGroupChildren_RunOnTheCallingThread()
    {
        var caller = Environment.CurrentManagedThreadId;
        var childThreads = new List<int>();

        EventLoop.Run(() => TaskGroup.RunAsync(group =>
        {
            for (var i = 0; i < 3; i++)
            {
                group.StartSoon(async ct =>
                {
                    await Task.Yield();
                    childThreads.Add(Environment.CurrentManagedThreadId);
                });
            }

            return Task.CompletedTask;
        }));

        childThreads.Count.ShouldBe(3);
        childThreads.ShouldAllBe(id => id == caller);
    }

    [Fact]
    public void Run_AsyncVoidThrows_RunThrowsIt()
    {
        var boom = new InvalidDataException("async void");
        var never = new TaskCompletionSource();

        var thrown = Should.Throw<InvalidDataException>(() => EventLoop.Run(async () =>
        {
            ThrowLater(boom);
            await never.Task;
        }));

        thrown.ShouldBeSameAs(boom);
    }

    [Fact]
    public void Run_AsyncVoidStillRunning_WaitsForIt()
    {
        var done = false;

        EventLoop.Run(() =>
        {
            SetLater(() => done = true);
            return Task.CompletedTask;
        });

        done.ShouldBeTrue();
    }

    [Fact]
    public void Run_RestoresTheCallersSynchronizationContext()
    {
        var before = SynchronizationContext.Current;
        SynchronizationContext? inside = null;

        EventLoop.Run(async () =>
        {
            inside = SynchronizationContext.Current;
            await Task.Yield();
        });

        inside.ShouldNotBeNull();
        inside.ShouldNotBeSameAs(before);
        SynchronizationContext.Current.ShouldBeSameAs(before);
    }

    [Fact]
    public async Task Run_ContinuationPostedAfterTheLoopEnded_StillRuns()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        EventLoop.Run(() =>
        {
            _ = ResumeAfterAsync(gate.Task, resumed);
            return Task.CompletedTask;
        });
        gate.SetResult();

        await resumed.Task.WaitAsync(s_bound);
    }

    [Fact]
    public void Run_Null_ThrowsArgumentNull()
    {
        Should.Throw<ArgumentNullException>(() => EventLoop.Run(null!));
        Should.Throw<ArgumentNullException>(() => EventLoop.Run<int>(null!));
    }

    [Fact]
    public void Run_FunctionReturnsNullTask_ThrowsInvalidOperation()
    {
        Should.Throw<InvalidOperationException>(() => EventLoop.Run(() => null!));
    }

    [Fact]
    public void Run_Send_FromAnotherThread_RunsOnTheLoop()
    {
        var caller = Environment.CurrentManagedThreadId;
        var sentOn = 0;

        EventLoop.Run(async () =>
        {
            var loop = SynchronizationContext.Current!;
            await Task.Run(() => loop.Send(_ => sentOn = Environment.CurrentManagedThreadId, null));
        });

        sentOn.ShouldBe(caller);
    }

    [Fact]
    public void Run_Send_FromAnotherThread_TheSendersExecutionContextEndsWithTheCallback()
    {
        var local = new AsyncLocal<string>();
        string? seenBySend = null;
        string? seenAfter = "unset";

        EventLoop.Run(async () =>
        {
            var loop = SynchronizationContext.Current!;
            await Task.Run(() =>
            {
                local.Value = "sender";
                loop.Send(_ => seenBySend = local.Value, null);
            });

            // A callback posted after the Send runs in the loop's own context, not in the sender's left behind.
            var posted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Post(_ =>
            {
                seenAfter = local.Value;
                posted.SetResult();
            }, null);
            await posted.Task;
        });

        seenBySend.ShouldBe("sender");
        seenAfter.ShouldBeNull();
    }

    private static async void ThrowLater(Exception exception)
    {
        await Task.Yield();
        throw exception;
    }

    private static async void SetLater(Action action)
    {
        await Task.Yield();
        await Task.Yield();
        action();
    }

    private static async Task ResumeAfterAsync(Task gate, TaskCompletionSource resumed)
    {
        await gate;
        resumed.SetResult();
    }
}
