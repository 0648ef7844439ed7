namespace MicroIo;

/// <summary>Specifies what a send does once its channel is closed or failed.</summary>
/// <remarks>Either way the refused item is counted in <see cref="ChannelStats.Dropped"/>: no item is lost silently.</remarks>
public enum LateSendPolicy
{
    /// <summary>The send throws <see cref="ClosedResourceException"/>.</summary>
    Throw,

    /// <summary>The send returns <see langword="false"/>.</summary>
    Drop,
}
