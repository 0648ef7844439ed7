namespace MicroIo.Internal;

/// <summary>Combines a caller's token with the ambient <see cref="CancelScope"/>'s, for waits that must stop at either.</summary>
/// <remarks>
/// Linked into the packages whose waits honour the ambient scope (they set <c>UsesAmbientScope</c>). It allocates a
/// linked source only when both tokens can be cancelled; dispose it when the wait ends.
/// </remarks>
internal readonly struct AmbientToken : IDisposable
{
    private readonly CancellationTokenSource? _linked;

    private AmbientToken(CancellationTokenSource? linked, CancellationToken token)
    {
        Token = token;
        _linked = linked;
    }

    /// <summary>Gets the token to wait on.</summary>
    public CancellationToken Token { get; }

    /// <summary>Returns the token that is cancelled when <paramref name="cancellationToken"/> or the ambient scope is.</summary>
    public static AmbientToken Link(CancellationToken cancellationToken)
    {
        var ambient = CancelScope.Current?.Token ?? CancellationToken.None;
        if (!ambient.CanBeCanceled)
        {
            return new AmbientToken(null, cancellationToken);
        }

        if (!cancellationToken.CanBeCanceled || cancellationToken == ambient)
        {
            return new AmbientToken(null, ambient);
        }

        var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, ambient);
        return new AmbientToken(linked, linked.Token);
    }

    public void Dispose() => _linked?.Dispose();
}
