using BenchmarkDotNet.Attributes;

namespace MicroIo.Benchmarks;

/// <summary>Family 5: spawn and join 10,000 trivial children; the baseline is <see cref="Task.WhenAll(Task[])"/> over <see cref="Task.Run(Action)"/>.</summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
public class TaskGroupBenchmarks
{
    private const int Children = 10_000;

    private static readonly Func<CancellationToken, Task> s_child = static _ => Task.CompletedTask;
    private static readonly Action s_action = static () => { };

    private readonly CancellationTokenSource _outer = new();

    [Benchmark(Baseline = true, OperationsPerInvoke = Children, Description = "Task.WhenAll over Task.Run")]
    public Task WhenAllTaskRun()
    {
        var tasks = new Task[Children];
        for (var i = 0; i < Children; i++)
        {
            tasks[i] = Task.Run(s_action);
        }

        return Task.WhenAll(tasks);
    }

    [Benchmark(OperationsPerInvoke = Children, Description = "Task.WhenAll over Task.Run, a linked CTS per child")]
    public Task WhenAllTaskRunLinked()
    {
        var tasks = new Task[Children];
        var token = _outer.Token;
        for (var i = 0; i < Children; i++)
        {
            tasks[i] = Task.Run(() =>
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(token);
            });
        }

        return Task.WhenAll(tasks);
    }

    [Benchmark(OperationsPerInvoke = Children, Description = "MicroIo TaskGroup.StartSoon")]
    public Task TaskGroup() => global::MicroIo.TaskGroup.RunAsync(static group =>
    {
        for (var i = 0; i < Children; i++)
        {
            group.StartSoon(s_child);
        }

        return Task.CompletedTask;
    });
}
