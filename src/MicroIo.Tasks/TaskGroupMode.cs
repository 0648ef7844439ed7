namespace MicroIo;

/// <summary>Specifies what a <see cref="TaskGroup"/> does when a child fails.</summary>
public enum TaskGroupMode
{
    /// <summary>A failing child cancels the group, so its siblings and the body stop; the failures are thrown together at the end.</summary>
    FailFast,

    /// <summary>A failing child does not cancel its siblings; the failures are still thrown together at the end.</summary>
    Supervise,
}
