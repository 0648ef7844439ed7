using System.Diagnostics.CodeAnalysis;
using System.Threading.Channels;

namespace MicroIo.Internal;

/// <summary>Presents a MicroIo channel as a <see cref="ChannelReader{T}"/>, counting every read.</summary>
internal sealed class ReaderAdapter<T>(ChannelCore<T> core) : ChannelReader<T>
{
    public override Task Completion => core.Completion;

    public override bool CanCount => true;

    public override int Count => core.Count;

    public override bool TryRead([MaybeNullWhen(false)] out T item) => core.TryReceive(out item);

    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => core.WaitToReceiveAsync(cancellationToken);
}
