using Microsoft.Extensions.Hosting;

namespace MicroIo.Samples.HostedCounter;

/// <summary>
/// Makes a few requests to the hosted counter server once the host has started it, prints each result, and stops the
/// application, so the program ends by itself.
/// </summary>
/// <param name="server">The counter server: the singleton that the host started before this service.</param>
/// <param name="lifetime">The host's lifetime, to stop the application when the requests are done.</param>
/// <param name="output">Where the lines go.</param>
public sealed class CounterClient(MicroIo.Samples.CounterServer.CounterServer server, IHostApplicationLifetime lifetime, TextWriter output) : BackgroundService
{
    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The host started this service after the server had reported started, so requests can go out at once. They
        // block (each waits for its reply), so they run off the host's thread.
        await Task.Run(
            () =>
            {
                output.WriteLine($"counter server started -> {server.IsStarted}");
                MicroIo.Samples.CounterServer.CounterDemo.MakeRequests(server, output);
            },
            stoppingToken).ConfigureAwait(false);

        output.WriteLine("stopping the host");
        lifetime.StopApplication();
    }
}
