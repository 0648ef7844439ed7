using System.Collections.Concurrent;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using DotNext.Threading;

namespace MicroIo.Benchmarks;

/// <summary>
/// Family 3: request/reply round trips across threads: the caller registers a key, posts it to a responder thread, and
/// waits (blocking or awaiting) until the responder resolves the key. The transport (a queue and a semaphore) is the same
/// for every variant; the baseline is a <see cref="TaskCompletionSource{TResult}"/> in a <see cref="ConcurrentDictionary{TKey, TValue}"/>.
/// </summary>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RequestReplyBenchmarks
{
    private const int RoundTrips = 2_000;

    private readonly ConcurrentDictionary<int, TaskCompletionSource<int>> _tcs = new();
    private readonly RequestRegistry<int, int> _registry = new();
    private readonly AsyncCorrelationSource<int, int> _dotNext = new(concurrencyLevel: 17);
    private Responder _responder = null!;
    private Action<ReplyHandle<int, int>> _send = null!;
    private int _key;

    private enum Kind
    {
        Tcs,
        Registry,
        DotNext,
    }

    [GlobalSetup]
    public void Setup()
    {
        _responder = new Responder(this);
        _send = reply => _responder.Post(Kind.Registry, reply.Key);
    }

    [GlobalCleanup]
    public void Cleanup() => _responder.Dispose();

    // ---- blocking: the caller's thread waits ----

    [Benchmark(Baseline = true, OperationsPerInvoke = RoundTrips, Description = "TCS + ConcurrentDictionary, blocking")]
    [BenchmarkCategory(Families.Blocking)]
    public int TcsBlocking()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            var key = ++_key;
            var tcs = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            _tcs[key] = tcs;
            _responder.Post(Kind.Tcs, key);
            sum += tcs.Task.GetAwaiter().GetResult();
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = RoundTrips, Description = "MicroIo RequestRegistry.Request")]
    [BenchmarkCategory(Families.Blocking)]
    public int RegistryBlocking()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            sum += _registry.Request(++_key, _send);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = RoundTrips, Description = "DotNext AsyncCorrelationSource, blocking")]
    [BenchmarkCategory(Families.Blocking)]
    public int DotNextBlocking()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            var key = ++_key;
            var wait = _dotNext.WaitAsync(key);
            _responder.Post(Kind.DotNext, key);
            sum += wait.AsTask().GetAwaiter().GetResult();
        }

        return sum;
    }

    // ---- awaiting: the caller awaits ----

    [Benchmark(Baseline = true, OperationsPerInvoke = RoundTrips, Description = "TCS + ConcurrentDictionary, awaiting")]
    [BenchmarkCategory(Families.Awaiting)]
    public async Task<int> TcsAwaiting()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            var key = ++_key;
            var tcs = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            _tcs[key] = tcs;
            _responder.Post(Kind.Tcs, key);
            sum += await tcs.Task.ConfigureAwait(false);
        }

        return sum;
    }

    // The registry's own spin written around the baseline (without its credit, which this shape is not expected to
    // drain): what the awaiting baseline gains from the spin alone, so each run shows the registry's ratio to a spinning
    // TCS as well.
    [Benchmark(OperationsPerInvoke = RoundTrips, Description = "TCS + ConcurrentDictionary, awaiting after a 1 us spin (reference)")]
    [BenchmarkCategory(Families.Awaiting)]
    public async Task<int> TcsAwaitingAfterASpin()
    {
        var sum = 0;
        var budget = Stopwatch.Frequency / 1_000_000;
        for (var i = 0; i < RoundTrips; i++)
        {
            var key = ++_key;
            var tcs = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            _tcs[key] = tcs;
            _responder.Post(Kind.Tcs, key);
            var start = Stopwatch.GetTimestamp();
            while (!tcs.Task.IsCompleted && Stopwatch.GetTimestamp() - start < budget)
            {
                Thread.SpinWait(1);
            }

            sum += await tcs.Task.ConfigureAwait(false);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = RoundTrips, Description = "MicroIo RequestRegistry.RequestAsync")]
    [BenchmarkCategory(Families.Awaiting)]
    public async Task<int> RegistryAwaiting()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            sum += await _registry.RequestAsync(++_key, _send).ConfigureAwait(false);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = RoundTrips, Description = "DotNext AsyncCorrelationSource, awaiting")]
    [BenchmarkCategory(Families.Awaiting)]
    public async Task<int> DotNextAwaiting()
    {
        var sum = 0;
        for (var i = 0; i < RoundTrips; i++)
        {
            var key = ++_key;
            var wait = _dotNext.WaitAsync(key);
            _responder.Post(Kind.DotNext, key);
            sum += await wait.ConfigureAwait(false);
        }

        return sum;
    }

    private void Answer(Kind kind, int key)
    {
        switch (kind)
        {
            case Kind.Tcs:
                if (_tcs.TryRemove(key, out var tcs))
                {
                    tcs.TrySetResult(key);
                }

                break;
            case Kind.Registry:
                _registry.Resolve(key, key);
                break;
            default:
                _dotNext.Pulse(key, key);
                break;
        }
    }

    /// <summary>The other side: a dedicated thread that answers each posted key (the same transport for every variant).</summary>
    private sealed class Responder : IDisposable
    {
        private readonly ConcurrentQueue<(Kind Kind, int Key)> _queue = new();
        private readonly SemaphoreSlim _signal = new(0);
        private readonly Thread _thread;
        private volatile bool _stopped;

        public Responder(RequestReplyBenchmarks owner)
        {
            _thread = new Thread(() =>
            {
                while (true)
                {
                    _signal.Wait();
                    if (_stopped)
                    {
                        return;
                    }

                    while (_queue.TryDequeue(out var item))
                    {
                        owner.Answer(item.Kind, item.Key);
                    }
                }
            })
            { IsBackground = true, Name = "responder" };
            _thread.Start();
        }

        public void Post(Kind kind, int key)
        {
            _queue.Enqueue((kind, key));
            _signal.Release();
        }

        public void Dispose()
        {
            _stopped = true;
            _signal.Release();
            _thread.Join();
            _signal.Dispose();
        }
    }
}
