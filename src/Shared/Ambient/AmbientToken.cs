namespace MicroIo.Internal;

/// <summary>Combines a caller's token with the ambient <see cref="CancelScope"/>'s, for waits that must stop at either.</summary>
/// <remarks>
/// Linked into the packages whose waits honour the ambient scope (they set <c>UsesAmbientScope</c>). It allocates a
/// linked source only when both tokens can be cancelled; dispose it when the wait ends.
/// </remarks>
internal readonly struct AmbientToken : IDisposable
{
    private readonly CancellationTokenSource? _linked;
    private readonly CancellationToken _caller;
    private readonly CancellationToken _ambient;

    private AmbientToken(CancellationTokenSource? linked, CancellationToken token, CancellationToken caller, CancellationToken ambient)
    {
        Token = token;
        _linked = linked;
        _caller = caller;
        _ambient = ambient;
    }

    /// <summary>Gets the token to wait on.</summary>
    public CancellationToken Token { get; }

    /// <summary>Returns the token that is cancelled when <paramref name="cancellationToken"/> or the ambient scope is.</summary>
    public static AmbientToken Link(CancellationToken cancellationToken)
    {
        var ambient = CancelScope.Current?.Token ?? CancellationToken.None;
        if (!ambient.CanBeCanceled)
        {
            return new AmbientToken(null, cancellationToken, cancellationToken, ambient);
        }

        if (!cancellationToken.CanBeCanceled || cancellationToken == ambient)
        {
            return new AmbientToken(null, ambient, cancellationToken, ambient);
        }

        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, ambient);
        return new AmbientToken(linked, linked.Token, cancellationToken, ambient);
    }

    /// <summary>Returns the cancellation to throw once <see cref="Token"/> fired: a plain one that carries the token that was really cancelled (the caller's first), not the linked one.</summary>
    public OperationCanceledException Cancelled(OperationCanceledException inner) =>
        new(inner.Message, inner, _caller.IsCancellationRequested ? _caller : _ambient);

    public void Dispose() => _linked?.Dispose();
}
