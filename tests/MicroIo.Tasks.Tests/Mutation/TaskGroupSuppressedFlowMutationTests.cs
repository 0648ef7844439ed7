namespace MicroIo.Tests.Mutation;

/// <summary>
/// A child started while the spawner suppressed the execution context's flow runs through its own runner (the group's
/// scope set in the thread's context); the mutation run on commit 9985a7f found no test of how such a child ends.
/// </summary>
public sealed class TaskGroupSuppressedFlowMutationTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StartSoon_WithExecutionContextFlowSuppressed_SupervisingGroup_ChildFailureIsInTheAggregate(bool failsAtOnce)
    {
        var failure = new InvalidOperationException("the child failed");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new TaskGroupOptions { Mode = TaskGroupMode.Supervise };

        var ex = await Caught.ExceptionAsync(Task.Run(() => TaskGroup.RunAsync(
            group =>
            {
                using (ExecutionContext.SuppressFlow())
                {
                    group.StartSoon(async _ =>
                    {
                        if (!failsAtOnce)
                        {
                            await release.Task.ConfigureAwait(false);
                        }

                        throw failure;
                    });
                }

                release.SetResult();
                return Task.CompletedTask;
            },
            options)));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldBe([failure]);
    }

    [Fact]
    public async Task StartSoon_WithExecutionContextFlowSuppressed_ChildFailureCancelsTheFailFastGroup()
    {
        var failure = new InvalidOperationException("the child failed");
        var siblingStopped = false;

        var ex = await Caught.ExceptionAsync(Task.Run(() => TaskGroup.RunAsync(group =>
        {
            group.StartSoon(async ct =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    siblingStopped = true;
                }
            });
            using (ExecutionContext.SuppressFlow())
            {
                group.StartSoon(_ => throw failure);
            }

            return Task.CompletedTask;
        })));

        ex.ShouldBeOfType<AggregateException>().InnerExceptions.ShouldBe([failure]);
        siblingStopped.ShouldBeTrue("a failing child cancels the fail-fast group");
    }
}
