using System.Threading.Channels;
using Akka.Actor;
using BenchmarkDotNet.Attributes;
using Proto;

namespace MicroIo.Benchmarks;

/// <summary>
/// Family 2: 1,000,000 messages sent to one actor from another thread, timed until the actor has handled them all.
/// The baseline is the hand-written equivalent: a plain unbounded channel and a single consumer loop. The row marked
/// "(reference)" is that loop plus one interlocked add per send, the cost of the mailbox's exact sent count.
/// </summary>
/// <remarks>
/// Three invocations of 1,000,000 messages per iteration: left to itself BenchmarkDotNet runs one, because the first,
/// unoptimised invocation takes longer than the iteration time, and every iteration then lasted 40-90 ms, below the
/// 100 ms it asks for.
/// </remarks>
[MemoryDiagnoser]
[ThreadingDiagnoser]
[InvocationCount(3)]
public class ActorThroughputBenchmarks
{
    private const int Messages = 1_000_000;

    private Akka.Actor.ActorSystem _akka = null!;
    private IActorRef _akkaActor = null!;
    private Proto.ActorSystem _proto = null!;
    private PID _protoActor = null!;
    private CountingTarget _target = null!;
    private PaddedCounter _sent;

    // Each peer's actor system is set up only for its own row: a system keeps threads, which must not share the two cores
    // with another row.
    [GlobalSetup(Target = nameof(AkkaNet))]
    public void SetUpAkka()
    {
        _target = new CountingTarget(Messages);
        _akka = Akka.Actor.ActorSystem.Create("bench", "akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING");
        _akkaActor = _akka.ActorOf(Akka.Actor.Props.Create(() => new AkkaCounter(_target)));
    }

    [GlobalCleanup(Target = nameof(AkkaNet))]
    public void TearDownAkka() => _akka.Terminate().Wait(TimeSpan.FromSeconds(10));

    [GlobalSetup(Target = nameof(ProtoActor))]
    public void SetUpProto()
    {
        _target = new CountingTarget(Messages);
        _proto = new Proto.ActorSystem();
        var target = _target;
        _protoActor = _proto.Root.Spawn(Proto.Props.FromFunc(context =>
        {
            if (context.Message is int)
            {
                target.Handle();
            }

            return Task.CompletedTask;
        }));
    }

    [GlobalCleanup(Target = nameof(ProtoActor))]
    public void TearDownProto() => _proto.ShutdownAsync().Wait(TimeSpan.FromSeconds(10));

    [Benchmark(Baseline = true, OperationsPerInvoke = Messages, Description = "Channel + consumer loop")]
    public Task ChannelLoop() => RunChannelLoopAsync(Produce);

    // A reference, not a peer: the baseline plus the one interlocked add per send that the mailbox's exact Sent count
    // costs (DESIGN: sent == received + queued at every moment).
    [Benchmark(OperationsPerInvoke = Messages, Description = "Channel + consumer loop + interlocked add per send (reference)")]
    public Task ChannelLoopCounted() => RunChannelLoopAsync(ProduceCounted);

    [Benchmark(OperationsPerInvoke = Messages, Description = "MicroIo ActorCore (serial)")]
    public async Task ActorCore()
    {
        var handled = new HandledCount();
        var actor = new ActorCore<int>((_, _) =>
        {
            handled.Add();
            return Task.CompletedTask;
        });
        var run = Task.Run(() => actor.RunAsync());
        await Task.Run(() => Produce(actor)).ConfigureAwait(false);
        await run.ConfigureAwait(false);
        Check(handled);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "Akka.NET")]
    public async Task AkkaNet()
    {
        var done = _target.Reset();
        var actor = _akkaActor;
        await Task.Run(() => Produce(actor)).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "Proto.Actor")]
    public async Task ProtoActor()
    {
        var done = _target.Reset();
        var root = _proto.Root;
        var pid = _protoActor;
        await Task.Run(() => Produce(root, pid)).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    // Nothing the benchmark adds may make the consumer write, for every message, to a cache line the producer reads for
    // every message: only the queue under test is shared. The variables that lambdas capture from one scope live in one
    // compiler-made object, so a count kept there sat beside the writer or actor the producer read from it: each row
    // counts in a padded object, and each producer takes what it sends to as a parameter.
    private static async Task RunChannelLoopAsync(Action<ChannelWriter<int>> produce)
    {
        var channel = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
        var handled = new HandledCount();
        var consumer = Task.Run(() => ConsumeAsync(channel.Reader, handled));
        await Task.Run(() => produce(channel.Writer)).ConfigureAwait(false);
        await consumer.ConfigureAwait(false);
        Check(handled);
    }

    private static async Task ConsumeAsync(ChannelReader<int> reader, HandledCount handled)
    {
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out _))
            {
                handled.Add();
            }
        }
    }

    private static void Produce(ChannelWriter<int> writer)
    {
        for (var i = 0; i < Messages; i++)
        {
            writer.TryWrite(i);
        }

        writer.Complete();
    }

    private void ProduceCounted(ChannelWriter<int> writer)
    {
        for (var i = 0; i < Messages; i++)
        {
            Interlocked.Increment(ref _sent.Value);
            writer.TryWrite(i);
        }

        writer.Complete();
    }

    private static void Produce(ActorCore<int> actor)
    {
        for (var i = 0; i < Messages; i++)
        {
            actor.Submit(i);
        }

        actor.Close();
    }

    private static void Produce(IActorRef actor)
    {
        for (var i = 0; i < Messages; i++)
        {
            actor.Tell(i, ActorRefs.NoSender);
        }
    }

    private static void Produce(IRootContext root, PID pid)
    {
        for (var i = 0; i < Messages; i++)
        {
            root.Send(pid, i);
        }
    }

    private static void Check(HandledCount handled)
    {
        if (handled.Value != Messages)
        {
            throw new InvalidOperationException($"Handled {handled.Value} messages, expected {Messages}.");
        }
    }

    /// <summary>The messages a consumer handled, counted on the consumer (so without synchronisation), alone on its cache line.</summary>
    /// <remarks>
    /// Padded because it is made on the benchmark thread next to objects the producer uses (the channel or the actor), and
    /// a garbage collection may move it next to others.
    /// </remarks>
    private sealed class HandledCount
    {
        private PaddedCounter _count;

        public long Value => _count.Value;

        public void Add() => _count.Value++;
    }

    /// <summary>Counts the messages an actor handled (on the actor, so without synchronisation) and signals the last one.</summary>
    private sealed class CountingTarget(int expected)
    {
        private HandledCount _handled = new();
        private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reset()
        {
            _handled = new HandledCount();
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _done.Task;
        }

        public void Handle()
        {
            var handled = _handled;
            handled.Add();
            if (handled.Value == expected)
            {
                _done.TrySetResult();
            }
        }
    }

    private sealed class AkkaCounter : UntypedActor
    {
        private readonly CountingTarget _target;

        public AkkaCounter(CountingTarget target) => _target = target;

        protected override void OnReceive(object message)
        {
            if (message is int)
            {
                _target.Handle();
            }
        }
    }
}
