using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static MicroIo.Tests.TestHost;

namespace MicroIo.Tests;

/// <summary>The tests that read or set <see cref="Environment.ExitCode"/>, a process-wide value: they run alone, and reset it.</summary>
[CollectionDefinition(nameof(HostExitCodeTests), DisableParallelization = true)]
public sealed class HostExitCodeTestsDefinition;

[Collection(nameof(HostExitCodeTests))]
public sealed class HostExitCodeTests : IDisposable
{
    private readonly CapturingLoggerProvider _logs = new();

    public HostExitCodeTests()
    {
        Environment.ExitCode = 0;
    }

    public void Dispose()
    {
        Environment.ExitCode = 0;
        _logs.Dispose();
    }

    [Fact]
    public async Task RunAsync_ServiceFailsAfterStart_StopsTheApplicationWithExitCode1()
    {
        var failure = new IOException("connection reset");
        using var fail = new ManualResetEventSlim();
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var host = Build(_logs, services => services
            .AddServiceThread("bystander", service =>
            {
                service.Started();
                service.Scope.Wait(Bound);
                events.Enqueue("bystander stopped");
            })
            .AddServiceThread("reader", service =>
            {
                service.Started();
                if (fail.Wait(Bound))
                {
                    throw failure;
                }
            }));
        var run = host.RunAsync();
        await host.Lifetime().ApplicationStarted.WhenCancelled().WaitAsync(Bound);

        fail.Set();
        await run.WaitAsync(Bound);

        Environment.ExitCode.ShouldBe(1);
        events.ShouldBe(["bystander stopped"]);
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Critical && e.Message.Contains("reader") && e.Exception == failure);
        _logs.Hosting.Count(e => e.Exception == failure).ShouldBe(1);
    }

    [Fact]
    public async Task RunAsync_LoopCallbackThrowsAfterStart_StopsTheApplicationWithExitCode1()
    {
        var failure = new InvalidOperationException("callback bug");
        LoopServiceThread? loop = null;
        using var host = Build(_logs, services => services.AddLoopServiceThread("loop", async (service, ct) =>
        {
            loop = service;
            service.Started();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }));
        var run = host.RunAsync();
        await host.Lifetime().ApplicationStarted.WhenCancelled().WaitAsync(Bound);

        loop!.CallSoon(() => throw failure);
        await run.WaitAsync(Bound);

        Environment.ExitCode.ShouldBe(1);
        loop.Exception.ShouldBeSameAs(failure);
    }

    [Fact]
    public async Task RunAsync_ServiceStoppedWhileRunning_StopsTheApplicationAndKeepsExitCode0()
    {
        ServiceThread? worker = null;
        using var host = Build(_logs, services => services.AddServiceThread("worker", service =>
        {
            worker = service;
            service.Started();
            service.Scope.Wait(Bound);
        }));
        var run = host.RunAsync();
        await host.Lifetime().ApplicationStarted.WhenCancelled().WaitAsync(Bound);

        worker!.Stop("work done");
        await run.WaitAsync(Bound);

        Environment.ExitCode.ShouldBe(0);
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Information && e.Message.Contains("worker") && e.Message.Contains("work done"));
    }

    [Fact]
    public async Task StopAsync_ServiceFailsWhileStopping_SetsExitCode1()
    {
        var failure = new IOException("flush failed");
        using var host = Build(_logs, services => services.AddServiceThread("flusher", service =>
        {
            service.Started();
            service.Scope.Wait(Bound);
            throw failure;
        }));
        await host.StartAsync().WaitAsync(Bound);

        await host.StopAsync().WaitAsync(Bound);

        Environment.ExitCode.ShouldBe(1);
        _logs.Hosting.ShouldContain(e => e.Level == LogLevel.Error && e.Message.Contains("flusher") && e.Exception == failure);
    }

    [Fact]
    public async Task StartAsync_ServiceFailsBeforeStarted_LeavesExitCodeToTheThrownException()
    {
        using var host = Build(_logs, services => services.AddServiceThread("broken", _ => throw new IOException("no config")));

        await Should.ThrowAsync<IOException>(host.StartAsync().WaitAsync(Bound));
        await host.StopAsync().WaitAsync(Bound);

        Environment.ExitCode.ShouldBe(0);
    }
}
