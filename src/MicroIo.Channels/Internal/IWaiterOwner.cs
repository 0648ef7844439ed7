namespace MicroIo.Internal;

/// <summary>The queue a <see cref="ChannelWaiter"/> belongs to.</summary>
internal interface IWaiterOwner
{
    /// <summary>Takes a cancelled wait off its list, if it is still on it.</summary>
    void Unlist(ChannelWaiter waiter);

    /// <summary>Takes back a wait whose result was read, to reuse it.</summary>
    void Return(ChannelWaiter waiter);
}
