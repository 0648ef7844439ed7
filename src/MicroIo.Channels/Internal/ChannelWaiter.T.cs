using System.Threading.Tasks.Sources;

namespace MicroIo.Internal;

/// <summary>A <see cref="ChannelWaiter"/> whose result is a <typeparamref name="TResult"/>: an item, or whether a read or a write can go on.</summary>
/// <typeparam name="TResult">The type of the result.</typeparam>
internal class ChannelWaiter<TResult> : ChannelWaiter, IValueTaskSource<TResult>
{
    private ManualResetValueTaskSourceCore<TResult> _source = new() { RunContinuationsAsynchronously = true };

    public ChannelWaiter(IWaiterOwner owner, WaitKind kind)
        : base(owner, kind)
    {
    }

    /// <summary>Returns the wait as a value task, for the one caller that waits on it.</summary>
    public ValueTask<TResult> AsValueTask() => new(this, _source.Version);

    /// <summary>Completes the wait with <paramref name="result"/>; call only after a successful <see cref="ChannelWaiter.Claim"/>.</summary>
    public void Complete(TResult result) => _source.SetResult(result);

    /// <summary>Claims the wait and completes it with <paramref name="result"/>, unless something else claimed it first.</summary>
    public void Wake(TResult result)
    {
        if (Claim())
        {
            _source.SetResult(result);
        }
    }

    public override void Fail(Exception exception) => _source.SetException(exception);

    public TResult GetResult(short token)
    {
        // Checked before anything is reset: a stale or early GetResult (a value task awaited twice) must throw, and must
        // not recycle a wait that a later caller already holds.
        if (_source.GetStatus(token) == ValueTaskSourceStatus.Pending)
        {
            throw new InvalidOperationException("The wait has not completed.");
        }

        try
        {
            return _source.GetResult(token);
        }
        finally
        {
            // Reset before the claim is cleared, so nothing can claim the wait while its source still holds this result.
            _source.Reset();
            if (Recycle())
            {
                Owner.Return(this);
            }
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _source.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _source.OnCompleted(continuation, state, token, flags);
}
