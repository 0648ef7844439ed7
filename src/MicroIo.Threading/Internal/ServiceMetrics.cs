using System.Diagnostics.Metrics;

namespace MicroIo.Internal;

/// <summary>The service threads' instruments on the <c>MicroIo</c> meter; each costs a flag check when nobody listens.</summary>
internal static class ServiceMetrics
{
    private static readonly Meter s_meter = new("MicroIo", typeof(ServiceMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>Counts services that reported started.</summary>
    public static readonly Counter<long> Starts = s_meter.CreateCounter<long>(
        "microio.service.starts", "{service}", "Service threads that reported started.");

    /// <summary>Counts services that failed (before or after starting).</summary>
    public static readonly Counter<long> Failures = s_meter.CreateCounter<long>(
        "microio.service.failures", "{service}", "Service threads that failed, before or after they started.");

    /// <summary>Counts joins that timed out (the service did not end in time).</summary>
    public static readonly Counter<long> JoinTimeouts = s_meter.CreateCounter<long>(
        "microio.service.join.timeouts", "{join}", "Joins (JoinOrLog) that timed out because the service did not end in time.");

    /// <summary>Adds one to a counter, tagged with the service's name, when someone listens.</summary>
    public static void Add(Counter<long> counter, string serviceName)
    {
        if (counter.Enabled)
        {
            counter.Add(1, new KeyValuePair<string, object?>("microio.service.name", serviceName));
        }
    }
}
