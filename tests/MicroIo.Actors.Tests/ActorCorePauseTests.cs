using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// A serial actor that empties its mailbox after a burst of messages pauses briefly and looks once more before it waits:
/// a message that arrived meanwhile is handled without a wait, and a run cancelled meanwhile takes no more. A run handling
/// one message at a time, a run on a context of its own, and a run on one processor never pause.
/// </summary>
/// <remarks>
/// The mailbox below stands for a producer: it acts when the actor finds it empty, which is the moment a pause starts,
/// so what it does happens during the pause without any timing. Each actor is given a pause of one tick, so the tests
/// hold on any number of processors; <see cref="DryPauseTests"/> covers when a pause is due.
/// </remarks>
public class ActorCorePauseTests
{
    private const int Burst = DryPause.Burst;

    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Serial_MessageArrivingWhenABurstRunsDry_IsHandledWithoutWaiting()
    {
        var mailbox = new SteppedMailbox(m => m.Inner.Submit(Burst + 1), m => m.Inner.Close());

        var handled = await RunAsync(mailbox, Burst);

        handled.ShouldBe(Enumerable.Range(1, Burst + 1));

        // One wait for the burst, and one that finds the end. Without the pause, one more between them.
        mailbox.Waits.ShouldBe(2);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(Burst - 1)]
    public async Task Serial_FewerMessagesThanABurst_NeverPauses(int first)
    {
        // Then one message at a time, as requests and their replies: each arrives once the one before was handled.
        const int OneByOne = Burst + 2;
        var steps = Enumerable.Range(first + 1, OneByOne).Select(i => (Action<SteppedMailbox>)(m => m.Inner.Submit(i)));
        var mailbox = new SteppedMailbox([.. steps, m => m.Inner.Close()]);

        var handled = await RunAsync(mailbox, first);

        handled.ShouldBe(Enumerable.Range(1, first + OneByOne));

        // A wait for the first messages, one for each message after them, and one that finds the end.
        mailbox.Waits.ShouldBe(OneByOne + 2);
    }

    [Fact]
    public async Task Serial_AfterAPause_CountsTheBurstFromThePausedMessage()
    {
        var mailbox = new SteppedMailbox(m => m.Inner.Submit(Burst + 1), m => m.Inner.Submit(Burst + 2), m => m.Inner.Close());

        var handled = await RunAsync(mailbox, Burst);

        handled.ShouldBe(Enumerable.Range(1, Burst + 2));

        // The pause takes one message; the run then empties the mailbox after that single message, and waits.
        mailbox.Waits.ShouldBe(3);
    }

    [Fact]
    public async Task Serial_ClosedWhenABurstRunsDry_DoesNotPause()
    {
        var mailbox = new SteppedMailbox(m => m.Inner.Close());

        var handled = await RunAsync(mailbox, Burst);

        handled.ShouldBe(Enumerable.Range(1, Burst));

        // The burst's takes and the one that found the mailbox empty; a pause would have taken once more.
        mailbox.Takes.ShouldBe(Burst + 1);
    }

    [Fact]
    public async Task Serial_WithoutAPauseLength_NeverPauses()
    {
        // As on one processor (Spinning.DefaultTicks).
        var mailbox = new SteppedMailbox(m => m.Inner.Submit(Burst + 1), m => m.Inner.Close());

        var handled = await RunAsync(mailbox, Burst, pauseTicks: 0);

        handled.ShouldBe(Enumerable.Range(1, Burst + 1));
        mailbox.Waits.ShouldBe(3);
    }

    [Fact]
    public async Task Serial_AfterPausesInARowThatCatchNothing_StopsPausing()
    {
        // Each burst's pause catches nothing: the next burst comes at the take after it, too late. After MaxCredit such
        // pauses, the message that comes as the next burst runs dry is not caught by a pause but waited for.
        var next = Burst;
        var steps = new List<Action<SteppedMailbox>>();
        for (var round = 0; round < Spinning.MaxCredit; round++)
        {
            steps.Add(_ => { });
            steps.Add(m =>
            {
                for (var i = 0; i < Burst; i++)
                {
                    m.Inner.Submit(++next);
                }
            });
        }

        steps.Add(m => m.Inner.Submit(++next));
        steps.Add(m => m.Inner.Close());
        var mailbox = new SteppedMailbox([.. steps]);

        var handled = await RunAsync(mailbox, Burst);

        handled.ShouldBe(Enumerable.Range(1, ((Spinning.MaxCredit + 1) * Burst) + 1));

        // The first wait, one after each missed pause, one for the last message and one that finds the end. Pausing
        // once more would have caught the last message without its wait.
        mailbox.Waits.ShouldBe(Spinning.MaxCredit + 3);
    }

    [Fact]
    public async Task Serial_WhenAPauseIsDue_SpinsAtLeastItsLength()
    {
        // A lower bound only, which the clock guarantees however busy the machine is.
        var length = Stopwatch.Frequency / 1_000;
        var ranDry = 0L;
        var tookAgain = 0L;
        var mailbox = new SteppedMailbox(_ => ranDry = Stopwatch.GetTimestamp(), m =>
        {
            tookAgain = Stopwatch.GetTimestamp();
            m.Inner.Close();
        });

        var handled = await RunAsync(mailbox, Burst, pauseTicks: length);

        handled.ShouldBe(Enumerable.Range(1, Burst));
        (tookAgain - ranDry).ShouldBeGreaterThanOrEqualTo(length);
    }

    [Fact]
    public void PauseTicks_ByDefault_IsTheDefaultSpinOfThisMachine() =>
        new ActorCore<int>((_, _) => Task.CompletedTask).PauseTicks.ShouldBe(Spinning.DefaultTicks(Environment.ProcessorCount, Stopwatch.Frequency));

    public static TheoryData<string, int> Places => new()
    {
        // A loop's thread or a scheduler of limited concurrency has other work to run: the run must not hold it.
        { "a loop's synchronization context", 3 },
        { "an exclusive task scheduler", 3 },

        // The plain context posts to the pool, as if there were none: the run pauses.
        { "the plain synchronization context", 2 },
    };

    [Theory]
    [MemberData(nameof(Places))]
    public async Task Serial_PausesOnlyOffAContextOrSchedulerOfItsOwn(string place, int waits)
    {
        var mailbox = new SteppedMailbox(m => m.Inner.Submit(Burst + 1), m => m.Inner.Close());
        var handled = new List<int>();
        var actor = Create(mailbox, handled, pauseTicks: 1);
        SubmitBurst(actor, Burst);

        using var loop = new SingleThreadContext();
        var run = place switch
        {
            "a loop's synchronization context" => loop.RunAsync(async () =>
            {
                await actor.RunAsync();
                return true;
            }),
            "an exclusive task scheduler" => Task.Factory.StartNew(
                () => actor.RunAsync(), CancellationToken.None, TaskCreationOptions.None, new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler).Unwrap(),
            _ => Task.Run(() =>
            {
                SynchronizationContext.SetSynchronizationContext(new SynchronizationContext());
                try
                {
                    return actor.RunAsync();
                }
                finally
                {
                    SynchronizationContext.SetSynchronizationContext(null);
                }
            }),
        };
        await run.WaitAsync(s_bound);

        handled.ShouldBe(Enumerable.Range(1, Burst + 1));
        mailbox.Waits.ShouldBe(waits);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Serial_CancelledWhenABurstRunsDry_TakesNoFurtherMessage(bool byEnclosingScope)
    {
        using var cts = new CancellationTokenSource();
        var scope = new CancelScope();
        var mailbox = new SteppedMailbox(m =>
        {
            m.Inner.Submit(Burst + 1);
            if (byEnclosingScope)
            {
                scope.Cancel();
            }
            else
            {
                cts.Cancel();
            }
        });
        var handled = new List<int>();
        var actor = Create(mailbox, handled, pauseTicks: 1);
        SubmitBurst(actor, Burst);

        if (byEnclosingScope)
        {
            // The ambient scope's cancellation stops the run too, and the scope catches it as its own.
            (await Task.Run(() => scope.RunAsync(_ => actor.RunAsync())).WaitAsync(s_bound)).ShouldBeFalse();
            scope.CancelledCaught.ShouldBeTrue();
        }
        else
        {
            await Should.ThrowAsync<OperationCanceledException>(Task.Run(() => actor.RunAsync(cts.Token)).WaitAsync(s_bound));
        }

        // Stopped by the pause's checkpoint, not by the next wait's; the message that arrived with the cancellation
        // stays in the mailbox, which stays open.
        mailbox.Waits.ShouldBe(1);
        handled.ShouldBe(Enumerable.Range(1, Burst));
        actor.Mailbox.IsClosed.ShouldBeFalse();
        actor.Drain().ShouldBe([Burst + 1]);
    }

    private static async Task<List<int>> RunAsync(SteppedMailbox mailbox, int first, long pauseTicks = 1)
    {
        var handled = new List<int>();
        var actor = Create(mailbox, handled, pauseTicks);
        SubmitBurst(actor, first);

        await Task.Run(() => actor.RunAsync()).WaitAsync(s_bound);
        return handled;
    }

    private static ActorCore<int> Create(SteppedMailbox mailbox, List<int> handled, long pauseTicks) =>
        new((item, _) =>
        {
            handled.Add(item);
            return Task.CompletedTask;
        }, mailbox)
        {
            PauseTicks = pauseTicks,
        };

    private static void SubmitBurst(ActorCore<int> actor, int count)
    {
        for (var i = 1; i <= count; i++)
        {
            actor.Submit(i).ShouldBeTrue();
        }
    }

    /// <summary>A mailbox that runs the next of its steps each time a take finds it empty, as a producer would at that moment.</summary>
    private sealed class SteppedMailbox(params Action<SteppedMailbox>[] steps) : ForwardingMailbox(new Mailbox<int>())
    {
        private readonly Queue<Action<SteppedMailbox>> _whenEmpty = new(steps);
        private int _waits;
        private int _takes;

        public int Waits => Volatile.Read(ref _waits);

        public int Takes => Volatile.Read(ref _takes);

        public override bool TryGet([MaybeNullWhen(false)] out int item)
        {
            Interlocked.Increment(ref _takes);
            if (base.TryGet(out item))
            {
                return true;
            }

            if (_whenEmpty.TryDequeue(out var step))
            {
                step(this);
            }

            return false;
        }

        public override ValueTask<bool> WaitToGetAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _waits);
            return base.WaitToGetAsync(cancellationToken);
        }
    }
}
