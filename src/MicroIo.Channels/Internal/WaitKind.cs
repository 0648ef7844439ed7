namespace MicroIo.Internal;

/// <summary>What a <see cref="ChannelWaiter"/> waits for.</summary>
internal enum WaitKind
{
    /// <summary>A read that takes an item: the next item written is handed to the oldest one.</summary>
    Take,

    /// <summary>A write of an item to a full bounded queue: the oldest one's item is moved in when a read makes room.</summary>
    Put,

    /// <summary>A wait until there is something to read, or room to write, or the end; the same waiter serves both.</summary>
    Ready,
}
