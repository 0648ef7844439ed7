namespace MicroIo;

/// <summary>Holds a snapshot of a channel's counters, in which <c>Sent == Received + Queued</c> always holds, with drops counted apart.</summary>
/// <param name="Sent">The number of items the channel accepted.</param>
/// <param name="Received">The number of accepted items a receiver has taken.</param>
/// <param name="Dropped">The number of sends refused because the channel was closed or failed.</param>
/// <param name="Queued">The number of accepted items not yet taken (never counting the end of the channel).</param>
/// <param name="IsClosed">Whether the channel was closed or failed (it may still hold items).</param>
public readonly record struct ChannelStats(long Sent, long Received, long Dropped, long Queued, bool IsClosed);
