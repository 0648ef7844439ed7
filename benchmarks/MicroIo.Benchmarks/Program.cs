using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;

namespace MicroIo.Benchmarks;

/// <summary>Runs the suite: every family with BenchmarkDotNet's default job, or, with <c>--short</c>, a few iterations each.</summary>
/// <remarks>
/// <code>
/// dotnet run -c Release --project benchmarks/MicroIo.Benchmarks -- --filter '*'            # everything, default job
/// dotnet run -c Release --project benchmarks/MicroIo.Benchmarks -- --filter '*' --short    # everything, under 10 minutes on 2 cores
/// dotnet run -c Release --project benchmarks/MicroIo.Benchmarks -- --filter '*Channel*' --short
/// </code>
/// Every other argument is BenchmarkDotNet's own (<c>--list flat</c>, <c>--filter</c>, <c>--exporters</c>, …).
/// </remarks>
public static class Program
{
    public static void Main(string[] args)
    {
        var isShort = args.Contains("--short");
        args = [.. args.Where(a => a != "--short")];
        var config = isShort ? ShortConfig() : ManualConfig.Create(DefaultConfig.Instance);

        // BenchmarkDotNet builds a runner project (and MicroIo from source) before it measures; on a busy 2-core machine
        // that can take longer than its default two minutes.
        config = config.WithBuildTimeout(TimeSpan.FromMinutes(15));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }

    /// <summary>One launch, three warm-ups and ten measured iterations of 150 ms: enough for ratios within a run, not for publication.</summary>
    /// <remarks>
    /// Ten iterations rather than five: on the shared 2-core machine single cross-thread iterations read up to twice the
    /// others (73 ns among 30–40 ns), and among five such an iteration moves the mean by a fifth.
    /// </remarks>
    private static ManualConfig ShortConfig() =>
        ManualConfig.Create(DefaultConfig.Instance).AddJob(Job.Default
            .WithId("Short")
            .WithLaunchCount(1)
            .WithWarmupCount(3)
            .WithIterationCount(10)
            .WithIterationTime(TimeInterval.FromMilliseconds(150))
            .AsDefault());
}
