using System.Diagnostics.CodeAnalysis;
using MicroIo.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MicroIo;

/// <summary>
/// Registers MicroIo services (a <see cref="ServiceThread"/>, a <see cref="LoopServiceThread"/> or a whole
/// <see cref="ServiceGroup"/>) as hosted services of the .NET Generic Host, in one call each.
/// </summary>
/// <remarks>
/// <para>
/// Each call adds one <see cref="IHostedService"/>. Its start calls <see cref="ServiceThread.Start"/> (or
/// <see cref="ServiceGroup.Start"/>) and waits until every service has reported started
/// (<see cref="ServiceThread.Started"/>), so the hosted services registered after it, and
/// <see cref="IHostApplicationLifetime.ApplicationStarted"/>, see the services ready. The wait honours the token the host
/// passes to <see cref="IHostedService.StartAsync"/>, which the host cancels when <c>HostOptions.StartupTimeout</c> elapses
/// (it is infinite unless set), when the application stops, and when the caller of the host's start cancels.
/// </para>
/// <para>
/// A service that fails before it has started fails the host's start with the service's original exception (a
/// <see cref="ServiceStartException"/> is unwrapped to its <see cref="Exception.InnerException"/>: the failure itself, a
/// <see cref="ClosedResourceException"/> when the service was stopped first, or an <see cref="InvalidOperationException"/>
/// when its body ended without reporting started). A start that the token cancels throws
/// <see cref="OperationCanceledException"/> naming the services that had not started. Either way, every service of the
/// registration is asked to stop, without waiting.
/// </para>
/// <para>
/// While the host runs, a service that fails stops the application (<see cref="IHostApplicationLifetime.StopApplication"/>)
/// and sets <see cref="Environment.ExitCode"/> to 1 (unless it is already non-zero), which is the process's exit code when
/// <c>Main</c> returns <see langword="void"/> or <see cref="Task"/> (as top-level <c>await host.RunAsync();</c> does). A
/// service that is stopped, or whose body ends, while the host runs also stops the application, and leaves the exit code
/// alone: a service may end the application on purpose with <see cref="ServiceThread.Stop(string?)"/>. A failure during
/// the host's stop sets the exit code too.
/// </para>
/// <para>
/// The host stops its hosted services in reverse registration order (unless <c>HostOptions.ServicesStopConcurrently</c> is
/// set), and each registration stops its services one at a time in reverse start order, waiting for each to end before it
/// stops the next, until the token of <see cref="IHostedService.StopAsync"/> is cancelled (after
/// <c>HostOptions.ShutdownTimeout</c>). Then the rest are asked to stop without waiting, and each service that has not
/// ended is logged as an error, as <see cref="ServiceThread.JoinOrLog(TimeSpan)"/> does; the stop never throws for it.
/// </para>
/// <para>
/// Everything is logged through the host's <see cref="ILoggerFactory"/> under the category <c>MicroIo.Hosting</c>: failures
/// at <see cref="LogLevel.Critical"/> (while running) or <see cref="LogLevel.Error"/>. The services that these methods
/// construct themselves get the same logger in <see cref="ServiceThreadOptions.Logger"/>, and the host's
/// <see cref="TimeProvider"/> when one is registered. Register each service once: a service started twice makes the
/// host's start throw <see cref="InvalidOperationException"/>.
/// </para>
/// <para>
/// These methods are called while the host is being built, on one thread; the services they register are started and
/// stopped by the host.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// var builder = Host.CreateApplicationBuilder(args);
/// builder.Services.AddServiceThread&lt;CounterServer&gt;();         // a singleton, injectable, started by the host
/// builder.Services.AddLoopServiceThread("ticker", async (service, ct) =&gt;
/// {
///     service.Started();
///     await Task.Delay(Timeout.InfiniteTimeSpan, ct);
/// });
/// builder.Services.AddServiceGroup(sp =&gt; new ServiceGroup(
///     sp.GetRequiredService&lt;SocketReader&gt;(), sp.GetRequiredService&lt;Heartbeat&gt;()));
/// await builder.Build().RunAsync();
/// </code>
/// </example>
public static class HostingServiceCollectionExtensions
{
    /// <summary>Registers <typeparamref name="TService"/> as a singleton (unless it is registered already) and as a hosted service that starts and stops it.</summary>
    /// <typeparam name="TService">The service type: a <see cref="ServiceThread"/> or <see cref="LoopServiceThread"/> subclass, constructed by dependency injection.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <returns>The service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The hosted service starts the instance that the container resolves for <typeparamref name="TService"/>, so other
    /// services can take it as a constructor parameter; a registration made before this call (with a factory, say) is kept,
    /// and must be a singleton. Calling this method again for the same type adds nothing.
    /// </remarks>
    public static IServiceCollection AddServiceThread<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(this IServiceCollection services)
        where TService : ServiceThread
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<TService>();
        if (!services.Any(d => !d.IsKeyedService && d.ServiceType == typeof(IHostedService)
            && d.ImplementationFactory?.Target is ResolvedService { ServiceType: var type } && type == typeof(TService)))
        {
            services.AddSingleton<IHostedService>(new ResolvedService(typeof(TService)).CreateHost);
        }

        return services;
    }

    /// <summary>Registers a hosted service that starts and stops the service that <paramref name="factory"/> creates.</summary>
    /// <typeparam name="TService">The service type: <see cref="ServiceThread"/>, <see cref="LoopServiceThread"/>, or a subclass.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="factory">Creates the service, once, when the host resolves its hosted services; it gets the host's service provider.</param>
    /// <returns>The service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="factory"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The service is not registered in the container: each call hosts a new service. To inject it into other services,
    /// register it as a singleton and use <see cref="AddServiceThread{TService}(IServiceCollection)"/>. Create it with
    /// <c>new ServiceThreadOptions { Logger = provider.GetRequiredService&lt;ILogger&lt;T&gt;&gt;() }</c> to give it the host's logger.
    /// </remarks>
    public static IServiceCollection AddServiceThread<TService>(this IServiceCollection services, Func<IServiceProvider, TService> factory)
        where TService : ServiceThread
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(factory);
        return AddHost(services, provider => new ServiceGroup(factory(provider)));
    }

    /// <summary>Registers a hosted service that runs <paramref name="target"/> on a new <see cref="ServiceThread"/> named <paramref name="name"/>.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The name of the service and of its thread.</param>
    /// <param name="target">The service body: it calls <see cref="ServiceThread.Started"/> when ready and returns when the service's scope closes.</param>
    /// <returns>The service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/>, <paramref name="name"/> or <paramref name="target"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    /// <remarks>The service logs through the host's logger (category <c>MicroIo.Hosting</c>) and uses the host's <see cref="TimeProvider"/> if one is registered.</remarks>
    public static IServiceCollection AddServiceThread(this IServiceCollection services, string name, Action<ServiceThread> target)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(target);
        return AddHost(services, provider => new ServiceGroup(new ServiceThread(target, HostOptionsFor(provider, name))));
    }

    /// <summary>Registers a hosted service that runs <paramref name="body"/> on the event loop of a new <see cref="LoopServiceThread"/> named <paramref name="name"/>.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The name of the service and of its thread.</param>
    /// <param name="body">The service body, run on the loop: it calls <see cref="ServiceThread.Started"/> when ready and returns when its token is cancelled.</param>
    /// <returns>The service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/>, <paramref name="name"/> or <paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    /// <remarks>The service logs through the host's logger (category <c>MicroIo.Hosting</c>) and uses the host's <see cref="TimeProvider"/> if one is registered.</remarks>
    public static IServiceCollection AddLoopServiceThread(this IServiceCollection services, string name, Func<LoopServiceThread, CancellationToken, Task> body)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(body);
        return AddHost(services, provider => new ServiceGroup(new LoopServiceThread(body, HostOptionsFor(provider, name))));
    }

    /// <summary>Registers a loop service whose body takes only the task group's token, built with the host's logger and clock, as a hosted service.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The service's name (its thread's name and the name in its logs).</param>
    /// <param name="body">The service body; it runs on the loop and receives the task group's token. The service reports started just before the body begins.</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="body"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is <see langword="null"/> or empty.</exception>
    public static IServiceCollection AddLoopServiceThread(this IServiceCollection services, string name, Func<CancellationToken, Task> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return services.AddLoopServiceThread(name, (service, ct) =>
        {
            service.Started();
            return body(ct);
        });
    }

    /// <summary>Registers a <see cref="LoopServiceThread"/> subclass as a singleton and as a hosted service (the same as <see cref="AddServiceThread{TService}(IServiceCollection)"/>).</summary>
    /// <typeparam name="TService">The loop service's type; it is resolved from the container.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    public static IServiceCollection AddLoopServiceThread<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TService>(this IServiceCollection services)
        where TService : LoopServiceThread =>
        services.AddServiceThread<TService>();

    /// <summary>Registers a loop service made by a factory as a hosted service (the same as <see cref="AddServiceThread{TService}(IServiceCollection, Func{IServiceProvider, TService})"/>).</summary>
    /// <typeparam name="TService">The loop service's type.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="factory">Makes the service from the host's service provider.</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="factory"/> is <see langword="null"/>.</exception>
    public static IServiceCollection AddLoopServiceThread<TService>(this IServiceCollection services, Func<IServiceProvider, TService> factory)
        where TService : LoopServiceThread =>
        services.AddServiceThread(factory);

    /// <summary>Registers a hosted service that starts the services of the group that <paramref name="factory"/> creates together, and stops them in reverse order.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="factory">Creates the group, once, when the host resolves its hosted services; it gets the host's service provider.</param>
    /// <returns>The service collection.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or <paramref name="factory"/> is <see langword="null"/>.</exception>
    /// <remarks>
    /// The group must not have been started. Its services start in order and the host's start waits for all of them; if one
    /// fails, all are asked to stop and the host's start throws that service's exception. They stop one at a time in reverse
    /// order. The group's members may be singletons of the container, resolved in the factory, so other services can use them.
    /// </remarks>
    public static IServiceCollection AddServiceGroup(this IServiceCollection services, Func<IServiceProvider, ServiceGroup> factory)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(factory);
        return AddHost(services, factory);
    }

    private static IServiceCollection AddHost(IServiceCollection services, Func<IServiceProvider, ServiceGroup> factory)
    {
        services.AddSingleton<IHostedService>(provider => CreateHost(provider, factory(provider)));
        return services;
    }

    private static ServiceGroupHost CreateHost(IServiceProvider provider, ServiceGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        return new ServiceGroupHost(group, provider.GetRequiredService<IHostApplicationLifetime>(), CreateLogger(provider));
    }

    private static ILogger CreateLogger(IServiceProvider provider) =>
        (provider.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger(Log.Category);

    private static ServiceThreadOptions HostOptionsFor(IServiceProvider provider, string name) => new()
    {
        Name = name,
        Logger = CreateLogger(provider),
        TimeProvider = provider.GetService<TimeProvider>(),
    };

    /// <summary>Creates the hosted service of <see cref="AddServiceThread{TService}(IServiceCollection)"/>; as the factory's target, it marks the registration, so a second call for the same type adds nothing.</summary>
    private sealed class ResolvedService(Type serviceType)
    {
        public Type ServiceType { get; } = serviceType;

        public ServiceGroupHost CreateHost(IServiceProvider provider) =>
            HostingServiceCollectionExtensions.CreateHost(provider, new ServiceGroup((ServiceThread)provider.GetRequiredService(ServiceType)));
    }
}
