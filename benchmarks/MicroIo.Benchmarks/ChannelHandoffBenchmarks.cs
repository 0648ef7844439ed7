using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.VisualStudio.Threading;
using Nito.AsyncEx;

namespace MicroIo.Benchmarks;

/// <summary>
/// Family 1: one producer thread hands items to one async receiver, through MicroIo's channel and its peers, each in
/// the same configuration as System.Threading.Channels (the baseline): several readers allowed, no synchronous
/// continuations. Also the same-thread send-then-receive case. The rows marked "(reference)" are neither MicroIo nor a
/// peer: STC plus one interlocked add per send, the cost of MicroIo's exact sent count, shown beside the others.
/// </summary>
/// <typeparam name="T"><see cref="int"/> for value items, <see cref="string"/> for reference items (one shared instance, so no item is allocated).</typeparam>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
[GenericTypeArguments(typeof(int))]
[GenericTypeArguments(typeof(string))]
public class ChannelHandoffBenchmarks<T>
{
    private const int Items = 100_000;
    private const int SameThreadItems = 1_000;
    private const int Capacity = 1024;

    private static readonly T s_item = typeof(T) == typeof(int) ? (T)(object)42 : (T)(object)"item";

    private Channel<T> _stc = null!;
    private Channel<T> _stcBounded = null!;
    private ObjectSendChannel<T> _sender = null!;
    private ObjectReceiveChannel<T> _receiver = null!;
    private ObjectSendChannel<T> _boundedSender = null!;
    private ObjectReceiveChannel<T> _boundedReceiver = null!;
    private AsyncProducerConsumerQueue<T> _nito = null!;
    private AsyncProducerConsumerQueue<T> _nitoBounded = null!;
    private AsyncQueue<T> _vs = null!;
    private PaddedCounter _sent;

    [GlobalSetup]
    public void Setup()
    {
        // The channels live across invocations: each invocation sends and receives the same number of items.
        _stc = Channel.CreateUnbounded<T>(new UnboundedChannelOptions { SingleReader = false, AllowSynchronousContinuations = false });
        _stcBounded = Channel.CreateBounded<T>(new BoundedChannelOptions(Capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
            AllowSynchronousContinuations = false,
        });
        (_sender, _receiver) = ObjectChannel.Create<T>();
        (_boundedSender, _boundedReceiver) = ObjectChannel.Create<T>(new ObjectChannelOptions { Capacity = Capacity });
        _nito = new AsyncProducerConsumerQueue<T>();
        _nitoBounded = new AsyncProducerConsumerQueue<T>(Capacity);
        _vs = new AsyncQueue<T>();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sender.Close();
        _boundedSender.Close();
        _vs.Complete();
    }

    // ---- cross-thread, unbounded: the producer never waits ----

    [Benchmark(Baseline = true, OperationsPerInvoke = Items, Description = "STC unbounded")]
    [BenchmarkCategory(Families.Unbounded)]
    public async Task Stc()
    {
        var writer = _stc.Writer;
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                writer.TryWrite(s_item);
            }
        });
        var reader = _stc.Reader;
        for (var i = 0; i < Items; i++)
        {
            await reader.ReadAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Items, Description = "MicroIo unbounded")]
    [BenchmarkCategory(Families.Unbounded)]
    public async Task MicroIo()
    {
        var sender = _sender;
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                sender.Send(s_item);
            }
        });
        var receiver = _receiver;
        for (var i = 0; i < Items; i++)
        {
            await receiver.ReceiveAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    // A reference, not a peer: STC with the one interlocked add per send that MicroIo's exact Sent count costs (DESIGN:
    // sent == received + queued at every moment), to show in every run what that add alone does to the baseline.
    [Benchmark(OperationsPerInvoke = Items, Description = "STC unbounded + interlocked add per send (reference)")]
    [BenchmarkCategory(Families.Unbounded)]
    public async Task StcCounted()
    {
        var writer = _stc.Writer;
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                Interlocked.Increment(ref _sent.Value);
                writer.TryWrite(s_item);
            }
        });
        var reader = _stc.Reader;
        for (var i = 0; i < Items; i++)
        {
            await reader.ReadAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Items, Description = "Nito AsyncProducerConsumerQueue")]
    [BenchmarkCategory(Families.Unbounded)]
    public async Task Nito()
    {
        var queue = _nito;
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                queue.Enqueue(s_item);
            }
        });
        for (var i = 0; i < Items; i++)
        {
            await queue.DequeueAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Items, Description = "VS.Threading AsyncQueue")]
    [BenchmarkCategory(Families.Unbounded)]
    public async Task VsAsyncQueue()
    {
        var queue = _vs;
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                queue.Enqueue(s_item);
            }
        });
        for (var i = 0; i < Items; i++)
        {
            await queue.DequeueAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    // ---- cross-thread, bounded(1024): the producer awaits room (WriteAsync / SendAsync) ----

    [Benchmark(Baseline = true, OperationsPerInvoke = Items, Description = "STC bounded WriteAsync")]
    [BenchmarkCategory(Families.Bounded)]
    public async Task StcBounded()
    {
        var writer = _stcBounded.Writer;
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                await writer.WriteAsync(s_item).ConfigureAwait(false);
            }
        });
        var reader = _stcBounded.Reader;
        for (var i = 0; i < Items; i++)
        {
            await reader.ReadAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Items, Description = "MicroIo bounded SendAsync")]
    [BenchmarkCategory(Families.Bounded)]
    public async Task MicroIoBounded()
    {
        var sender = _boundedSender;
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                await sender.SendAsync(s_item).ConfigureAwait(false);
            }
        });
        var receiver = _boundedReceiver;
        for (var i = 0; i < Items; i++)
        {
            await receiver.ReceiveAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    // A reference, like StcCounted: only the add, on STC's own WriteAsync. MicroIo's bounded send is shaped otherwise (a
    // TrySend, and a WaitToWriteAsync when full), so this row shows the add's effect, not MicroIo's bounded path.
    [Benchmark(OperationsPerInvoke = Items, Description = "STC bounded WriteAsync + interlocked add per send (reference)")]
    [BenchmarkCategory(Families.Bounded)]
    public async Task StcBoundedCounted()
    {
        var writer = _stcBounded.Writer;
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                Interlocked.Increment(ref _sent.Value);
                await writer.WriteAsync(s_item).ConfigureAwait(false);
            }
        });
        var reader = _stcBounded.Reader;
        for (var i = 0; i < Items; i++)
        {
            await reader.ReadAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Items, Description = "Nito AsyncProducerConsumerQueue(1024)")]
    [BenchmarkCategory(Families.Bounded)]
    public async Task NitoBounded()
    {
        var queue = _nitoBounded;
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                await queue.EnqueueAsync(s_item).ConfigureAwait(false);
            }
        });
        for (var i = 0; i < Items; i++)
        {
            await queue.DequeueAsync().ConfigureAwait(false);
        }

        await producer.ConfigureAwait(false);
    }

    // ---- same thread: send, then receive what was just sent (completes synchronously) ----

    [Benchmark(Baseline = true, OperationsPerInvoke = SameThreadItems, Description = "STC TryWrite+ReadAsync")]
    [BenchmarkCategory(Families.SameThread)]
    public T StcSameThread()
    {
        var writer = _stc.Writer;
        var reader = _stc.Reader;
        T last = default!;
        for (var i = 0; i < SameThreadItems; i++)
        {
            writer.TryWrite(s_item);
            last = Completed(reader.ReadAsync());
        }

        return last;
    }

    [Benchmark(OperationsPerInvoke = SameThreadItems, Description = "MicroIo Send+ReceiveAsync")]
    [BenchmarkCategory(Families.SameThread)]
    public T MicroIoSameThread()
    {
        var sender = _sender;
        var receiver = _receiver;
        T last = default!;
        for (var i = 0; i < SameThreadItems; i++)
        {
            sender.Send(s_item);
            last = Completed(receiver.ReceiveAsync());
        }

        return last;
    }

    /// <summary>Returns the result of a receive that had an item waiting, so it completed synchronously.</summary>
    private static T Completed(ValueTask<T> receive) =>
        receive.IsCompletedSuccessfully ? receive.Result : throw new InvalidOperationException("The same-thread receive did not complete synchronously.");
}
