namespace MicroIo.Tests;

/// <summary>
/// Keeps a cancelled scope active in an async flow of its own until disposed, so that checkpoints in every other flow
/// take the full check instead of the one-read answer they give while no scope anywhere may be cancelled.
/// </summary>
/// <remarks>For tests of what the full check does (quiet marks): the flow that calls it is left as it was.</remarks>
internal sealed class CancelledElsewhere : IDisposable
{
    private readonly ExecutionContext _flow;
    private readonly CancelScopeEntry _entry;

    public CancelledElsewhere()
    {
        // ExecutionContext.Run restores the caller's context afterwards: the entry stays in the captured flow only.
        ExecutionContext? flow = null;
        CancelScopeEntry entry = default;
        ExecutionContext.Run(
            ExecutionContext.Capture()!,
            _ =>
            {
                var scope = new CancelScope();
                entry = scope.Enter();
                scope.Cancel();
                flow = ExecutionContext.Capture();
            },
            null);
        _flow = flow!;
        _entry = entry;
        CancelScope.MayBeCancelled.ShouldBeTrue();
    }

    public void Dispose() => ExecutionContext.Run(_flow, static entry => ((IDisposable)entry!).Dispose(), _entry);
}
