namespace MicroIo.Tests.Mutation;

/// <summary>TaskReadiness contract details that the unit tests left open (found by Stryker survivors): why a second signal is refused.</summary>
public sealed class TaskReadinessMutationTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Started_Twice_SaysReadinessWasAlreadySignalled()
    {
        Exception? second = null;

        await TaskGroup.RunAsync(async group =>
        {
            await group.StartAsync<int>((ready, _) =>
            {
                ready.Started(1);
                second = Record.Exception(() => ready.Started(2));
                return Task.CompletedTask;
            });
        }).WaitAsync(s_bound);

        second.ShouldBeOfType<InvalidOperationException>().Message.ShouldContain("already signalled");
    }

    [Fact]
    public async Task Started_AfterTheChildEndedWithoutSignalling_SaysTheChildHasEnded()
    {
        TaskReadiness<int>? kept = null;

        await TaskGroup.RunAsync(async group =>
        {
            await Should.ThrowAsync<InvalidOperationException>(() => group.StartAsync<int>((ready, _) =>
            {
                kept = ready;
                return Task.CompletedTask;
            }));
        }).WaitAsync(s_bound);

        Should.Throw<InvalidOperationException>(() => kept!.Started(1)).Message.ShouldContain("already ended");
        kept!.IsStarted.ShouldBeFalse();
    }
}
