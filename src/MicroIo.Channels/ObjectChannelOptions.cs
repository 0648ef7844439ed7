namespace MicroIo;

/// <summary>Configures a channel made by <see cref="ObjectChannel.Create{T}(ObjectChannelOptions?)"/>.</summary>
public sealed class ObjectChannelOptions
{
    private readonly int? _capacity;
    private readonly LateSendPolicy _lateSend;

    /// <summary>Gets the most items the channel holds before sends wait (<c>SendAsync</c>) or are refused (<c>Send</c>); <see langword="null"/>, the default, for unbounded.</summary>
    /// <remarks>
    /// The channel never holds more. A send can also wait, or be refused, for a moment while it holds fewer: an item
    /// that a receive has taken keeps its place until the receive has counted it, and room that a receive has just made
    /// goes first to sends already waiting for it.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The value is zero or negative.</exception>
    public int? Capacity
    {
        get => _capacity;
        init
        {
            if (value is { } capacity)
            {
                ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity, nameof(Capacity));
            }

            _capacity = value;
        }
    }

    /// <summary>Gets what a send does after the channel is closed; by default, <see cref="LateSendPolicy.Throw"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined policy.</exception>
    public LateSendPolicy LateSend
    {
        get => _lateSend;
        init
        {
            if (value is not (LateSendPolicy.Throw or LateSendPolicy.Drop))
            {
                throw new ArgumentOutOfRangeException(nameof(LateSend), value, "Unknown late-send policy.");
            }

            _lateSend = value;
        }
    }

    /// <summary>Gets a value indicating whether at most one receive waits at a time (a faster channel); by default, <see langword="false"/>: several receivers may read.</summary>
    /// <remarks>With a single receiver, a second receive that waits while another is waiting throws <see cref="InvalidOperationException"/>.</remarks>
    public bool SingleReceiver { get; init; }
}
