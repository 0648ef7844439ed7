using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Starts a set of <see cref="ServiceThread"/> instances together, waits for all of them to start under one deadline,
/// and stops them in reverse start order.
/// </summary>
/// <remarks>
/// <para>
/// Start is atomic: <see cref="Start"/> starts every service, and if one fails to start (or the deadline passes),
/// <see cref="WaitStarted(TimeSpan)"/> stops and joins all of them before it throws, so no half-started set is left
/// running. Stopping goes in reverse start order, so a service is stopped before the ones it was started after (and may
/// depend on).
/// </para>
/// <para>Every member may be called from any thread. The fluent members return the group.</para>
/// </remarks>
/// <example>
/// <code>
/// var services = new ServiceGroup(iopub, stdin, heartbeat).Start().WaitStarted(TimeSpan.FromSeconds(5));
/// // ...
/// services.StopJoin(TimeSpan.FromSeconds(1));
/// </code>
/// </example>
public sealed class ServiceGroup
{
    private const string RollbackReason = "a service of the group did not start";

    private readonly Lock _lock = new();
    private readonly List<ServiceThread> _services = [];
    private bool _started;

    /// <summary>Initializes a group with the given services, in start order.</summary>
    /// <param name="services">The services; more can be added with <see cref="Add(ServiceThread[])"/> until the group starts.</param>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or one of its items is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A service appears twice.</exception>
    public ServiceGroup(params ServiceThread[] services)
    {
        Add(services);
    }

    /// <summary>Gets the clock that measures the group's deadlines; by default, <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Gets the services of the group, in start order.</summary>
    public IReadOnlyList<ServiceThread> Services
    {
        get
        {
            lock (_lock)
            {
                return [.. _services];
            }
        }
    }

    /// <summary>Adds services to the end of the start order.</summary>
    /// <param name="services">The services to add.</param>
    /// <returns>This group.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> or one of its items is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The group has started, or a service is already in the group (or given twice).</exception>
    public ServiceGroup Add(params ServiceThread[] services)
    {
        ArgumentNullException.ThrowIfNull(services);
        foreach (var service in services)
        {
            ArgumentNullException.ThrowIfNull(service, nameof(services));
        }

        lock (_lock)
        {
            if (_started)
            {
                throw new InvalidOperationException("The group has started; services can no longer be added to it.");
            }

            for (var i = 0; i < services.Length; i++)
            {
                if (_services.Contains(services[i]) || Array.IndexOf(services, services[i]) != i)
                {
                    throw new InvalidOperationException($"The service '{services[i].Name}' is already in the group.");
                }
            }

            _services.AddRange(services);
        }

        return this;
    }

    /// <summary>Starts every service, in order, and returns without waiting for them to report started.</summary>
    /// <returns>This group.</returns>
    /// <exception cref="InvalidOperationException">The group, or one of its services, was already started; nothing was started.</exception>
    /// <remarks>If starting a thread throws, the services started before it are stopped, then the exception is rethrown.</remarks>
    public ServiceGroup Start()
    {
        ServiceThread[] services;
        lock (_lock)
        {
            if (_started)
            {
                throw new InvalidOperationException("The group was already started; a group starts once.");
            }

            services = [.. _services];
            foreach (var service in services)
            {
                if (service.HasThreadStarted)
                {
                    throw new InvalidOperationException($"The service '{service.Name}' was already started outside the group.");
                }
            }

            _started = true;
        }

        var count = 0;
        try
        {
            foreach (var service in services)
            {
                service.Start();
                count++;
            }
        }
        catch
        {
            for (var i = count - 1; i >= 0; i--)
            {
                services[i].Stop(RollbackReason);
            }

            throw;
        }

        return this;
    }

    /// <summary>Blocks until every service has started, under one deadline; if one does not, stops and joins them all, then throws.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns>This group.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The group has not been started.</exception>
    /// <exception cref="ServiceStartException">A service failed, was stopped, or ended before it started; the inner exception is why.</exception>
    /// <exception cref="TimeoutException">Not every service started within <paramref name="timeout"/>.</exception>
    /// <remarks>
    /// A failure ends the wait as soon as it happens, even while services before it are still starting. Before throwing,
    /// the group stops every service (in reverse order) and waits up to <paramref name="timeout"/> again for them to end,
    /// logging any that do not, as <see cref="JoinOrLog(TimeSpan)"/> does.
    /// </remarks>
    public ServiceGroup WaitStarted(TimeSpan timeout)
    {
        Timeouts.Validate(timeout);
        var services = StartedServices();
        var start = TimeProvider.GetTimestamp();
        while (true)
        {
            // Taken before the failure check: a service that settles after the check is among the tasks waited on, so its
            // failure wakes the wait instead of being noticed only at the deadline.
            var pending = PendingStarts(services);
            ThrowIfAnyFailed(services, timeout);
            if (pending.Length == 0)
            {
                return this;
            }

            if (!Waits.Wait(Task.WhenAny(pending), Waits.Remaining(TimeProvider, start, timeout), TimeProvider))
            {
                ThrowIfAnyFailed(services, timeout);
                var timedOut = NotStartedInTime(services, timeout);
                Rollback(timeout);
                throw timedOut;
            }
        }
    }

    /// <summary>Waits asynchronously until every service has started, under one deadline; if one does not, stops and joins them all, then throws.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait; the services are then left as they are.</param>
    /// <returns>A task that completes when every service has started.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="InvalidOperationException">The group has not been started.</exception>
    /// <exception cref="ServiceStartException">A service failed, was stopped, or ended before it started; the inner exception is why.</exception>
    /// <exception cref="TimeoutException">Not every service started within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>The asynchronous twin of <see cref="WaitStarted(TimeSpan)"/>; a cancellation is the caller's decision, not a failed start, so it stops nothing.</remarks>
    public Task WaitStartedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        return WaitStartedCoreAsync(StartedServices(), timeout, cancellationToken);
    }

    /// <summary>Blocks until every service has started, however long that takes; if one fails, stops and joins them all, then throws.</summary>
    /// <returns>This group.</returns>
    /// <exception cref="InvalidOperationException">The group has not been started.</exception>
    /// <exception cref="ServiceStartException">A service failed, was stopped, or ended before it started; the inner exception is why.</exception>
    public ServiceGroup WaitStarted() => WaitStarted(Timeout.InfiniteTimeSpan);

    /// <summary>Stops every service in reverse start order, then blocks until all have ended, however long that takes.</summary>
    /// <returns><see langword="true"/>: every service has ended.</returns>
    /// <exception cref="InvalidOperationException">Called on a member's own thread.</exception>
    public bool StopJoin() => StopJoin(Timeout.InfiniteTimeSpan);

    /// <summary>Asks every service to stop, in reverse start order, without waiting.</summary>
    /// <param name="reason">Why the services are stopping.</param>
    /// <returns>This group.</returns>
    /// <exception cref="AggregateException">A callback registered on a service's scope threw; every service was still asked to stop.</exception>
    public ServiceGroup Stop(string? reason = "stop")
    {
        var services = Services;
        List<Exception>? errors = null;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            try
            {
                services[i].Stop(reason);
            }
            catch (AggregateException ex)
            {
                (errors ??= []).Add(ex);
            }
        }

        if (errors is not null)
        {
            throw new AggregateException("Callbacks registered on the services' scopes threw while the group was stopping.", errors);
        }

        return this;
    }

    /// <summary>Blocks until every service has ended, under one deadline, and logs each one that did not.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns><see langword="true"/> if every service has ended (or was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <remarks>Each service reports through its own logger, as <see cref="ServiceThread.JoinOrLog(TimeSpan)"/> does.</remarks>
    public bool JoinOrLog(TimeSpan timeout)
    {
        Timeouts.Validate(timeout);
        ThrowIfOnMemberThread(nameof(JoinOrLog));
        var services = Services;
        Waits.Wait(Task.WhenAll(Ends(services)), timeout, TimeProvider);
        return ReportJoins(services, timeout);
    }

    /// <summary>Waits asynchronously until every service has ended, under one deadline, and logs each one that did not.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait; nothing is logged then.</param>
    /// <returns><see langword="true"/> if every service has ended (or was never started); otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task<bool> JoinOrLogAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        ThrowIfOnMemberThread(nameof(JoinOrLogAsync));
        return JoinOrLogCoreAsync(Services, timeout, cancellationToken);
    }

    /// <summary>Stops every service in reverse start order, then blocks until all have ended, under one deadline, logging each one that did not.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <returns><see langword="true"/> if every service has ended; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="AggregateException">A callback registered on a service's scope threw; every service was still stopped and joined.</exception>
    public bool StopJoin(TimeSpan timeout)
    {
        Timeouts.Validate(timeout);
        ThrowIfOnMemberThread(nameof(StopJoin));
        AggregateException? stopError = null;
        try
        {
            Stop();
        }
        catch (AggregateException ex)
        {
            stopError = ex;
        }

        var ended = JoinOrLog(timeout);
        return stopError is null ? ended : throw stopError;
    }

    /// <summary>Stops every service in reverse start order, then waits asynchronously until all have ended, under one deadline, logging each one that did not.</summary>
    /// <param name="timeout">How long to wait for all of them together, or <see cref="Timeout.InfiniteTimeSpan"/>.</param>
    /// <param name="cancellationToken">A token that ends the wait (the services stay stopped); nothing is logged then.</param>
    /// <returns><see langword="true"/> if every service has ended; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite, or too large.</exception>
    /// <exception cref="AggregateException">A callback registered on a service's scope threw; every service was still stopped.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task<bool> StopJoinAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Validate(timeout);
        ThrowIfOnMemberThread(nameof(StopJoinAsync));
        Stop();
        return JoinOrLogCoreAsync(Services, timeout, cancellationToken);
    }

    /// <summary>Throws if the caller runs on a member's thread: the group's joins would wait for the caller itself to end.</summary>
    private void ThrowIfOnMemberThread(string member)
    {
        if (Services.FirstOrDefault(s => s.IsOwnThread) is { } own)
        {
            throw new InvalidOperationException(
                $"{member} cannot be called on the thread of '{own.Name}', a member of the group: it would wait for itself to end. Call Stop() from there instead.");
        }
    }

    private static Task[] Ends(IReadOnlyList<ServiceThread> services) =>
        [.. services.Where(s => s.HasThreadStarted).Select(s => s.Ended)];

    private static Task[] PendingStarts(ServiceThread[] services) =>
        [.. services.Select(s => s.StartSettled).Where(t => !t.IsCompleted)];

    private static bool ReportJoins(IReadOnlyList<ServiceThread> services, TimeSpan timeout)
    {
        var ended = true;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            ended &= services[i].ReportJoinWithoutWaiting(timeout);
        }

        return ended;
    }

    private static TimeoutException NotStartedInTime(ServiceThread[] services, TimeSpan timeout)
    {
        var late = services.Where(s => !s.StartSettled.IsCompleted).Select(s => s.Name);
        return new TimeoutException($"Not every service of the group started within {timeout}; still starting: {string.Join(", ", late)}.");
    }

    private ServiceThread[] StartedServices()
    {
        lock (_lock)
        {
            if (!_started)
            {
                throw new InvalidOperationException("The group has not been started: call Start() first.");
            }

            return [.. _services];
        }
    }

    /// <summary>Rolls the group back and throws the first failed service's start failure, in start order.</summary>
    private void ThrowIfAnyFailed(ServiceThread[] services, TimeSpan timeout)
    {
        if (services.FirstOrDefault(s => s.HasStartFailed) is { } failed)
        {
            Rollback(timeout);
            failed.ThrowIfNotStarted();
        }
    }

    private void Rollback(TimeSpan timeout)
    {
        try
        {
            Stop(RollbackReason);
        }
        catch (AggregateException)
        {
            // The start failure is what the caller must see; the services are stopped regardless of their callbacks.
        }

        JoinOrLog(timeout);
    }

    private async Task WaitStartedCoreAsync(ServiceThread[] services, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var start = TimeProvider.GetTimestamp();
        while (true)
        {
            // Taken before the failure check, as in WaitStarted: a failure after the check wakes the wait.
            var pending = PendingStarts(services);
            await ThrowIfAnyFailedAsync(services, timeout).ConfigureAwait(false);
            if (pending.Length == 0)
            {
                return;
            }

            var remaining = Waits.Remaining(TimeProvider, start, timeout);
            if (!await Waits.WaitAsync(Task.WhenAny(pending), remaining, TimeProvider, cancellationToken).ConfigureAwait(false))
            {
                await ThrowIfAnyFailedAsync(services, timeout).ConfigureAwait(false);
                var timedOut = NotStartedInTime(services, timeout);
                await RollbackAsync(timeout).ConfigureAwait(false);
                throw timedOut;
            }
        }
    }

    private async Task ThrowIfAnyFailedAsync(ServiceThread[] services, TimeSpan timeout)
    {
        if (services.FirstOrDefault(s => s.HasStartFailed) is { } failed)
        {
            await RollbackAsync(timeout).ConfigureAwait(false);
            failed.ThrowIfNotStarted();
        }
    }

    private async Task RollbackAsync(TimeSpan timeout)
    {
        try
        {
            Stop(RollbackReason);
        }
        catch (AggregateException)
        {
            // The start failure is what the caller must see; the services are stopped regardless of their callbacks.
        }

        // Not the caller's token: the rollback is part of failing the start, bounded by the timeout, not something to abandon.
        await JoinOrLogCoreAsync(Services, timeout, CancellationToken.None).ConfigureAwait(false);
    }

    private async Task<bool> JoinOrLogCoreAsync(IReadOnlyList<ServiceThread> services, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await Waits.WaitAsync(Task.WhenAll(Ends(services)), timeout, TimeProvider, cancellationToken).ConfigureAwait(false);
        return ReportJoins(services, timeout);
    }
}
