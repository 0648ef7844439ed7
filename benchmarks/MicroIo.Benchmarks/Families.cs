namespace MicroIo.Benchmarks;

/// <summary>The category names that group a family's benchmarks, each group with its own baseline, and what the cross-thread families share.</summary>
internal static class Families
{
    /// <summary>The processes each cross-thread benchmark runs in (<c>[ProcessCount]</c>), whose iterations BenchmarkDotNet pools.</summary>
    /// <remarks>
    /// A cross-thread figure depends on a regime that a process keeps for most of its life (where the threads run, how the
    /// pool's workers spin), so one launch draws one regime per row, and a ratio of two rows is a ratio of two draws: the
    /// registry's awaiting round trip read 0.58–1.60× its baseline over six whole-suite runs, and 0.94–1.04× in processes
    /// that alternated the two (docs/benchmarks.md, family 3). Two launches keep the short mode under ten minutes.
    /// </remarks>
    public const int CrossThreadLaunches = 2;

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
