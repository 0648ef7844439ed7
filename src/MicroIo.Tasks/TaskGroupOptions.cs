namespace MicroIo;

/// <summary>Configures a <see cref="TaskGroup"/>: what a failing child does, and the clock of the group's deadline.</summary>
public sealed class TaskGroupOptions
{
    private readonly TaskGroupMode _mode;

    /// <summary>Gets whether a failing child cancels its siblings; by default, <see cref="TaskGroupMode.FailFast"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined mode.</exception>
    public TaskGroupMode Mode
    {
        get => _mode;
        init
        {
            if (value is not (TaskGroupMode.FailFast or TaskGroupMode.Supervise))
            {
                throw new ArgumentOutOfRangeException(nameof(Mode), value, "Unknown task group mode.");
            }

            _mode = value;
        }
    }

    /// <summary>Gets the clock of the group scope's <see cref="CancelScope.Deadline"/>; by default, <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }
}
