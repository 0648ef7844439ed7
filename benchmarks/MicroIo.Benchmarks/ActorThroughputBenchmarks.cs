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
    public async Task ChannelLoop()
    {
        var channel = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
        var handled = 0;
        var consumer = Task.Run(async () =>
        {
            var reader = channel.Reader;
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (reader.TryRead(out _))
                {
                    handled++;
                }
            }
        });
        var writer = channel.Writer;
        await Task.Run(() =>
        {
            for (var i = 0; i < Messages; i++)
            {
                writer.TryWrite(i);
            }

            writer.Complete();
        }).ConfigureAwait(false);
        await consumer.ConfigureAwait(false);
        Check(handled);
    }

    // A reference, not a peer: the baseline plus the one interlocked add per send that the mailbox's exact Sent count
    // costs (DESIGN: sent == received + queued at every moment).
    [Benchmark(OperationsPerInvoke = Messages, Description = "Channel + consumer loop + interlocked add per send (reference)")]
    public async Task ChannelLoopCounted()
    {
        var channel = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
        var handled = 0;
        var consumer = Task.Run(async () =>
        {
            var reader = channel.Reader;
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (reader.TryRead(out _))
                {
                    handled++;
                }
            }
        });
        var writer = channel.Writer;
        await Task.Run(() =>
        {
            for (var i = 0; i < Messages; i++)
            {
                Interlocked.Increment(ref _sent.Value);
                writer.TryWrite(i);
            }

            writer.Complete();
        }).ConfigureAwait(false);
        await consumer.ConfigureAwait(false);
        Check(handled);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "MicroIo ActorCore (serial)")]
    public async Task ActorCore()
    {
        var handled = 0;
        var actor = new ActorCore<int>((_, _) =>
        {
            handled++;
            return Task.CompletedTask;
        });
        var run = Task.Run(() => actor.RunAsync());
        await Task.Run(() =>
        {
            for (var i = 0; i < Messages; i++)
            {
                actor.Submit(i);
            }

            actor.Close();
        }).ConfigureAwait(false);
        await run.ConfigureAwait(false);
        Check(handled);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "Akka.NET")]
    public async Task AkkaNet()
    {
        var done = _target.Reset();
        var actor = _akkaActor;
        await Task.Run(() =>
        {
            for (var i = 0; i < Messages; i++)
            {
                actor.Tell(i, ActorRefs.NoSender);
            }
        }).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    [Benchmark(OperationsPerInvoke = Messages, Description = "Proto.Actor")]
    public async Task ProtoActor()
    {
        var done = _target.Reset();
        var root = _proto.Root;
        var pid = _protoActor;
        await Task.Run(() =>
        {
            for (var i = 0; i < Messages; i++)
            {
                root.Send(pid, i);
            }
        }).ConfigureAwait(false);
        await done.ConfigureAwait(false);
    }

    private static void Check(int handled)
    {
        if (handled != Messages)
        {
            throw new InvalidOperationException($"Handled {handled} messages, expected {Messages}.");
        }
    }

    /// <summary>Counts the messages an actor handled (on the actor, so without synchronisation) and signals the last one.</summary>
    private sealed class CountingTarget(int expected)
    {
        private int _count;
        private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reset()
        {
            _count = 0;
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _done.Task;
        }

        public void Handle()
        {
            if (++_count == expected)
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
