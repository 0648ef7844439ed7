namespace MicroIo.Tests;

[Collection(nameof(MetricsTests))]
public class ServiceMetricsTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void KnownWorkload_ReportsStartsFailuresAndJoinTimeouts()
    {
        using var metrics = new MetricsRecorder();
        using var release = new ManualResetEventSlim();

        var good = new ServiceThread(s =>
        {
            s.Started();
            s.Scope.Wait(Timeout.InfiniteTimeSpan);
        });
        var failing = new ServiceThread(_ => throw new IOException("startup"));
        var stubborn = new ServiceThread(s =>
        {
            s.Started();
            release.Wait(s_bound);
        });
        good.Start();
        failing.Start();
        stubborn.Start();
        good.WaitStarted(s_bound);
        Should.Throw<ServiceStartException>(() => failing.WaitStarted(s_bound));
        stubborn.WaitStarted(s_bound);

        good.Stop();
        stubborn.Stop();
        good.JoinOrLog(s_bound).ShouldBeTrue();
        stubborn.JoinOrLog(TimeSpan.Zero).ShouldBeFalse();
        release.Set();
        stubborn.JoinOrLog(s_bound).ShouldBeTrue();

        metrics.Sum("microio.service.starts").ShouldBe(2);
        metrics.Sum("microio.service.failures").ShouldBe(1);
        metrics.Sum("microio.service.join.timeouts").ShouldBe(1);
    }
}
