using Microsoft.Extensions.Time.Testing;

namespace MicroIo.Tests;

[Collection(nameof(MetricsTests))]
public class RegistryMetricsTests
{
    [Fact]
    public async Task KnownWorkload_ReportsPendingTimeoutsAndFailures()
    {
        using var metrics = new MetricsRecorder();
        var time = new FakeTimeProvider();
        var registry = new RequestRegistry<int, string>(time);
        var before = metrics.Observe("microio.registry.request.pending");

        var waiters = Enumerable.Range(0, 5).Select(registry.Register).ToList();
        metrics.Observe("microio.registry.request.pending").ShouldBe(before + 5);

        registry.Resolve(0, "ok").ShouldBeTrue();
        registry.Fail(1, new IOException("one")).ShouldBeTrue();
        var timingOut = registry.WaitAsync(2, waiters[2], TimeSpan.FromSeconds(1)).AsTask();
        time.Advance(TimeSpan.FromSeconds(1));
        await Should.ThrowAsync<TimeoutException>(timingOut);
        registry.FailAll(new IOException("rest")).ShouldBe(2);

        metrics.Sum("microio.registry.request.timeouts").ShouldBe(1);
        metrics.Sum("microio.registry.request.failures").ShouldBe(3);
        metrics.Observe("microio.registry.request.pending").ShouldBe(before);
        GC.KeepAlive(registry);
    }

    [Fact]
    public void Close_CountsEveryPendingRequestAsAFailure()
    {
        using var metrics = new MetricsRecorder();
        var registry = new RequestRegistry<int, int>();
        registry.Register(1);
        registry.Register(2);
        registry.Register(3);

        registry.Close(new IOException("gone")).ShouldBeTrue();

        metrics.Sum("microio.registry.request.failures").ShouldBe(3);
    }

    [Fact]
    public void ManyLiveRegistries_ArePrunedWithoutLosingTheLiveOnes()
    {
        using var metrics = new MetricsRecorder();
        var before = metrics.Observe("microio.registry.request.pending");

        // More registries than the first prune point, all alive and each with one pending request.
        var registries = Enumerable.Range(0, 150).Select(_ => new RequestRegistry<int, int>()).ToList();
        registries.ForEach(r => r.Register(1));

        metrics.Observe("microio.registry.request.pending").ShouldBe(before + 150);
        registries.ForEach(r => r.Close());
        metrics.Observe("microio.registry.request.pending").ShouldBe(before);
        GC.KeepAlive(registries);
    }
}
