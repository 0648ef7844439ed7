namespace MicroIo.Tests;

/// <summary>Flows the scope tests start: one that outlives the caller's scope, and a cancel that meets the caller at a barrier.</summary>
internal static class ScopeFlows
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);

    /// <summary>Enters a scope in a flow forked from the caller's (so inside the caller's ambient scope), which outlives the caller's scope until told to exit; returns once the scope is entered.</summary>
    /// <param name="scope">The scope to enter in the forked flow.</param>
    /// <param name="exit">Completes when the forked flow should exit its scope.</param>
    /// <returns>The forked flow, which ends once it has exited its scope.</returns>
    public static async Task<Task> EnterInAnOutlivingFlowAsync(CancelScope scope, Task exit)
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flow = Task.Run(async () =>
        {
            using (scope.Enter())
            {
                entered.SetResult();
                await exit.ConfigureAwait(false);
            }
        });
        await entered.Task.WaitAsync(s_bound);
        return flow;
    }

    /// <summary>Runs a cancel on a thread of its own once the caller also reaches the barrier, so the two race.</summary>
    /// <param name="cancel">The cancel to run.</param>
    /// <param name="start">A barrier for two: this thread and the caller.</param>
    /// <returns>The thread's work, which ends once the cancel has returned.</returns>
    public static Task CancelAtTheBarrier(Action cancel, Barrier start) =>
        Task.Factory.StartNew(
            () =>
            {
                start.SignalAndWait(s_bound).ShouldBeTrue();
                cancel();
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
}
