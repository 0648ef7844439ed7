namespace MicroIo.Internal;

/// <summary>A write waiting for room in a full bounded <see cref="ItemQueue{T}"/>, with its item: completed true once the item is moved in (or handed to a listed read), false at the end.</summary>
/// <typeparam name="T">The type of the items.</typeparam>
internal sealed class ChannelPutter<T>(IWaiterOwner owner) : ChannelWaiter<bool>(owner, WaitKind.Put)
{
    /// <summary>The item to write; cleared when the wait leaves its line (when it is moved in, at the end, or by the token), or once handed to <see cref="Taker"/>, so the wait holds no item it is done with.</summary>
    public T? Item;

    /// <summary>The listed read that takes <see cref="Item"/> straight from this write when room is made for it (by a read, or by a wait for room that finds room once listed); handed the item and cleared outside the lock.</summary>
    public ChannelWaiter<T>? Taker;
}
