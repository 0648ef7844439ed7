namespace MicroIo;

/// <summary>
/// Creates cancel scopes that belong together and cancels every active one at once, optionally latching so that
/// scopes entered later start cancelled.
/// </summary>
/// <remarks>
/// Each scope still catches only its own cancellation: a group cancel is the scope's own <see cref="CancelScope.Cancel(string?)"/>.
/// Useful for a service that runs many independent operations (requests, sessions) and must interrupt all of them on
/// a reconnect or a shutdown, and refuse new ones until it is ready again (<see cref="Clear"/>). Every member may be
/// called from any thread.
/// </remarks>
/// <example>
/// <code>
/// var requests = new ScopeGroup();
/// // per request:
/// await requests.CreateScope().RunAsync(async ct =&gt; await HandleAsync(ct));
/// // on disconnect:
/// requests.Cancel("connection lost", latch: true);
/// // once reconnected:
/// requests.Clear();
/// </code>
/// </example>
public sealed class ScopeGroup
{
    private readonly Lock _lock = new();
    private readonly HashSet<CancelScope> _active = [];
    private readonly TimeProvider? _timeProvider;
    private bool _latched;
    private string? _latchReason;

    /// <summary>Initializes a new, empty group.</summary>
    /// <param name="timeProvider">The clock for the deadlines of the scopes it creates; by default, <see cref="TimeProvider.System"/>.</param>
    public ScopeGroup(TimeProvider? timeProvider = null)
    {
        _timeProvider = timeProvider;
    }

    /// <summary>Gets a value indicating whether any scope of the group is active (entered and not yet exited).</summary>
    public bool IsActive
    {
        get
        {
            lock (_lock)
            {
                return _active.Count > 0;
            }
        }
    }

    /// <summary>Gets a value indicating whether the latch is set, so that scopes created or entered now start cancelled.</summary>
    public bool IsLatched
    {
        get
        {
            lock (_lock)
            {
                return _latched;
            }
        }
    }

    /// <summary>Creates a new scope that belongs to the group; it starts cancelled while the latch is set.</summary>
    /// <returns>A new, inactive scope.</returns>
    public CancelScope CreateScope()
    {
        var scope = new CancelScope(_timeProvider, deadline: null, failOnDeadline: false, group: this);
        CancelIfLatched(scope);
        return scope;
    }

    /// <summary>Cancels every active scope of the group, and optionally sets the latch.</summary>
    /// <param name="reason">The reason given to each scope's <see cref="CancelScope.Cancel(string?)"/>.</param>
    /// <param name="latch"><see langword="true"/> to make scopes created or entered later start cancelled until <see cref="Clear"/>.</param>
    /// <returns><see langword="true"/> if any scope was active; otherwise, <see langword="false"/>.</returns>
    public bool Cancel(string? reason = null, bool latch = false)
    {
        CancelScope[] scopes;
        lock (_lock)
        {
            if (latch)
            {
                _latched = true;
                _latchReason = reason;
            }

            scopes = [.. _active];
        }

        foreach (var scope in scopes)
        {
            scope.Cancel(reason);
        }

        return scopes.Length > 0;
    }

    /// <summary>Clears the latch, so that scopes created or entered from now on start uncancelled.</summary>
    /// <remarks>Scopes that were already cancelled stay cancelled: cancellation is level-triggered.</remarks>
    public void Clear()
    {
        lock (_lock)
        {
            _latched = false;
            _latchReason = null;
        }
    }

    internal void OnEnter(CancelScope scope)
    {
        lock (_lock)
        {
            _active.Add(scope);
        }

        // Checked after the scope is in the set, so that a concurrent latching Cancel either sees it or was seen here.
        CancelIfLatched(scope);
    }

    internal void OnExit(CancelScope scope)
    {
        lock (_lock)
        {
            _active.Remove(scope);
        }
    }

    private void CancelIfLatched(CancelScope scope)
    {
        string? reason;
        lock (_lock)
        {
            if (!_latched)
            {
                return;
            }

            reason = _latchReason;
        }

        scope.Cancel(reason);
    }
}
