namespace MicroIo.Internal;

/// <summary>One wait listed on an <see cref="ItemQueue{T}"/> (a <see cref="WaitKind"/>); completed once.</summary>
/// <remarks>
/// <para>
/// The queue, the end of the queue and the wait's token may race to complete the same wait; whoever claims it first
/// completes it, so every wait ends exactly once. Continuations always run on the thread pool, never inline on the
/// thread that completes the wait: a sender must not be hijacked by its receivers' code.
/// </para>
/// <para>
/// The queue keeps a spare wait of each kind and reuses it, so a wait in steady state allocates nothing. The token's
/// registration is disposed when the result is read, which waits for a callback that is running, so no callback can
/// touch a wait once it is reused. A wait its token ended is never reused: the queue may have taken it off its list
/// already, and a wake that walks that detached list, outside the lock, may still read its <see cref="Next"/>.
/// </para>
/// </remarks>
internal abstract class ChannelWaiter
{
    private static readonly Action<object?, CancellationToken> s_cancel = static (state, token) => ((ChannelWaiter)state!).Cancel(token);

    private CancellationTokenRegistration _registration;
    private int _claimed;
    private bool _cancelled;

    protected ChannelWaiter(IWaiterOwner owner, WaitKind kind)
    {
        Owner = owner;
        Kind = kind;
    }

    /// <summary>The next wait in the queue's list of waits of this kind; written under the queue's lock, or by the one that took a whole list off and wakes it.</summary>
    /// <remarks>A field, so the queue can unlink a wait through a reference to the link that points at it.</remarks>
    public ChannelWaiter? Next;

    /// <summary>Gets what the wait is for, which tells the queue which list it is on.</summary>
    public WaitKind Kind { get; }

    protected IWaiterOwner Owner { get; }

    /// <summary>Lets <paramref name="cancellationToken"/> end the wait; called once the wait is listed, outside the queue's lock, before the wait is handed out.</summary>
    /// <remarks>A token cancelled meanwhile runs the callback here, which unlists the wait and completes it, unless the queue claimed it first.</remarks>
    public void Register(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(s_cancel, this);
        }
    }

    /// <summary>Claims the wait for one completion; false if something else claimed it first.</summary>
    public bool Claim() => Interlocked.Exchange(ref _claimed, 1) == 0;

    /// <summary>Completes the wait with <paramref name="exception"/>; call only after a successful <see cref="Claim"/>.</summary>
    public abstract void Fail(Exception exception);

    /// <summary>Readies the wait for reuse after its result was read; false for a wait its token ended, which must not be reused.</summary>
    /// <remarks>The registration is disposed first, which waits for a callback that is running.</remarks>
    protected bool Recycle()
    {
        _registration.Dispose();
        _registration = default;
        if (_cancelled)
        {
            return false;
        }

        Volatile.Write(ref _claimed, 0);
        return true;
    }

    private void Cancel(CancellationToken token)
    {
        if (!Claim())
        {
            return;
        }

        _cancelled = true;
        Owner.Unlist(this);
        Fail(new OperationCanceledException(token));
    }
}
