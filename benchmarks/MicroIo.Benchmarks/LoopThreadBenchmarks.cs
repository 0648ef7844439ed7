using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Nito.AsyncEx;

namespace MicroIo.Benchmarks;

/// <summary>
/// Family 6: round trips from the benchmark thread into a loop thread: a blocking call that returns a value, and awaited
/// async work; MicroIo's <see cref="LoopServiceThread"/> against Nito.AsyncEx's <see cref="AsyncContextThread"/> (the baseline).
/// </summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class LoopThreadBenchmarks
{
    private const int Calls = 1_000;

    private static readonly Func<int> s_func = static () => 42;
    private static readonly Func<Task<int>> s_work = static () => Task.FromResult(42);
    private static readonly Func<CancellationToken, Task<int>> s_submitted = static _ => Task.FromResult(42);

    private AsyncContextThread _nito = null!;
    private LoopServiceThread _loop = null!;

    [GlobalSetup]
    public void Setup()
    {
        _nito = new AsyncContextThread();
        _loop = new LoopServiceThread(new ServiceThreadOptions { Name = "bench-loop" });
        _loop.Start();
        _loop.WaitStarted(TimeSpan.FromSeconds(10));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _loop.Stop();
        _loop.JoinOrLog(TimeSpan.FromSeconds(10));
        _nito.JoinAsync().Wait(TimeSpan.FromSeconds(10));
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Calls, Description = "Nito AsyncContextThread Factory.Run, blocking")]
    [BenchmarkCategory(Families.Call)]
    public int NitoCall()
    {
        var sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += _nito.Factory.Run(s_func).GetAwaiter().GetResult();
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Calls, Description = "MicroIo LoopServiceThread.CallSync")]
    [BenchmarkCategory(Families.Call)]
    public int CallSync()
    {
        var sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += _loop.CallSync(s_func, Timeout.InfiniteTimeSpan);
        }

        return sum;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Calls, Description = "Nito AsyncContextThread Factory.Run(async), awaited")]
    [BenchmarkCategory(Families.Submit)]
    public async Task<int> NitoSubmit()
    {
        var sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += await _nito.Factory.Run(s_work).ConfigureAwait(false);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Calls, Description = "MicroIo LoopServiceThread.Submit, awaited")]
    [BenchmarkCategory(Families.Submit)]
    public async Task<int> Submit()
    {
        var sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += await _loop.Submit(s_submitted).ConfigureAwait(false);
        }

        return sum;
    }
}
