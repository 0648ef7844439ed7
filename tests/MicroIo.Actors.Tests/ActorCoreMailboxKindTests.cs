using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace MicroIo.Tests;

/// <summary>
/// An actor submits to, and runs over, every kind of mailbox the same way: a <see cref="Mailbox{T}"/> (which it calls
/// directly), a <see cref="PriorityMailbox{T}"/>, and any other <see cref="IMailbox{T}"/> (which it calls through the
/// interface).
/// </summary>
public class ActorCoreMailboxKindTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    public static TheoryData<string> Kinds => ["Mailbox", "PriorityMailbox", "another IMailbox"];

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Submit_AfterClose_DropsOrThrowsAsTheMailboxSays(string kind)
    {
        var dropping = new ActorCore<int>((_, _) => Task.CompletedTask, Create(kind, LateSendPolicy.Drop));
        dropping.Submit(1).ShouldBeTrue();
        dropping.Close().ShouldBeTrue();

        dropping.Submit(2).ShouldBeFalse();
        dropping.Mailbox.Stats.ShouldBe(new ChannelStats(1, 0, 1, 1, true));
        if (dropping.Mailbox is CountingMailbox counting)
        {
            counting.Submits.ShouldBe(2);
        }

        var throwing = new ActorCore<int>((_, _) => Task.CompletedTask, Create(kind, LateSendPolicy.Throw));
        throwing.Close().ShouldBeTrue();
        Should.Throw<ClosedResourceException>(() => throwing.Submit(1));
    }

    public static TheoryData<string, bool> KindsAndModes => new()
    {
        { "Mailbox", false },
        { "Mailbox", true },
        { "PriorityMailbox", false },
        { "PriorityMailbox", true },
        { "another IMailbox", false },
        { "another IMailbox", true },
    };

    [Theory]
    [MemberData(nameof(KindsAndModes))]
    public async Task RunAsync_OverEachKindOfMailbox_HandlesEverySubmitOnce(string kind, bool concurrent)
    {
        var mailbox = Create(kind, LateSendPolicy.Drop);
        var handled = new ConcurrentQueue<int>();
        var actor = concurrent
            ? new ActorCore<int>((item, release, _) =>
            {
                handled.Enqueue(item);
                release();
                return Task.CompletedTask;
            }, mailbox)
            : new ActorCore<int>((item, _) =>
            {
                handled.Enqueue(item);
                return Task.CompletedTask;
            }, mailbox);
        for (var i = 1; i <= 3; i++)
        {
            actor.Submit(i).ShouldBeTrue();
        }

        actor.Close();

        // On the pool, so a loop that never ends fails the bound instead of hanging the test.
        await Task.Run(() => actor.RunAsync()).WaitAsync(s_bound);

        // Concurrent handlers may finish in any order, and a priority mailbox delivers the highest key first.
        handled.Order().ShouldBe([1, 2, 3]);
        actor.Mailbox.Stats.ShouldBe(new ChannelStats(3, 3, 0, 0, true));
        if (mailbox is CountingMailbox counting)
        {
            // A mailbox of another type is called through the interface: every submit and every take reaches it.
            counting.Submits.ShouldBe(3);
            counting.Takes.ShouldBe(3);
        }
    }

    private static IMailbox<int> Create(string kind, LateSendPolicy lateSend) => kind switch
    {
        "Mailbox" => new Mailbox<int>(lateSend),
        "PriorityMailbox" => new PriorityMailbox<int>(i => i, lateSend),
        _ => new CountingMailbox(new Mailbox<int>(lateSend)),
    };

    /// <summary>A mailbox of another type, which counts the submits and the takes that reach it.</summary>
    private sealed class CountingMailbox(Mailbox<int> inner) : ForwardingMailbox(inner)
    {
        private int _submits;
        private int _takes;

        public int Submits => Volatile.Read(ref _submits);

        public int Takes => Volatile.Read(ref _takes);

        public override bool Submit(int item)
        {
            Interlocked.Increment(ref _submits);
            return base.Submit(item);
        }

        public override bool TryGet([MaybeNullWhen(false)] out int item)
        {
            if (!base.TryGet(out item))
            {
                return false;
            }

            Interlocked.Increment(ref _takes);
            return true;
        }
    }
}
