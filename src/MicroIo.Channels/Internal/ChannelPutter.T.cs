namespace MicroIo.Internal;

/// <summary>A write waiting for room in a full bounded <see cref="ItemQueue{T}"/>, with its item: completed true once the item is moved in, false at the end.</summary>
/// <typeparam name="T">The type of the items.</typeparam>
internal sealed class ChannelPutter<T>(IWaiterOwner owner) : ChannelWaiter<bool>(owner, WaitKind.Put)
{
    /// <summary>The item to write; cleared when the wait leaves its line (by the read that moves it in, the end, or the token), so the wait holds no item it is done with.</summary>
    public T? Item;
}
