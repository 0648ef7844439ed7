using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static MicroIo.Tests.TestHost;

namespace MicroIo.Tests;

public sealed class HostingServiceCollectionExtensionsTests : IDisposable
{
    private readonly CapturingLoggerProvider _logs = new();

    public void Dispose() => _logs.Dispose();

    [Fact]
    public async Task StartAsync_ServiceNotStartedYet_WaitsForStarted()
    {
        using var host = Build(_logs, services =>
        {
            services.AddServiceThread<GatedService>();
            services.AddSingleton<ProbeService>();
            services.AddHostedService(provider => provider.GetRequiredService<ProbeService>());
        });
        var gated = host.Services.GetRequiredService<GatedService>();

        var start = host.StartAsync();
        await gated.Entered.Task.WaitAsync(Bound);
        var completedBeforeStarted = start.IsCompleted;
        gated.Gate.Set();
        await start.WaitAsync(Bound);

        completedBeforeStarted.ShouldBeFalse();
        gated.IsStarted.ShouldBeTrue();
        host.Services.GetRequiredService<ProbeService>().SawGatedStarted.ShouldBe(true);
        host.Lifetime().ApplicationStarted.IsCancellationRequested.ShouldBeTrue();
        await host.StopAsync().WaitAsync(Bound);
        gated.IsStopped.ShouldBeTrue();
    }

    [Fact]
    public async Task StartAsync_ServiceFailsBeforeStarted_ThrowsTheOriginalException()
    {
        var failure = new IOException("port 5555 is in use");
        using var host = Build(_logs, services => services.AddServiceThread("listener", _ => throw failure));

        var thrown = await Should.ThrowAsync<IOException>(host.StartAsync().WaitAsync(Bound));

        thrown.ShouldBeSameAs(failure);
        host.Lifetime().ApplicationStarted.IsCancellationRequested.ShouldBeFalse();
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Error && e.Message.Contains("listener") && e.Exception == failure);
    }

    [Fact]
    public async Task StartAsync_ServiceCallsFail_ThrowsTheFailureNotServiceStartException()
    {
        var failure = new InvalidDataException("bad configuration");
        using var host = Build(_logs, services => services.AddLoopServiceThread("loop", (service, _) =>
        {
            service.Fail(failure);
            return Task.CompletedTask;
        }));

        var thrown = await Should.ThrowAsync<InvalidDataException>(host.StartAsync().WaitAsync(Bound));

        thrown.ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task StartAsync_BodyEndsWithoutStarted_ThrowsInvalidOperationException()
    {
        using var host = Build(_logs, services => services.AddServiceThread("quitter", _ => { }));

        var thrown = await Should.ThrowAsync<InvalidOperationException>(host.StartAsync().WaitAsync(Bound));

        thrown.Message.ShouldContain("quitter");
        thrown.Message.ShouldContain("Started()");
    }

    [Fact]
    public async Task StartAsync_ServiceNeverStarts_ThrowsWhenStartupTimeoutElapses()
    {
        ServiceThread? slow = null;
        using var host = Build(
            _logs,
            services => services.AddServiceThread("slow", service =>
            {
                slow = service;
                service.Scope.Wait(Bound);
            }),
            startupTimeout: TimeSpan.FromMilliseconds(200));

        var thrown = await ThrowsAsync<OperationCanceledException>(host.StartAsync());

        thrown.Message.ShouldContain("slow");
        slow.ShouldNotBeNull();
        slow.Scope.IsClosed.ShouldBeTrue();
        (await slow.JoinAsync(Bound)).ShouldBeTrue();
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Warning && e.Message.Contains("slow"));
    }

    [Fact]
    public async Task StartAsync_TokenCancelled_ThrowsOperationCanceledAndStopsTheService()
    {
        var entered = Signal();
        ServiceThread? waiting = null;
        using var host = Build(_logs, services => services.AddServiceThread("waiting", service =>
        {
            waiting = service;
            entered.SetResult();
            service.Scope.Wait(Bound);
        }));
        using var cts = new CancellationTokenSource();

        var start = host.StartAsync(cts.Token);
        await entered.Task.WaitAsync(Bound);
        await cts.CancelAsync();
        var thrown = await ThrowsAsync<OperationCanceledException>(start);

        thrown.Message.ShouldContain("waiting");
        thrown.CancellationToken.IsCancellationRequested.ShouldBeTrue();
        waiting!.Scope.IsClosed.ShouldBeTrue();
        (await waiting.JoinAsync(Bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task StopAsync_SeveralRegistrations_StopsAndJoinsEachInReverseStartOrder()
    {
        var events = new ConcurrentQueue<string>();
        using var host = Build(_logs, services => services
            .AddServiceThread("a", Recording(events, "a"))
            .AddLoopServiceThread("b", async (service, ct) =>
            {
                events.Enqueue("start b");
                service.Started();
                await Task.Delay(Timeout.InfiniteTimeSpan, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                events.Enqueue("stop b");
                events.Enqueue("end b");
            })
            .AddServiceThread(_ => new ServiceThread(Recording(events, "c"), new ServiceThreadOptions { Name = "c" })));

        await host.StartAsync().WaitAsync(Bound);
        await host.StopAsync().WaitAsync(Bound);

        events.ShouldBe(["start a", "start b", "start c", "stop c", "end c", "stop b", "end b", "stop a", "end a"]);
        _logs.Hosting.ShouldNotContain(e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task AddServiceGroup_GroupOfThree_StartsAllAndStopsInReverseOrder()
    {
        var events = new ConcurrentQueue<string>();
        using var host = Build(_logs, services => services.AddServiceGroup(_ => new ServiceGroup(
            new ServiceThread(Recording(events, "a"), new ServiceThreadOptions { Name = "a" }),
            new ServiceThread(Recording(events, "b"), new ServiceThreadOptions { Name = "b" }),
            new ServiceThread(Recording(events, "c"), new ServiceThreadOptions { Name = "c" }))));

        await host.StartAsync().WaitAsync(Bound);
        var started = events.Order().ToArray();
        await host.StopAsync().WaitAsync(Bound);

        started.ShouldBe(["start a", "start b", "start c"]);
        events.Skip(3).ShouldBe(["stop c", "end c", "stop b", "end b", "stop a", "end a"]);
    }

    [Fact]
    public async Task AddServiceGroup_OneServiceFailsToStart_StopsTheOthersAndThrowsItsException()
    {
        var failure = new TimeoutException("no heartbeat");
        var first = new ServiceThread(service => { service.Started(); service.Scope.Wait(Bound); }, new ServiceThreadOptions { Name = "first" });
        var second = new ServiceThread(_ => throw failure, new ServiceThreadOptions { Name = "second" });
        using var host = Build(_logs, services => services.AddServiceGroup(_ => new ServiceGroup(first, second)));

        var thrown = await Should.ThrowAsync<TimeoutException>(host.StartAsync().WaitAsync(Bound));

        thrown.ShouldBeSameAs(failure);
        first.Scope.IsClosed.ShouldBeTrue();
        (await first.JoinAsync(Bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task StopAsync_ServiceIgnoresStop_LogsItAndStopsWithinTheShutdownTimeout()
    {
        using var release = new ManualResetEventSlim();
        var events = new ConcurrentQueue<string>();
        var shutdownTimeout = TimeSpan.FromMilliseconds(300);
        ServiceThread? first = null;
        using var host = Build(
            _logs,
            services => services
                .AddServiceThread("first", service =>
                {
                    first = service;
                    Recording(events, "first")(service);
                })
                .AddServiceThread("stubborn", service =>
                {
                    service.Started();
                    release.Wait(Bound);
                })
                .AddServiceThread("last", Recording(events, "last")),
            shutdownTimeout: shutdownTimeout);

        try
        {
            await host.StartAsync().WaitAsync(Bound);
            var stop = host.StopAsync();
            var stopped = await Task.WhenAny(stop, Task.Delay(Bound)) == stop;

            stopped.ShouldBeTrue();
            await stop;
            events.ShouldContain("end last");
            first!.Scope.IsClosed.ShouldBeTrue();
            _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Error && e.Message == "MicroIo service stubborn did not stop within the host's shutdown timeout.");
        }
        finally
        {
            release.Set();
        }
    }

    [Fact]
    public async Task AddServiceThread_DelegateService_LogsThroughTheHostLogger()
    {
        ServiceThread? service = null;
        using var release = new ManualResetEventSlim();
        using var host = Build(_logs, services => services.AddServiceThread("logged", s =>
        {
            service = s;
            s.Started();
            release.Wait(Bound);
        }));
        await host.StartAsync().WaitAsync(Bound);

        var ended = service!.JoinOrLog(TimeSpan.Zero);
        release.Set();
        await host.StopAsync().WaitAsync(Bound);

        ended.ShouldBeFalse();
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Error && e.Message.Contains("Service thread logged did not end"));
    }

    [Fact]
    public void AddServiceThread_SameTypeTwice_RegistersOneSingletonAndOneHostedService()
    {
        var services = new ServiceCollection();

        services.AddServiceThread<GatedService>().AddServiceThread<GatedService>();

        services.Count(d => d.ServiceType == typeof(IHostedService)).ShouldBe(1);
        services.Count(d => d.ServiceType == typeof(GatedService)).ShouldBe(1);
    }

    [Fact]
    public async Task AddServiceThread_TypedService_HostStartsTheInjectedSingleton()
    {
        using var host = Build(_logs, services => services.AddServiceThread<GatedService>());
        var gated = host.Services.GetRequiredService<GatedService>();
        gated.Gate.Set();

        await host.StartAsync().WaitAsync(Bound);

        gated.IsStarted.ShouldBeTrue();
        await host.StopAsync().WaitAsync(Bound);
    }

    [Fact]
    public void AddMethods_BadArguments_Throw()
    {
        var services = new ServiceCollection();

        Should.Throw<ArgumentNullException>(() => HostingServiceCollectionExtensions.AddServiceThread<GatedService>(null!));
        Should.Throw<ArgumentNullException>(() => services.AddServiceThread<ServiceThread>((Func<IServiceProvider, ServiceThread>)null!));
        Should.Throw<ArgumentNullException>(() => services.AddServiceThread(null!, _ => { }));
        Should.Throw<ArgumentException>(() => services.AddServiceThread(string.Empty, _ => { }));
        Should.Throw<ArgumentNullException>(() => services.AddServiceThread("x", null!));
        Should.Throw<ArgumentNullException>(() => services.AddLoopServiceThread("x", (Func<LoopServiceThread, CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => services.AddLoopServiceThread("x", (Func<CancellationToken, Task>)null!));
        Should.Throw<ArgumentNullException>(() => services.AddServiceGroup(null!));
        services.ShouldBeEmpty();
    }

    private static Action<ServiceThread> Recording(ConcurrentQueue<string> events, string name) => service =>
    {
        events.Enqueue($"start {name}");
        service.Started();
        service.Scope.Wait(Bound);
        events.Enqueue($"stop {name}");
        events.Enqueue($"end {name}");
    };

    /// <summary>A typed service, constructed by dependency injection, that reports started once the test opens its gate.</summary>
    internal sealed class GatedService() : ServiceThread(new ServiceThreadOptions { Name = "gated" })
    {
        public TaskCompletionSource Entered { get; } = Signal();

        public ManualResetEventSlim Gate { get; } = new();

        protected override void RunService()
        {
            Entered.TrySetResult();
            if (Gate.Wait(Bound))
            {
                Started();
                Scope.Wait(Bound);
            }
        }
    }

    /// <summary>A hosted service registered after a MicroIo one: it records whether that one had started when its own start ran.</summary>
    internal sealed class ProbeService(GatedService gated) : IHostedService
    {
        public bool? SawGatedStarted { get; private set; }

        public Task StartAsync(CancellationToken cancellationToken)
        {
            SawGatedStarted = gated.IsStarted;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
