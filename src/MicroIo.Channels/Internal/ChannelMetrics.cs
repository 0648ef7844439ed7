using System.Diagnostics.Metrics;

namespace MicroIo.Internal;

/// <summary>The channels' instruments on the <c>MicroIo</c> meter; each costs a flag check when nobody listens.</summary>
internal static class ChannelMetrics
{
    private static readonly Meter s_meter = new("MicroIo", typeof(ChannelMetrics).Assembly.GetName().Version?.ToString());

    private static readonly LiveInstances<IQueuedCount> s_channels = new();

    /// <summary>Counts items the channels accepted.</summary>
    public static readonly Counter<long> Sent = s_meter.CreateCounter<long>(
        "microio.channel.items.sent", "{item}", "Items the channels accepted.");

    /// <summary>Counts items receivers took.</summary>
    public static readonly Counter<long> Received = s_meter.CreateCounter<long>(
        "microio.channel.items.received", "{item}", "Items receivers took from the channels.");

    /// <summary>Counts late sends refused because a channel was closed or failed.</summary>
    public static readonly Counter<long> Dropped = s_meter.CreateCounter<long>(
        "microio.channel.items.dropped", "{item}", "Late sends refused because the channel was closed or failed.");

    private static readonly ObservableUpDownCounter<long> s_depth;

    static ChannelMetrics()
    {
        s_depth = s_meter.CreateObservableUpDownCounter(
            "microio.channel.queue.depth",
            static () => s_channels.Sum(static c => c.QueuedCount),
            "{item}",
            "Items accepted and not yet received, across the live channels.");
    }

    /// <summary>Adds a channel to the queue-depth total, if someone listens to it (so an unobserved channel costs nothing).</summary>
    /// <remarks>Channels made before a listener subscribed are not in the total.</remarks>
    public static void Track(IQueuedCount channel)
    {
        if (s_depth.Enabled)
        {
            s_channels.Add(channel);
        }
    }

    /// <summary>Adds one to a counter when someone listens.</summary>
    public static void Count(Counter<long> counter)
    {
        if (counter.Enabled)
        {
            counter.Add(1);
        }
    }
}

/// <summary>Exposes a channel's queued count to the metrics without its generic type.</summary>
internal interface IQueuedCount
{
    /// <summary>Gets the number of items accepted and not yet received.</summary>
    long QueuedCount { get; }
}
