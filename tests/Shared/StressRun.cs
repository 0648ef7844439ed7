using System.Diagnostics;
using Xunit.Abstractions;

namespace MicroIo.Tests;

/// <summary>
/// Runs the stress tests (trait <c>Category=Stress</c>) for a bounded time: short by default, so CI runs them on every
/// build, and longer when <c>MICROIO_STRESS_SECONDS</c> is set.
/// </summary>
/// <remarks>
/// <para>
/// <c>MICROIO_STRESS_SECONDS</c>: how long each stress test runs (default 1; e.g. 60 for a long run).
/// <c>MICROIO_STRESS_SEED</c>: the seed to replay (default: a fresh one, printed by every test).
/// <c>MICROIO_STRESS=1</c> (or any <c>MICROIO_STRESS_SECONDS</c>) also enables the long-only <see cref="StressFactAttribute"/> tests.
/// </para>
/// <para>
/// Each iteration gets its own <see cref="Random"/> seeded from the run's seed and the iteration number, and a failure
/// reports both, so one failing iteration replays with <c>MICROIO_STRESS_SEED</c>.
/// </para>
/// </remarks>
internal static class StressRun
{
    /// <summary>The longest any single await of a stress test may take before the test fails as hung.</summary>
    public static readonly TimeSpan HangBound = TimeSpan.FromSeconds(30);

    /// <summary>Gets how long each stress test runs.</summary>
    public static TimeSpan Duration =>
        double.TryParse(Environment.GetEnvironmentVariable("MICROIO_STRESS_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromSeconds(1);

    /// <summary>Gets a value indicating whether this is a long run (set by hand), which also enables the long-only tests.</summary>
    public static bool IsLong =>
        Environment.GetEnvironmentVariable("MICROIO_STRESS") == "1" ||
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MICROIO_STRESS_SECONDS"));

    /// <summary>Gets the seed to replay, or a fresh one.</summary>
    public static int Seed =>
        int.TryParse(Environment.GetEnvironmentVariable("MICROIO_STRESS_SEED"), out var seed) ? seed : Random.Shared.Next();

    /// <summary>Runs <paramref name="iteration"/> until the duration elapses (and at least <paramref name="minIterations"/> times), printing the seed and the figures.</summary>
    /// <returns>The number of iterations and the total of the item counts the iterations returned.</returns>
    public static async Task<(int Iterations, long Items)> RunAsync(
        ITestOutputHelper output,
        Func<Random, int, Task<long>> iteration,
        int minIterations = 3,
        [System.Runtime.CompilerServices.CallerMemberName] string name = "")
    {
        var seed = Seed;
        output.WriteLine($"{name}: seed {seed} (replay with MICROIO_STRESS_SEED={seed}), duration {Duration.TotalSeconds:0.#} s");
        var clock = Stopwatch.StartNew();
        var iterations = 0;
        long items = 0;
        while (iterations < minIterations || clock.Elapsed < Duration)
        {
            var random = new Random(HashCode.Combine(seed, iterations));
            try
            {
                items += await iteration(random, iterations).WaitAsync(HangBound);
            }
            catch (Exception ex)
            {
                throw new StressFailureException($"{name} failed at seed {seed}, iteration {iterations}: {ex.Message}", ex);
            }

            iterations++;
        }

        output.WriteLine($"{name}: {iterations} iterations, {items} items in {clock.Elapsed.TotalSeconds:0.0} s");
        return (iterations, items);
    }

    /// <summary>Runs a synchronous iteration; see <see cref="RunAsync"/>.</summary>
    public static Task<(int Iterations, long Items)> Run(
        ITestOutputHelper output,
        Func<Random, int, long> iteration,
        int minIterations = 3,
        [System.Runtime.CompilerServices.CallerMemberName] string name = "") =>
        RunAsync(output, (random, i) => Task.FromResult(iteration(random, i)), minIterations, name);
}

/// <summary>Reports the seed and the iteration of a failing stress iteration.</summary>
internal sealed class StressFailureException(string message, Exception inner) : Exception(message, inner);
