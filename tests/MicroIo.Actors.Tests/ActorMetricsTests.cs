namespace MicroIo.Tests;

[Collection(nameof(MetricsTests))]
public class ActorMetricsTests
{
    private const string Outcome = "microio.actor.outcome";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task KnownWorkload_ReportsEveryItemTheHandlerFinished_TheFailedOneIncluded(bool asynchronous)
    {
        using var metrics = new MetricsRecorder();
        Func<int, CancellationToken, Task> handler = asynchronous
            ? async (item, ct) =>
            {
                await Task.Yield();
                if (item == 3)
                {
                    throw new IOException("bad item");
                }
            }
            : (item, ct) => item == 3 ? throw new IOException("bad item") : Task.CompletedTask;
        var actor = new ActorCore<int>(handler);
        for (var i = 0; i < 5; i++)
        {
            actor.Submit(i);
        }

        await Should.ThrowAsync<IOException>(actor.RunAsync().WaitAsync(TimeSpan.FromSeconds(10)));

        // Items 0..3 reached the handler (3 threw); item 4 stays in the failed mailbox.
        metrics.Sum("microio.actor.items.handled").ShouldBe(4);
        metrics.Sum("microio.actor.items.handled", Outcome, "success").ShouldBe(3);
        metrics.Sum("microio.actor.items.handled", Outcome, "failure").ShouldBe(1);
        metrics.Count("microio.actor.handler.duration").ShouldBe(4);
        actor.Drain().ShouldBe([4]);
    }

    [Fact]
    public async Task Concurrent_ReportsEveryHandledItem()
    {
        using var metrics = new MetricsRecorder();
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            release();
            await Task.Yield();
        });
        for (var i = 0; i < 10; i++)
        {
            actor.Submit(i);
        }

        actor.Close();
        await actor.RunAsync().WaitAsync(TimeSpan.FromSeconds(10));

        metrics.Sum("microio.actor.items.handled").ShouldBe(10);
    }

    [Fact]
    public async Task Concurrent_HandlerFails_ReportsItsOutcomeAsFailureAndTheOthersAsSuccess()
    {
        using var metrics = new MetricsRecorder();
        var actor = new ActorCore<int>(async (item, release, ct) =>
        {
            await Task.Yield();
            if (item == 2)
            {
                throw new IOException("bad item");
            }

            // Released only once handled, so the dispatcher takes the next item only after this one has ended.
            release();
        });
        for (var i = 0; i < 4; i++)
        {
            actor.Submit(i);
        }

        await Should.ThrowAsync<AggregateException>(actor.RunAsync().WaitAsync(TimeSpan.FromSeconds(10)));

        metrics.Sum("microio.actor.items.handled", Outcome, "success").ShouldBe(2);
        metrics.Sum("microio.actor.items.handled", Outcome, "failure").ShouldBe(1);
        actor.Drain().ShouldBe([3]);
    }
}
