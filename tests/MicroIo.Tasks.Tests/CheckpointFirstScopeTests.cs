namespace MicroIo.Tests;

/// <summary>
/// The first scope a process makes ambient. <see cref="CancelScope.Current"/> skips the ambient read until then (and
/// checkpoints until a scope may be cancelled), so both must see that first scope at once, on its own thread and wherever
/// its async flow goes, however it was entered.
/// </summary>
/// <remarks>
/// The rest of the suite runs after other tests have entered scopes. Each test here loads a fresh copy of MicroIo.Tasks
/// (<see cref="FreshTasks"/>), so its statics start as they do in a new process.
/// </remarks>
[Trait("Category", "FreshAssembly")]
public class CheckpointFirstScopeTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    public enum FirstScope
    {
        /// <summary>A new scope, entered without a lock.</summary>
        Plain,

        /// <summary>A scope with a deadline, entered under its lock.</summary>
        WithDeadline,
    }

    [Theory]
    [InlineData(FirstScope.Plain)]
    [InlineData(FirstScope.WithDeadline)]
    public async Task FirstScopeOfTheProcess_IsSeenByCheckpointsOnItsThreadAndOnAnotherThreadRunningItsContext(FirstScope kind)
    {
        var fresh = FreshTasks.Load();
        try
        {
            fresh.IsCancelled().ShouldBeFalse();
            fresh.Current().ShouldBeNull();

            var scope = kind == FirstScope.Plain ? fresh.NewScope() : fresh.MoveOnAfter(TimeSpan.FromDays(1));
            using (fresh.Enter(scope))
            {
                fresh.Current().ShouldBeSameAs(scope);
                fresh.IsCancelled().ShouldBeFalse();

                fresh.Cancel(scope);

                fresh.IsCancelled().ShouldBeTrue();
                (await Task.Run(fresh.IsCancelled).WaitAsync(s_bound)).ShouldBeTrue();
                RunOnNewThread(ExecutionContext.Capture()!, fresh.IsCancelled).ShouldBeTrue();
            }

            fresh.Current().ShouldBeNull();
            fresh.IsCancelled().ShouldBeFalse();
        }
        finally
        {
            fresh.Unload();
        }
    }

    [Fact]
    public async Task FirstScopeOfTheProcess_IsATaskGroups_ItsChildrenSeeItsCancellation()
    {
        var fresh = FreshTasks.Load();
        try
        {
            var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var groupCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var childSaw = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

            await fresh.RunTaskGroupAsync(async group =>
            {
                fresh.StartSoon(group, async _ =>
                {
                    childStarted.SetResult();
                    await groupCancelled.Task.ConfigureAwait(false);
                    childSaw.SetResult(fresh.IsCancelled());
                });

                await childStarted.Task.WaitAsync(s_bound).ConfigureAwait(false);
                fresh.IsCancelled().ShouldBeFalse();
                fresh.CancelGroup(group);
                groupCancelled.SetResult();
            }).WaitAsync(s_bound);

            (await childSaw.Task.WaitAsync(s_bound)).ShouldBeTrue();
        }
        finally
        {
            fresh.Unload();
        }
    }

    /// <summary>Runs a check on a thread of its own inside the given context, as a handoff with no queue would.</summary>
    private static bool RunOnNewThread(ExecutionContext context, Func<bool> check)
    {
        var result = false;
        var thread = new Thread(() => ExecutionContext.Run(context, _ => result = check(), null));
        thread.Start();
        thread.Join(s_bound).ShouldBeTrue();
        return result;
    }
}
