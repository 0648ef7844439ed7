namespace MicroIo.Benchmarks;

/// <summary>The category names that group a family's benchmarks, each group with its own baseline.</summary>
internal static class Families
{
    public const string Unbounded = "CrossThread-Unbounded";
    public const string Bounded = "CrossThread-Bounded1024";
    public const string SameThread = "SameThread";
    public const string Blocking = "Blocking";
    public const string Awaiting = "Awaiting";
    public const string Scope = "ScopeEnterExit";
    public const string Deadline = "Deadline";
    public const string Check = "Checkpoint";
    public const string Call = "BlockingCall";
    public const string Submit = "AwaitedSubmit";
}
