namespace MicroIo.Internal;

/// <summary>A callback given to <see cref="SynchronizationContext.Post"/> (an await continuation, a task group's child), or an action given to <c>CallSoon</c>.</summary>
internal sealed class PostedCallback(SendOrPostCallback callback, object? state) : LoopItem
{
    private static readonly SendOrPostCallback s_runAction = static s => ((Action)s!)();

    /// <summary>Makes the item for an action: it runs it, and nobody waits for it.</summary>
    public static PostedCallback ForAction(Action action) => new(s_runAction, action);

    public override void Invoke() => callback(state);
}
