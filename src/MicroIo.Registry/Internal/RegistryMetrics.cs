using System.Diagnostics.Metrics;

namespace MicroIo.Internal;

/// <summary>The registry's instruments on the <c>MicroIo</c> meter; each costs a flag check when nobody listens.</summary>
internal static class RegistryMetrics
{
    private static readonly Meter s_meter = new("MicroIo", typeof(RegistryMetrics).Assembly.GetName().Version?.ToString());

    private static readonly LiveInstances<IPendingCount> s_registries = new();

    /// <summary>Counts requests that timed out.</summary>
    public static readonly Counter<long> Timeouts = s_meter.CreateCounter<long>(
        "microio.registry.request.timeouts", "{request}", "Requests whose wait timed out before a reply came.");

    /// <summary>Counts requests that ended with a failure (Fail, FailAll, Close, a reply handle's Fail).</summary>
    public static readonly Counter<long> Failures = s_meter.CreateCounter<long>(
        "microio.registry.request.failures", "{request}", "Requests failed by Fail, FailAll, Close or a reply handle.");

    private static readonly ObservableUpDownCounter<long> s_pending;

    static RegistryMetrics()
    {
        s_pending = s_meter.CreateObservableUpDownCounter(
            "microio.registry.request.pending",
            static () => s_registries.Sum(static r => r.PendingCount),
            "{request}",
            "Requests registered and not yet answered, across the live registries.");
    }

    /// <summary>Adds a registry to the pending total, if someone listens to it (so an unobserved registry costs nothing).</summary>
    /// <remarks>Registries made before a listener subscribed are not in the total.</remarks>
    public static void Track(IPendingCount registry)
    {
        if (s_pending.Enabled)
        {
            s_registries.Add(registry);
        }
    }

    /// <summary>Adds to a counter when someone listens.</summary>
    public static void Add(Counter<long> counter, long value = 1)
    {
        if (counter.Enabled && value != 0)
        {
            counter.Add(value);
        }
    }
}

/// <summary>Exposes a registry's pending count to the metrics without its generic type.</summary>
internal interface IPendingCount
{
    /// <summary>Gets the number of pending requests.</summary>
    long PendingCount { get; }
}
