using System.Diagnostics.CodeAnalysis;

namespace MicroIo;

/// <summary>Queues messages first in, first out over an <see cref="ObjectChannel"/>; late messages are dropped and counted by default.</summary>
/// <typeparam name="T">The type of the messages.</typeparam>
/// <remarks>
/// Submit from any thread; consume with <see cref="GetAsync"/>, <c>await foreach</c> or an <see cref="ActorCore{T}"/>.
/// <see cref="GetAsync"/> and <c>await foreach</c> pause as a channel's receive does (see
/// <see cref="ObjectReceiveChannel{T}"/>): finding the mailbox empty after a burst, they spin for about 3 µs before they
/// wait.
/// </remarks>
/// <example>
/// <code>
/// var mailbox = new Mailbox&lt;string&gt;();
/// readerThread = new Thread(() =&gt; { foreach (var line in ReadLines()) mailbox.Submit(line); mailbox.Close(); });
/// await foreach (var line in mailbox) Handle(line);
/// </code>
/// </example>
public sealed class Mailbox<T> : IMailbox<T>
{
    private readonly ObjectSendChannel<T> _sender;
    private readonly ObjectReceiveChannel<T> _receiver;

    /// <summary>Initializes a new, open, unbounded mailbox.</summary>
    /// <param name="lateSend">What <see cref="Submit"/> does after a close; by default, <see cref="LateSendPolicy.Drop"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="lateSend"/> is not a defined policy.</exception>
    public Mailbox(LateSendPolicy lateSend = LateSendPolicy.Drop)
    {
        (_sender, _receiver) = ObjectChannel.Create<T>(new ObjectChannelOptions { LateSend = lateSend });
    }

    /// <inheritdoc/>
    public bool IsClosed => _sender.IsClosed;

    /// <inheritdoc/>
    public ChannelStats Stats => _sender.Stats;

    /// <inheritdoc/>
    public bool Submit(T item) => _sender.Send(item);

    /// <inheritdoc/>
    public ValueTask<T> GetAsync(CancellationToken cancellationToken = default) => _receiver.ReceiveAsync(cancellationToken);

    /// <inheritdoc/>
    public bool TryGet([MaybeNullWhen(false)] out T item) => _receiver.TryReceive(out item);

    /// <inheritdoc/>
    public ValueTask<bool> WaitToGetAsync(CancellationToken cancellationToken = default) => _receiver.WaitToReceiveAsync(cancellationToken);

    /// <inheritdoc/>
    public bool Close() => _sender.Close();

    /// <inheritdoc/>
    public bool Fail(Exception exception) => _sender.Fail(exception);

    /// <inheritdoc/>
    public IReadOnlyList<T> DrainNowait(int maxItems = int.MaxValue) => _receiver.DrainNowait(maxItems);

    /// <inheritdoc/>
    public IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default) => _receiver.GetAsyncEnumerator(cancellationToken);
}
