namespace MicroIo.Tests;

/// <summary>
/// A seeded yield injector for systematic interleaving tests: at each contested point that a test reaches through a
/// callback the public API allows (a handler, a send delegate, a token callback, a step of a racing task), it either
/// goes on, yields to the scheduler, or yields the thread, as the seed decides. Replaying a seed replays the choices.
/// </summary>
/// <remarks>
/// Microsoft.Coyote rewrites assemblies to control every scheduling point; this injector controls only the points the
/// test names, but needs no rewriting and runs inside the ordinary test run (see RELIABILITY.md).
/// </remarks>
internal sealed class Interleaver(int seed)
{
    private readonly Random _random = new(seed);
    private readonly Lock _lock = new();

    public int Seed { get; } = seed;

    /// <summary>Yields or not, as the seed decides.</summary>
    public async Task PointAsync()
    {
        int choice;
        lock (_lock)
        {
            choice = _random.Next(4);
        }

        switch (choice)
        {
            case 0:
                return;
            case 1:
                await Task.Yield();
                return;
            case 2:
                Thread.Yield();
                return;
            default:
                Thread.SpinWait(NextInt(1, 200));
                return;
        }
    }

    /// <summary>Yields the thread or spins, as the seed decides, for points that cannot await.</summary>
    public void Point()
    {
        switch (NextInt(0, 3))
        {
            case 0:
                return;
            case 1:
                Thread.Yield();
                return;
            default:
                Thread.SpinWait(NextInt(1, 200));
                return;
        }
    }

    public int NextInt(int min, int max)
    {
        lock (_lock)
        {
            return _random.Next(min, max);
        }
    }

    /// <summary>Starts the actions on the thread pool, each after its own seeded delay, and waits for all of them.</summary>
    public Task RaceAsync(params Func<Task>[] actions) =>
        Task.WhenAll(actions.Select(action => Task.Run(async () =>
        {
            await PointAsync();
            await action();
        })));

    /// <summary>Runs <paramref name="scenario"/> once per seed from <paramref name="firstSeed"/>, naming the seed in any failure.</summary>
    public static async Task ExploreAsync(int seeds, Func<Interleaver, Task> scenario, int firstSeed = 1)
    {
        for (var seed = firstSeed; seed < firstSeed + seeds; seed++)
        {
            try
            {
                await scenario(new Interleaver(seed)).WaitAsync(StressRun.HangBound);
            }
            catch (Exception ex)
            {
                throw new StressFailureException($"interleaving seed {seed} failed: {ex.Message}", ex);
            }
        }
    }
}
