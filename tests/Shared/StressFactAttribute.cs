namespace MicroIo.Tests;

/// <summary>
/// Marks a long-only stress test: it runs only in a long run (<c>MICROIO_STRESS=1</c>, or any
/// <c>MICROIO_STRESS_SECONDS</c>), so the default run stays fast. Bounded stress tests that scale with
/// <see cref="StressRun.Duration"/> use a plain <c>[Fact]</c> and run in every build.
/// </summary>
/// <remarks>Pair it with <c>[Trait("Category", "Stress")]</c>, so <c>--filter Category=Stress</c> selects it.</remarks>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class StressFactAttribute : FactAttribute
{
    public StressFactAttribute()
    {
        if (!StressRun.IsLong)
        {
            Skip = "A long stress test: set MICROIO_STRESS_SECONDS (or MICROIO_STRESS=1) to run it.";
        }
    }
}
