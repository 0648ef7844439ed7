namespace MicroIo.Tests;

/// <summary>
/// Marks a long stress test: it runs only when the environment variable <c>MICROIO_STRESS</c> is <c>1</c>, so the
/// default run (what CI runs) stays fast; the shorter race tests beside it always run.
/// </summary>
/// <remarks>Pair it with <c>[Trait("Category", "Stress")]</c>, so <c>--filter Category=Stress</c> selects it.</remarks>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class StressFactAttribute : FactAttribute
{
    public StressFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("MICROIO_STRESS") != "1")
        {
            Skip = "A stress test: set MICROIO_STRESS=1 to run it.";
        }
    }
}
