namespace MicroIo;

/// <summary>
/// Exits a <see cref="CancelScope"/> entered with <see cref="CancelScope.Enter"/> when disposed; a struct, so entering
/// allocates no handle.
/// </summary>
/// <remarks>
/// Use it with <c>using (scope.Enter()) { … }</c> or <c>using var entry = scope.Enter();</c>. Copies share the scope:
/// disposing any copy exits it, and disposing again changes nothing. A <see langword="default"/> entry refers to no scope
/// and disposing it does nothing.
/// </remarks>
public readonly struct CancelScopeEntry : IDisposable, IEquatable<CancelScopeEntry>
{
    private readonly CancelScope? _scope;

    internal CancelScopeEntry(CancelScope scope)
    {
        _scope = scope;
    }

    /// <summary>Gets the scope this entry exits, or <see langword="null"/> for a <see langword="default"/> entry.</summary>
    public CancelScope? Scope => _scope;

    /// <summary>Tells whether two entries refer to the same scope.</summary>
    /// <param name="left">The first entry.</param>
    /// <param name="right">The second entry.</param>
    /// <returns><see langword="true"/> if both refer to the same scope (or both to none).</returns>
    public static bool operator ==(CancelScopeEntry left, CancelScopeEntry right) => left.Equals(right);

    /// <summary>Tells whether two entries refer to different scopes.</summary>
    /// <param name="left">The first entry.</param>
    /// <param name="right">The second entry.</param>
    /// <returns><see langword="true"/> if they refer to different scopes.</returns>
    public static bool operator !=(CancelScopeEntry left, CancelScopeEntry right) => !left.Equals(right);

    /// <summary>Exits the scope: stops its deadline timer, drops its links to the outside and restores the enclosing scope.</summary>
    /// <exception cref="InvalidOperationException">
    /// Called in a different async flow than the one that entered the scope, or while a scope entered inside it is still
    /// active; nothing changed, so the right flow can still exit later.
    /// </exception>
    /// <remarks>Call it from the flow that entered the scope. Disposing an entry whose scope has exited does nothing.</remarks>
    public void Dispose() => _scope?.Exit();

    /// <summary>Tells whether this entry refers to the same scope as another.</summary>
    /// <param name="other">The other entry.</param>
    /// <returns><see langword="true"/> if both refer to the same scope (or both to none).</returns>
    public bool Equals(CancelScopeEntry other) => ReferenceEquals(_scope, other._scope);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is CancelScopeEntry other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _scope is null ? 0 : System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(_scope);
}
