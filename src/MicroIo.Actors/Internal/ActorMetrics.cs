using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MicroIo.Internal;

/// <summary>The actors' instruments on the <c>MicroIo</c> meter; each costs a flag check when nobody listens.</summary>
internal static class ActorMetrics
{
    private static readonly Meter s_meter = new("MicroIo", typeof(ActorMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>Counts messages whose handler ran to the end (it returned or threw).</summary>
    public static readonly Counter<long> Handled = s_meter.CreateCounter<long>(
        "microio.actor.items.handled", "{item}", "Messages an actor's handler finished with, successfully or not.");

    /// <summary>Records how long each handler took.</summary>
    public static readonly Histogram<double> HandlerDuration = s_meter.CreateHistogram<double>(
        "microio.actor.handler.duration", "s", "How long an actor's handler took for one message.");

    /// <summary>Returns a timestamp to pass to <see cref="Record"/>, or 0 when nobody listens (so no clock is read).</summary>
    public static long Start() => Handled.Enabled || HandlerDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Records one handled message and its duration, when someone listens.</summary>
    /// <param name="started">What <see cref="Start"/> returned.</param>
    /// <param name="failed">Whether the handler threw or was cancelled (the tag <c>microio.actor.outcome</c>: <c>failure</c> or <c>success</c>).</param>
    public static void Record(long started, bool failed)
    {
        if (started == 0)
        {
            return;
        }

        var tag = new KeyValuePair<string, object?>("microio.actor.outcome", failed ? "failure" : "success");
        Handled.Add(1, tag);
        HandlerDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tag);
    }
}
