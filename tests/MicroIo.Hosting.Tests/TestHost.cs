using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MicroIo.Tests;

/// <summary>Builds a real <see cref="IHost"/> in-process, with its logs captured and its timeouts short.</summary>
internal static class TestHost
{
    /// <summary>A bound on every wait in these tests: far above what they need, so only a hang reaches it.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static IHost Build(
        CapturingLoggerProvider logs,
        Action<IServiceCollection> configure,
        TimeSpan? startupTimeout = null,
        TimeSpan? shutdownTimeout = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddProvider(logs);
        builder.Services.Configure<HostOptions>(options =>
        {
            options.StartupTimeout = startupTimeout ?? Bound;
            options.ShutdownTimeout = shutdownTimeout ?? Bound;
        });
        configure(builder.Services);
        return builder.Build();
    }

    public static IHostApplicationLifetime Lifetime(this IHost host) => host.Services.GetRequiredService<IHostApplicationLifetime>();

    /// <summary>Completes when the token is cancelled.</summary>
    public static Task WhenCancelled(this CancellationToken token)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => cancelled.TrySetResult());
        return cancelled.Task;
    }

    /// <summary>
    /// Awaits the task, up to <see cref="Bound"/>, and returns the exception it throws. Unlike <c>WaitAsync</c> and
    /// <c>Should.ThrowAsync</c>, it keeps a cancellation's own <see cref="OperationCanceledException"/> (its message
    /// included) instead of making a new <see cref="TaskCanceledException"/>.
    /// </summary>
    public static async Task<TException> ThrowsAsync<TException>(Task task)
        where TException : Exception
    {
        await Task.WhenAny(task, Task.Delay(Bound));
        task.IsCompleted.ShouldBeTrue($"the task did not complete within {Bound}");
        try
        {
            await task;
        }
        catch (TException ex)
        {
            return ex;
        }

        throw new ShouldAssertException($"the task completed without throwing {typeof(TException).Name}");
    }

    public static TaskCompletionSource Signal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
