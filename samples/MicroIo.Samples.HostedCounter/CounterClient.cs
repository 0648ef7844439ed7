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
                output.WriteLine($"add 3 -> {server.Request("add", 3)}");
                output.WriteLine($"add 7 -> {server.Request("add", 7)}");
                output.WriteLine($"get -> {server.Request("get")}");
                output.WriteLine($"loop-thread peek -> {server.Peek()}");
                try
                {
                    server.Request("missing");
                }
                catch (InvalidOperationException ex)
                {
                    output.WriteLine($"bad request -> {ex.Message}");
                }
            },
            stoppingToken).ConfigureAwait(false);

        output.WriteLine("stopping the host");
        lifetime.StopApplication();
    }
}
