using MicroIo;
using MicroIo.Samples.CounterServer;
using MicroIo.Samples.HostedCounter;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var builder = Host.CreateApplicationBuilder(args);

// Only warnings and errors from the console logger, so the sample's own lines stay readable; a failing service would
// still be logged (MicroIo.Hosting logs failures at Critical).
builder.Logging.SetMinimumLevel(LogLevel.Warning);

builder.Services.AddSingleton(Console.Out);
builder.Services.AddServiceThread<CounterServer>();   // started, and waited for, before the client below
builder.Services.AddHostedService<CounterClient>();

using var host = builder.Build();
var server = host.Services.GetRequiredService<CounterServer>();
await host.RunAsync();                                 // returns once the client has stopped the application

Console.WriteLine($"host stopped -> counter server ended: {server.IsStopped}, exit code: {Environment.ExitCode}");
