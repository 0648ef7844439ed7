using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MicroIo.Tests;

public class LoopRegistrationTests
{
    private sealed class ReadyLoop : LoopServiceThread
    {
        protected override async Task RunAsync(CancellationToken cancellationToken)
        {
            Started();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }

    [Fact]
    public async Task AddLoopServiceThread_TypeFactoryAndTokenBody_AllStartWithTheHost()
    {
        var bodyStarted = false;
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddLoopServiceThread<ReadyLoop>();
        builder.Services.AddLoopServiceThread(_ => new ReadyLoop());
        builder.Services.AddLoopServiceThread("token-body", async ct =>
        {
            bodyStarted = true;
            await Task.Delay(Timeout.Infinite, ct);
        });
        using var host = builder.Build();

        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));

        host.Services.GetRequiredService<ReadyLoop>().IsStarted.ShouldBeTrue();
        bodyStarted.ShouldBeTrue();
        await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }
}
