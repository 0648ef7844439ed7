namespace MicroIo.Tests.Mutation;

/// <summary>
/// TaskGroup contract details that the unit tests left open (found by Stryker survivors): a body that ends with a
/// cancellation of its own, what passes through unchanged, what StartAsync refuses at once, the execution context a
/// child runs in, and what is left linked once the group has ended.
/// </summary>
public sealed class TaskGroupMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);
    private static readonly AsyncLocal<string?> s_starterValue = new();

    [Fact]
    public async Task RunAsync_BodyEndsWithACancellationOfItsOwn_StopsTheChildrenAndRethrowsIt()
    {
        var own = new OperationCanceledException("the body's own");
        var childWaiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var childStopped = false;
        TaskGroup? theGroup = null;

        var ex = await Caught.ExceptionAsync(TaskGroup.RunAsync(async group =>
        {
            theGroup = group;
            group.StartSoon(async ct =>
            {
                childWaiting.SetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    childStopped = true;
                }
            });
            await childWaiting.Task;
            throw own;
        }));

        ex.ShouldBeSameAs(own);
        childStopped.ShouldBeTrue();
        theGroup!.CancelScope.CancelCalled.ShouldBeTrue();
        theGroup.CancelScope.CancelledCaught.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_CallerTokenCancelled_BodysCancellationWithTheCallersToken_PropagatesAsTheSameException()
    {
        using var caller = new CancellationTokenSource();
        OperationCanceledException? thrown = null;

        var ex = await Caught.ExceptionAsync(TaskGroup.RunAsync(
            async group =>
            {
                await caller.CancelAsync();
                try
                {
                    caller.Token.ThrowIfCancellationRequested();
                }
                catch (OperationCanceledException e)
                {
                    thrown = e;
                    throw;
                }
            },
            caller.Token));

        thrown.ShouldNotBeNull();
        ex.ShouldBeSameAs(thrown);
    }

    [Fact]
    public async Task RunAsync_Ended_LeavesTheGroupScopeInactiveAndUnlinkedFromTheCaller()
    {
        using var caller = new CancellationTokenSource();
        TaskGroup? theGroup = null;

        await TaskGroup.RunAsync(
            group =>
            {
                theGroup = group;
                group.Token.IsCancellationRequested.ShouldBeFalse();
                return Task.CompletedTask;
            },
            caller.Token).WaitAsync(s_bound);
        await caller.CancelAsync();

        theGroup!.IsFinished.ShouldBeTrue();
        theGroup.CancelScope.IsActive.ShouldBeFalse();
        theGroup.Token.IsCancellationRequested.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
    }

    [Fact]
    public async Task StartAsync_CallerTokenAlreadyCancelled_ThrowsWithThatTokenWithoutRunningTheChild()
    {
        using var caller = new CancellationTokenSource();
        await caller.CancelAsync();
        var childRan = false;

        await TaskGroup.RunAsync(group =>
        {
            var ex = Should.Throw<OperationCanceledException>(() => group.StartAsync<int>(
                (ready, _) =>
                {
                    childRan = true;
                    ready.Started(1);
                    return Task.CompletedTask;
                },
                caller.Token));
            ex.CancellationToken.ShouldBe(caller.Token);
            group.RunningCount.ShouldBe(0);
            return Task.CompletedTask;
        }).WaitAsync(s_bound);

        childRan.ShouldBeFalse();
    }

    [Fact]
    public async Task StartAsync_OnACancelledGroupFromOutsideItsFlow_ThrowsWithTheGroupsTokenWithoutRunningTheChild()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource<TaskGroup>(TaskCreationOptions.RunContinuationsAsynchronously);
        var childRan = false;

        var run = TaskGroup.RunAsync(async group =>
        {
            group.Cancel("stop");
            cancelled.SetResult(group);
            await release.Task;
        });
        try
        {
            var group = await cancelled.Task.WaitAsync(s_bound);
            CancelScope.Current.ShouldBeNull();

            var ex = Should.Throw<OperationCanceledException>(() => group.StartAsync<int>((ready, _) =>
            {
                childRan = true;
                ready.Started(1);
                return Task.CompletedTask;
            }));

            ex.CancellationToken.ShouldBe(group.Token);
            group.RunningCount.ShouldBe(0);
        }
        finally
        {
            release.SetResult();
        }

        await run.WaitAsync(s_bound);
        childRan.ShouldBeFalse();
    }

    [Fact]
    public async Task StartSoon_ChildRunsInTheStartersExecutionContext()
    {
        string? seen = null;

        // Task.Run: no synchronization context, so the child goes to the thread pool.
        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            s_starterValue.Value = "starter";
            group.StartSoon(_ =>
            {
                seen = s_starterValue.Value;
                return Task.CompletedTask;
            });
            return Task.CompletedTask;
        })).WaitAsync(s_bound);

        seen.ShouldBe("starter");
    }

    [Fact]
    public async Task StartSoon_WithExecutionContextFlowSuppressed_StillRunsTheChild()
    {
        var ran = false;

        await Task.Run(() => TaskGroup.RunAsync(group =>
        {
            using (ExecutionContext.SuppressFlow())
            {
                group.StartSoon(_ =>
                {
                    ran = true;
                    return Task.CompletedTask;
                });
            }

            return Task.CompletedTask;
        })).WaitAsync(s_bound);

        ran.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_OnTheOwnersContext_ChildRunsInTheStartersExecutionContext()
    {
        using var loop = new SingleThreadContext();
        string? seen = null;

        await loop.RunAsync(async () =>
        {
            await TaskGroup.RunAsync(async group =>
            {
                s_starterValue.Value = "starter";
                await group.StartAsync<int>((ready, _) =>
                {
                    seen = s_starterValue.Value;
                    ready.Started(1);
                    return Task.CompletedTask;
                });
            });
            return true;
        }).WaitAsync(s_bound);

        seen.ShouldBe("starter");
    }

    [Fact]
    public async Task StartAsync_OnTheOwnersContextWithExecutionContextFlowSuppressed_StillRunsTheChild()
    {
        using var loop = new SingleThreadContext();

        var value = await loop.RunAsync(async () =>
        {
            return await TaskGroup.RunAsync(async group =>
            {
                Task<int> started;
                using (ExecutionContext.SuppressFlow())
                {
                    started = group.StartAsync<int>((ready, _) =>
                    {
                        ready.Started(7);
                        return Task.CompletedTask;
                    });
                }

                return await started;
            });
        }).WaitAsync(s_bound);

        value.ShouldBe(7);
    }

    [Fact]
    public async Task StartAsync_ChildThatHasEnded_IsNotReachedByCancellingTheGroupAfterwards()
    {
        TaskGroup? theGroup = null;
        var childToken = CancellationToken.None;

        await TaskGroup.RunAsync(async group =>
        {
            theGroup = group;
            await group.StartAsync<int>((ready, ct) =>
            {
                childToken = ct;
                ready.Started(1);
                return Task.CompletedTask;
            });
        }).WaitAsync(s_bound);
        theGroup!.Cancel("after everything ended");

        theGroup.Token.IsCancellationRequested.ShouldBeTrue();
        childToken.IsCancellationRequested.ShouldBeFalse();
    }

    [Fact]
    public async Task RunAsync_ChildFailsWhileTheGroupIsCancelled_TheFailureIsStillReported()
    {
        var failure = new IOException("cleanup failed");

        var ex = await Caught.ExceptionAsync(TaskGroup.RunAsync(group =>
        {
            group.StartSoon(async ct =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    throw failure;
                }
            });
            group.Cancel("done");
            return Task.CompletedTask;
        }));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldBe([failure]);
    }
}
