namespace MicroIo.Tests;

/// <summary>
/// Keeps a cancelled scope active in an async flow of its own until disposed, so that checkpoints in every other flow
/// take the full check instead of the one-read answer they give while no scope anywhere may be cancelled.
/// </summary>
/// <remarks>
/// For tests of what the full check does (quiet marks). The scope is entered outside any other scope (the flow starts
/// from an empty context), so it never holds, or is held by, a scope under test; the calling flow is left as it was.
/// </remarks>
internal sealed class CancelledElsewhere : IDisposable
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(20);
    private readonly ExecutionContext _flow;
    private readonly CancelScopeEntry _entry;

    public CancelledElsewhere()
    {
        Task<(ExecutionContext Flow, CancelScopeEntry Entry)> entering;
        using (ExecutionContext.SuppressFlow())
        {
            entering = Task.Run(() =>
            {
                var scope = new CancelScope();
                var entry = scope.Enter();
                scope.Cancel();
                return (ExecutionContext.Capture()!, entry);
            });
        }

        entering.Wait(s_bound).ShouldBeTrue();
        (_flow, _entry) = entering.Result;
        CancelScope.MayBeCancelled.ShouldBeTrue();
    }

    public void Dispose() => ExecutionContext.Run(_flow, static entry => ((IDisposable)entry!).Dispose(), _entry);
}
