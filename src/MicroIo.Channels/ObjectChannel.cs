using MicroIo.Internal;

namespace MicroIo;

/// <summary>Creates channels that never lose an item: split send and receive endpoints with explicit close, fail and late-send policy.</summary>
/// <remarks>
/// Both endpoints may be used from any thread. Closing lets receivers take what
/// was sent before, then ends the stream with <see cref="EndOfChannelException"/>; failing delivers what was sent
/// before, then throws the given exception to every receive. Use <see cref="ObjectReceiveChannel{T}.AsChannelReader"/>
/// and <see cref="ObjectSendChannel{T}.AsChannelWriter"/> to plug a channel into code written for System.Threading.Channels.
/// </remarks>
/// <example>
/// <code>
/// var (sender, receiver) = ObjectChannel.Create&lt;string&gt;();
/// new Thread(() =&gt; { sender.Send("hello"); sender.Close(); }).Start();
/// await foreach (var item in receiver) Console.WriteLine(item);
/// </code>
/// </example>
public static class ObjectChannel
{
    /// <summary>Creates a channel and returns its two endpoints.</summary>
    /// <typeparam name="T">The type of the items.</typeparam>
    /// <param name="options">The channel's capacity, late-send policy and receivers; by default, unbounded, throwing on late sends, several receivers.</param>
    /// <returns>The sender and the receiver of one new channel.</returns>
    public static (ObjectSendChannel<T> Sender, ObjectReceiveChannel<T> Receiver) Create<T>(ObjectChannelOptions? options = null)
    {
        var core = new ChannelCore<T>(options ?? new ObjectChannelOptions());
        return (new ObjectSendChannel<T>(core), new ObjectReceiveChannel<T>(core));
    }
}
