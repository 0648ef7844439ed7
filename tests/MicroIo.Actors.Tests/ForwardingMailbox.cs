using System.Diagnostics.CodeAnalysis;

namespace MicroIo.Tests;

/// <summary>A mailbox of another type than <see cref="Mailbox{T}"/>, which an actor calls through the interface: it passes every call to an inner mailbox, and tests override the calls they watch.</summary>
internal class ForwardingMailbox(Mailbox<int> inner) : IMailbox<int>
{
    public Mailbox<int> Inner => inner;

    public bool IsClosed => inner.IsClosed;

    public ChannelStats Stats => inner.Stats;

    public virtual bool Submit(int item) => inner.Submit(item);

    public ValueTask<int> GetAsync(CancellationToken cancellationToken = default) => inner.GetAsync(cancellationToken);

    public virtual bool TryGet([MaybeNullWhen(false)] out int item) => inner.TryGet(out item);

    public virtual ValueTask<bool> WaitToGetAsync(CancellationToken cancellationToken = default) => inner.WaitToGetAsync(cancellationToken);

    public bool Close() => inner.Close();

    public bool Fail(Exception exception) => inner.Fail(exception);

    public IReadOnlyList<int> DrainNowait(int maxItems = int.MaxValue) => inner.DrainNowait(maxItems);

    public IAsyncEnumerator<int> GetAsyncEnumerator(CancellationToken cancellationToken = default) => inner.GetAsyncEnumerator(cancellationToken);
}
