using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MicroIo.Internal;

/// <summary>
/// Runs the services of one <see cref="ServiceGroup"/> as one hosted service: start waits for every service to report
/// started, a service that fails or ends while the host runs stops the application, and stop goes in reverse start order.
/// </summary>
/// <remarks>
/// <para>
/// The host calls <see cref="StartAsync"/> and <see cref="StopAsync"/> from its own flow; the watchers run on the thread
/// pool. The state (<see cref="Phase"/>) decides what a service's end means: during start it fails the start, while
/// running it stops the application, and once stopping it is expected.
/// </para>
/// <para>
/// The host bounds both calls with their tokens: since .NET 8 it cancels the token of <c>StartAsync</c> after
/// <c>HostOptions.StartupTimeout</c> (and when the application stops), and the token of <c>StopAsync</c> after
/// <c>HostOptions.ShutdownTimeout</c>. Honouring the tokens is how this class honours those timeouts: it cannot read
/// <c>HostOptions</c>, which lives in Microsoft.Extensions.Hosting, outside this package's dependency graph.
/// </para>
/// </remarks>
internal sealed class ServiceGroupHost : IHostedService, IDisposable
{
    private const string StopReason = "the host is stopping";
    private const string RollbackReason = "a MicroIo service of the host did not start";
    private const string CancelledReason = "host start was cancelled";

    private readonly Lock _lock = new();
    private readonly ServiceGroup _group;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;

    private Phase _phase;
    private Entry[]? _entries;

    // Replaced on every turn of the start wait: a watcher completes the current one, so the wait wakes when a service's
    // scope closes or its body ends, without spinning on a signal that was set on an earlier turn.
    private TaskCompletionSource? _changed;

    public ServiceGroupHost(ServiceGroup group, IHostApplicationLifetime lifetime, ILogger logger)
    {
        _group = group;
        _lifetime = lifetime;
        _logger = logger;
    }

    private enum Phase
    {
        Created,
        Starting,
        Running,
        Stopping,
    }

    /// <summary>Starts every service in order, and waits until all have reported started, one failed, or the token is cancelled.</summary>
    /// <exception cref="OperationCanceledException">The token was cancelled first (host start cancelled, its startup timeout elapsed, or the application stopped).</exception>
    /// <remarks>Any other exception is the failing service's own: <see cref="ServiceStartException"/> is unwrapped to its cause.</remarks>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_phase != Phase.Created)
            {
                throw new InvalidOperationException("These MicroIo services were already started by the host; a hosted service starts once.");
            }

            // A start cancelled before it began starts no thread.
            _phase = cancellationToken.IsCancellationRequested ? Phase.Stopping : Phase.Starting;
        }

        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            _group.Start();
        }
        catch (Exception ex)
        {
            Log.StartFailed(_logger, Names(_group.Services), ex);
            SetPhase(Phase.Stopping);
            throw;
        }

        var entries = _group.Services.Select(s => new Entry(s)).ToArray();
        lock (_lock)
        {
            _entries = entries;
        }

        foreach (var entry in entries)
        {
            _ = WatchAsync(entry);
        }

        var waits = entries.Select(e => e.Service.WaitStartedAsync(cancellationToken)).ToArray();
        foreach (var wait in waits)
        {
            // A start that fails or is cancelled leaves the other waits behind; their faults must not surface later as
            // unobserved task exceptions.
            _ = wait.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        while (true)
        {
            // Taken before the checks: a service that closes or ends after them completes this signal and wakes the wait.
            var changed = NewChangedSignal();
            for (var i = 0; i < entries.Length; i++)
            {
                if (StartFailure(entries[i].Service, waits[i]) is { } failure)
                {
                    FailStart(entries[i], failure);
                }
            }

            if (waits.All(w => w.IsCompletedSuccessfully))
            {
                break;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                CancelStart(entries, waits, cancellationToken);
            }

            await Task.WhenAny([.. waits.Where(w => !w.IsCompleted), changed]).ConfigureAwait(false);
        }

        SetPhase(Phase.Running);
        foreach (var entry in entries)
        {
            Log.Started(_logger, entry.Service.Name);

            // A service that closed or ended between the last check and the switch to Running woke a wait that no longer
            // listens; it is reported here instead, once (the report is idempotent).
            if (HasClosedOrEnded(entry.Service))
            {
                OnEndWhileRunning(entry);
            }
        }
    }

    /// <summary>Stops the services one at a time in reverse start order, joining each before the next, until the token is cancelled; then logs each that has not ended.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Entry[] entries;
        lock (_lock)
        {
            _phase = Phase.Stopping;
            entries = _entries ?? [.. _group.Services.Select(s => new Entry(s))];
        }

        var waited = new bool[entries.Length];
        for (var i = entries.Length - 1; i >= 0; i--)
        {
            var service = entries[i].Service;
            StopQuietly(service, StopReason);

            // Once the shutdown timeout has passed, the rest are still asked to stop, in order, but not waited for.
            if (!cancellationToken.IsCancellationRequested)
            {
                waited[i] = true;
                try
                {
                    await service.JoinAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // The shutdown timeout elapsed: reported below, with every other service that did not end.
                }
            }
        }

        for (var i = entries.Length - 1; i >= 0; i--)
        {
            var service = entries[i].Service;
            if (service.Join(TimeSpan.Zero))
            {
                Log.Stopped(_logger, service.Name);
            }
            else if (waited[i])
            {
                Log.DidNotStop(_logger, service.Name);
            }
            else
            {
                Log.NotWaitedFor(_logger, service.Name);
            }

            if (FailureOf(service) is { } failure)
            {
                ReportFailure(entries[i], failure, whileRunning: false);
            }
        }
    }

    /// <summary>Asks every service to stop, in reverse start order, without waiting: the host is disposed, maybe without a stop (after a failed start).</summary>
    public void Dispose()
    {
        SetPhase(Phase.Stopping);
        StopAll(StopReason);
    }

    private static Exception? FailureOf(ServiceThread service) => service.Exception ?? service.Scope.Exception;

    private static bool HasClosedOrEnded(ServiceThread service) => service.Scope.IsClosed || service.Join(TimeSpan.Zero);

    /// <summary>Gets why the start of a service failed, or <see langword="null"/> while it has not (yet) failed.</summary>
    private static Exception? StartFailure(ServiceThread service, Task wait)
    {
        if (wait.IsFaulted)
        {
            var error = wait.Exception.InnerException!;
            return error is ServiceStartException { InnerException: { } cause } ? cause : error;
        }

        if (FailureOf(service) is { } failure)
        {
            return failure;
        }

        // A service that has not reported started yet settles its wait as soon as its scope closes or its body ends; that
        // wait then says precisely why. One that had started and then stopped during the host's start has no such wait.
        if (wait.IsCompletedSuccessfully && HasClosedOrEnded(service))
        {
            var why = service.Scope.IsClosed ? service.Scope.Reason ?? "it was stopped" : "its body ended";
            return new ClosedResourceException($"The MicroIo service '{service.Name}' stopped while the host was starting ({why}).");
        }

        return null;
    }

    private static string Names(IEnumerable<ServiceThread> services) => string.Join(", ", services.Select(s => s.Name));

    private static int SetExitCode()
    {
        // A code already set (by the application, or by an earlier failure) is kept: only a success is turned into a failure.
        if (Environment.ExitCode == 0)
        {
            Environment.ExitCode = 1;
        }

        return Environment.ExitCode;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void FailStart(Entry entry, Exception failure)
    {
        // Reported here and thrown to the host: a later StopAsync must not report it again, nor turn it into an exit code.
        Interlocked.Exchange(ref entry.FailureReported, 1);
        Log.StartFailed(_logger, entry.Service.Name, failure);
        SetPhase(Phase.Stopping);
        StopAll(RollbackReason);

        // The original exception, with its original stack trace: the cause, not a MicroIo wrapper.
        ExceptionDispatchInfo.Throw(failure);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void CancelStart(Entry[] entries, Task[] waits, CancellationToken cancellationToken)
    {
        var late = Names(entries.Where((_, i) => !waits[i].IsCompletedSuccessfully).Select(e => e.Service));
        Log.StartCancelled(_logger, late);
        SetPhase(Phase.Stopping);
        StopAll(CancelledReason);
        throw new OperationCanceledException(
            $"Host start was cancelled before these MicroIo services reported started: {late}. The host cancels its start when HostOptions.StartupTimeout elapses, when the application is stopped, or when the caller's token is cancelled.",
            null,
            cancellationToken);
    }

    private async Task WatchAsync(Entry entry)
    {
        var service = entry.Service;
        await Task.WhenAny(service.Scope.WaitAsync(), service.JoinAsync(Timeout.InfiniteTimeSpan)).ConfigureAwait(false);

        Phase phase;
        TaskCompletionSource? changed;
        lock (_lock)
        {
            phase = _phase;
            changed = _changed;
        }

        switch (phase)
        {
            case Phase.Starting:
                changed?.TrySetResult();
                break;
            case Phase.Running:
                OnEndWhileRunning(entry);
                break;
            default:
                // Stopping: the host asked for it.
                break;
        }
    }

    /// <summary>Reports, once, a service that failed, was stopped or ended while the host was running, and stops the application.</summary>
    private void OnEndWhileRunning(Entry entry)
    {
        if (Interlocked.Exchange(ref entry.EndReported, 1) != 0)
        {
            return;
        }

        var service = entry.Service;
        if (FailureOf(service) is { } failure)
        {
            ReportFailure(entry, failure, whileRunning: true);
        }
        else if (!_lifetime.ApplicationStopping.IsCancellationRequested)
        {
            if (service.Scope.IsClosed)
            {
                Log.StoppedWhileRunning(_logger, service.Name, service.Scope.Reason);
            }
            else
            {
                Log.EndedWhileRunning(_logger, service.Name);
            }
        }

        // A service that fails after a clean stop is still caught: StopAsync looks at every service once it has ended.
        _lifetime.StopApplication();
    }

    private void ReportFailure(Entry entry, Exception failure, bool whileRunning)
    {
        if (Interlocked.Exchange(ref entry.FailureReported, 1) != 0)
        {
            return;
        }

        var exitCode = SetExitCode();
        if (whileRunning)
        {
            Log.FailedWhileRunning(_logger, entry.Service.Name, exitCode, failure);
        }
        else
        {
            Log.FailedWhileStopping(_logger, entry.Service.Name, exitCode, failure);
        }
    }

    private Task NewChangedSignal()
    {
        lock (_lock)
        {
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _changed.Task;
        }
    }

    private void SetPhase(Phase phase)
    {
        lock (_lock)
        {
            _phase = phase;
        }
    }

    private void StopAll(string reason)
    {
        var services = _group.Services;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            StopQuietly(services[i], reason);
        }
    }

    private void StopQuietly(ServiceThread service, string reason)
    {
        try
        {
            service.Stop(reason);
        }
        catch (AggregateException ex)
        {
            // The scope is closed regardless; a throwing callback must not keep the other services from stopping.
            Log.StopCallbackFailed(_logger, service.Name, ex);
        }
    }

    /// <summary>One service of the group, with what has been reported about it.</summary>
    private sealed class Entry(ServiceThread service)
    {
        public int EndReported;
        public int FailureReported;

        public ServiceThread Service { get; } = service;
    }
}
