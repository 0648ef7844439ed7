using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace MicroIo.Benchmarks;

/// <summary>
/// Family 4: the cost of cancellation when nothing is cancelled: entering and leaving a scope, a scope with a deadline,
/// and a checkpoint; against a linked <see cref="CancellationTokenSource"/> plus dispose (the baseline), a source with a
/// timeout, and a plain token check. The row marked "(reference)" is one AsyncLocal read, what a checkpoint inside a
/// scope reads whenever some scope in the process may be cancelled.
/// </summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class CancellationBenchmarks
{
    private static readonly AsyncLocal<object?> s_local = new();
    private static readonly object s_value = new();
    private static readonly Func<CancellationToken, Task> s_syncBody = static _ => Task.CompletedTask;

    private readonly CancellationTokenSource _outer = new();
    private readonly CancellationTokenSource _caller = new();
    private readonly TaskCompletionSource _never = new();
    private CancelScope? _outerScope;
    private CancelScopeEntry _outerEntered;

    [GlobalSetup(Targets = [nameof(ScopeEnterExitNested), nameof(CheckpointInScope)])]
    public void EnterOuterScope()
    {
        // Entered on the benchmark thread, outside any async method, so the ambient scope stays for the whole run.
        _outerScope = new CancelScope();
        _outerEntered = _outerScope.Enter();
    }

    [GlobalCleanup(Targets = [nameof(ScopeEnterExitNested), nameof(CheckpointInScope)])]
    public void ExitOuterScope() => _outerEntered.Dispose();

    [GlobalSetup(Target = nameof(CheckpointAfterAScope))]
    public void EnterAndExitOneScope()
    {
        // Until a process first makes a scope ambient, checkpoints skip the ambient read; most services enter one early
        // (a task group, a loop thread, a concurrent actor), so this is the cost they see outside any scope.
        using (new CancelScope().Enter())
        {
        }
    }

    [GlobalSetup(Target = nameof(CheckpointInScopeWithCallersToken))]
    public void EnterScopeWithCallersToken()
    {
        // A scope run with a caller's token that can be cancelled (a request's or a host's stopping token), whose body
        // never ends: the body's context, which holds the scope, is made the benchmark thread's own.
        ExecutionContext? inside = null;
        _ = new CancelScope().RunAsync(
            _ =>
            {
                inside = ExecutionContext.Capture();
                return _never.Task;
            },
            _caller.Token);
        ExecutionContext.Restore(inside!);
        if (CancelScope.Current is null)
        {
            throw new InvalidOperationException("The scope run in the global setup is not ambient on the benchmark thread.");
        }
    }

    [GlobalSetup(Target = nameof(AsyncLocalRead))]
    public void SetOneAsyncLocal() => s_local.Value = s_value;

    // ---- scope enter + exit, nothing cancelled ----

    [Benchmark(Baseline = true, Description = "linked CTS + Dispose")]
    [BenchmarkCategory(Families.Scope)]
    public bool LinkedCts()
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_outer.Token);
        return linked.IsCancellationRequested;
    }

    [Benchmark(Description = "AsyncLocal set + restore")]
    [BenchmarkCategory(Families.Scope)]
    public object? AsyncLocalSetRestore()
    {
        var previous = s_local.Value;
        s_local.Value = s_value;
        s_local.Value = previous;
        return previous;
    }

    [Benchmark(Description = "MicroIo CancelScope Enter+Dispose")]
    [BenchmarkCategory(Families.Scope)]
    public bool ScopeEnterExit()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
        }

        return scope.IsCancellationRequested;
    }

    [Benchmark(Description = "MicroIo CancelScope Enter+Dispose, inside a scope")]
    [BenchmarkCategory(Families.Scope)]
    public bool ScopeEnterExitNested()
    {
        var scope = new CancelScope();
        using (scope.Enter())
        {
        }

        return scope.IsCancellationRequested;
    }

    [Benchmark(Description = "MicroIo CancelScope.RunAsync, synchronous body")]
    [BenchmarkCategory(Families.Scope)]
    public bool ScopeRunAsync() => new CancelScope().RunAsync(s_syncBody).GetAwaiter().GetResult();

    // ---- a scope with a deadline that does not expire ----

    [Benchmark(Baseline = true, Description = "CTS with timeout + Dispose")]
    [BenchmarkCategory(Families.Deadline)]
    public bool CtsWithTimeout()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return cts.IsCancellationRequested;
    }

    [Benchmark(Description = "MicroIo MoveOnAfter Enter+Dispose")]
    [BenchmarkCategory(Families.Deadline)]
    public bool MoveOnAfter()
    {
        var scope = CancelScope.MoveOnAfter(TimeSpan.FromSeconds(30));
        using (scope.Enter())
        {
        }

        return scope.IsCancellationRequested;
    }

    // ---- a checkpoint when nothing is cancelled ----

    [Benchmark(Baseline = true, Description = "token.ThrowIfCancellationRequested")]
    [BenchmarkCategory(Families.Check)]
    public void TokenCheck() => _outer.Token.ThrowIfCancellationRequested();

    [Benchmark(Description = "MicroIo Checkpoint.ThrowIfCancelled, no scope ever entered")]
    [BenchmarkCategory(Families.Check)]
    public void Checkpoint() => global::MicroIo.Checkpoint.ThrowIfCancelled(_outer.Token);

    [Benchmark(Description = "MicroIo Checkpoint.ThrowIfCancelled, no scope, one entered before")]
    [BenchmarkCategory(Families.Check)]
    public void CheckpointAfterAScope() => global::MicroIo.Checkpoint.ThrowIfCancelled(_outer.Token);

    [Benchmark(Description = "MicroIo Checkpoint.ThrowIfCancelled, inside a scope")]
    [BenchmarkCategory(Families.Check)]
    public void CheckpointInScope() => global::MicroIo.Checkpoint.ThrowIfCancelled(_outer.Token);

    [Benchmark(Description = "MicroIo Checkpoint.ThrowIfCancelled, inside a scope run with a caller's token")]
    [BenchmarkCategory(Families.Check)]
    public void CheckpointInScopeWithCallersToken() => global::MicroIo.Checkpoint.ThrowIfCancelled(_outer.Token);

    // A reference, not a peer: a checkpoint inside a scope reads the ambient scope from an AsyncLocal whenever some scope
    // in the process may be cancelled, and this is that read alone, in the same shape: a context holding one value, a
    // read that finds it and a test of what it read, and nothing returned (as a checkpoint returns nothing).
    [Benchmark(Description = "AsyncLocal read, one value set (reference)")]
    [BenchmarkCategory(Families.Check)]
    public void AsyncLocalRead()
    {
        if (s_local.Value is null)
        {
            throw new InvalidOperationException("The AsyncLocal set in the global setup is gone.");
        }
    }
}
