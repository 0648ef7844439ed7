using System.Diagnostics;
using System.Runtime.CompilerServices;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// An asynchronous wait off any event loop spins briefly before it suspends, so a reply that comes within the spin is
/// taken without a trip through the thread pool; with a context or scheduler of its own it never spins, and a registry
/// whose spins keep missing stops spinning but for a trial now and then. The registry's test hook reports each spin as
/// it starts, so no test needs a clock to tell whether a wait spun.
/// </summary>
public class AsyncWaitSpinTests
{
    private const int Max = Spinning.MaxCredit;
    private const int TrialEvery = Spinning.TrialEvery;

    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    // A spin that no test outlives, yet finite, so the spin's own measure of time is what ends it if nothing else does.
    private static readonly long s_unbounded = Stopwatch.Frequency * 3600;

    /// <summary>The three ways to wait asynchronously for a request.</summary>
    public enum Entry
    {
        /// <summary><see cref="RequestRegistry{TKey, TResult}.RequestAsync(TKey, Action{ReplyHandle{TKey, TResult}}, TimeSpan?, CancellationToken)"/>.</summary>
        RequestAsync,

        /// <summary><see cref="RequestRegistry{TKey, TResult}.WaitAsync(TKey, RequestWaiter{TResult}, TimeSpan?, CancellationToken)"/>.</summary>
        WaitAsync,

        /// <summary><see cref="ReplyHandle{TKey, TResult}.WaitAsync(TimeSpan?, CancellationToken)"/>.</summary>
        HandleWaitAsync,
    }

    /// <summary>Gets each entry with each of two settings that the theory's flag chooses between.</summary>
    public static TheoryData<Entry, bool> EntriesBothWays
    {
        get
        {
            var data = new TheoryData<Entry, bool>();
            foreach (var entry in Enum.GetValues<Entry>())
            {
                data.Add(entry, false);
                data.Add(entry, true);
            }

            return data;
        }
    }

    // ---- where a wait spins ----

    [Theory]
    [MemberData(nameof(EntriesBothWays))]
    public async Task WaitAsync_OffAnyLoop_SpinsAndTakesAReplyThatComesMeanwhile(Entry entry, bool plainContext)
    {
        // A plain SynchronizationContext schedules to the pool, as no context does. The hook answers from within the spin.
        var registry = new RequestRegistry<int, int> { SpinTicks = s_unbounded };
        var spins = AnswerEachSpin(registry, 10);

        var (wait, completedAtReturn) = await OnAThreadAsync(plainContext ? new SynchronizationContext() : null, () => Start(registry, 1, entry));

        spins.Value.ShouldBe(1);
        completedAtReturn.ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(10);
        registry.SpinCredit.ShouldBe(Max);
        registry.Count.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(EntriesBothWays))]
    public async Task WaitAsync_OnALoopContextOrAnExclusiveScheduler_ReturnsPendingWithoutSpinning(Entry entry, bool scheduler)
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = s_unbounded };
        // Were it to spin, the answer ends the spin at once: the failed test leaves no thread spinning behind.
        var spins = AnswerEachSpin(registry, 0);

        ValueTask<int> wait;
        var pair = new ConcurrentExclusiveSchedulerPair();
        try
        {
            wait = scheduler
                ? await Task.Factory.StartNew(() => Start(registry, 1, entry), CancellationToken.None, TaskCreationOptions.None, pair.ExclusiveScheduler).WaitAsync(s_bound)
                : (await OnAThreadAsync(new LoopContext(), () => Start(registry, 1, entry))).Wait;
        }
        finally
        {
            pair.Complete();
        }

        spins.Value.ShouldBe(0);
        wait.IsCompleted.ShouldBeFalse();
        registry.SpinCredit.ShouldBe(Max);
        registry.Resolve(1, 10).ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(10);
    }

    [Fact]
    public async Task RequestAsync_ReplyFromAnotherThreadDuringTheSpin_CompletesTheCallSynchronously()
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = s_unbounded };
        using var spinning = new ManualResetEventSlim();
        registry.SpinStartingForTests = _ => spinning.Set();
        var responder = new Thread(() =>
        {
            spinning.Wait(s_bound);
            registry.Resolve(1, 10);
        })
        { IsBackground = true };
        responder.Start();

        var (wait, completedAtReturn) = await OnAThreadAsync(null, () => registry.RequestAsync(1, static _ => { }));

        // With a spin that no test outlives, the call can return only once the reply is in.
        completedAtReturn.ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(10);
        responder.Join(s_bound).ShouldBeTrue();
    }

    [Fact]
    public async Task RequestAsync_SendCompletedLaterOnThePool_SpinsThereThoughCalledOnALoop()
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = s_unbounded };
        var spins = AnswerEachSpin(registry, 10);
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var (wait, completedAtReturn) = await OnAThreadAsync(new LoopContext(), () => registry.RequestAsync(1, _ => sent.Task));
        completedAtReturn.ShouldBeFalse();
        spins.Value.ShouldBe(0);

        // The send's task completes on the pool, where the wait goes on: no context there, so it spins.
        sent.SetResult();

        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(10);
        spins.Value.ShouldBe(1);
    }

    [Fact]
    public async Task RequestAsync_NoReplyWithinTheDefaultSpin_ReturnsPendingAndEndsWithTheLaterReply()
    {
        var registry = new RequestRegistry<int, int>();
        var wait = await Task.Run(() => registry.RequestAsync(1, static _ => { })).WaitAsync(s_bound);

        wait.IsCompleted.ShouldBeFalse();
        registry.Resolve(1, 10).ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(10);
    }

    // ---- spinning stops when it does not pay, and comes back when it does ----

    [Fact]
    public async Task WaitAsync_SpinsThatMiss_StopSpinningAndThenSpinOnceEveryRound()
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = 1 };
        var spins = CountEachSpin(registry);
        var key = 0;

        // Each spin misses (its time is one tick, and nothing answers) and costs one credit.
        for (var i = 1; i <= Max; i++)
        {
            await MissAsync(registry, ++key);
            (spins.Value, registry.SpinCredit).ShouldBe((i, Max - i));
        }

        // Two rounds: waits that count down without spinning, then one trial, which misses too.
        for (var round = 1; round <= 2; round++)
        {
            for (var i = 1; i < TrialEvery; i++)
            {
                await MissAsync(registry, ++key);
                (spins.Value, registry.SpinCredit).ShouldBe((Max + round - 1, -i));
            }

            await MissAsync(registry, ++key);
            (spins.Value, registry.SpinCredit).ShouldBe((Max + round, 0));
        }

        registry.Count.ShouldBe(0);
    }

    [Fact]
    public async Task WaitAsync_SpinThatGetsItsReply_RestoresTheFullCredit()
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = 1 };
        for (var key = 1; key < Max; key++)
        {
            await MissAsync(registry, key);
        }

        registry.SpinCredit.ShouldBe(1);
        await HitAsync(registry, Max);
        registry.SpinCredit.ShouldBe(Max);
    }

    [Fact]
    public async Task WaitAsync_TrialThatGetsItsReply_RestoresTheFullCredit()
    {
        var registry = new RequestRegistry<int, int> { SpinTicks = 1 };
        var key = 0;
        while (key < Max + TrialEvery - 1)
        {
            await MissAsync(registry, ++key);
        }

        registry.SpinCredit.ShouldBe(1 - TrialEvery);
        await HitAsync(registry, ++key);
        registry.SpinCredit.ShouldBe(Max);
    }

    [Fact]
    public async Task RequestAsync_NoTimeToSpin_NeitherSpinsNorCountsTheCredit()
    {
        // As on one processor, where the default spin time is 0.
        var registry = new RequestRegistry<int, int> { SpinTicks = 0 };
        var spins = CountEachSpin(registry);

        for (var key = 1; key <= Max + 1; key++)
        {
            await MissAsync(registry, key);
        }

        spins.Value.ShouldBe(0);
        registry.SpinCredit.ShouldBe(Max);
    }

    // ---- the spin itself ----

    [Fact]
    public void SpinUntilCompleted_PendingWaiter_SpinsForTheWholeBudget()
    {
        var waiter = new RequestRegistry<int, int>().Register(1);
        var budget = Stopwatch.Frequency / 50;

        var start = Stopwatch.GetTimestamp();
        waiter.SpinUntilCompleted(budget);

        (Stopwatch.GetTimestamp() - start).ShouldBeGreaterThanOrEqualTo(budget);
        waiter.IsCompleted.ShouldBeFalse();
    }

    [Fact]
    public void SpinUntilCompleted_WaiterCompletedByAnotherThread_EndsWithoutWaitingForTheBudget()
    {
        var waiter = new RequestRegistry<int, int>().Register(1);
        var spinner = new Thread(() => waiter.SpinUntilCompleted(s_unbounded)) { IsBackground = true };
        spinner.Start();

        waiter.TrySetResult(1).ShouldBeTrue();

        spinner.Join(s_bound).ShouldBeTrue();
    }

    /// <summary>Runs <paramref name="start"/> on a new thread with <paramref name="context"/>, and returns its wait and whether the wait was complete when the call returned.</summary>
    private static async Task<(ValueTask<int> Wait, bool CompletedAtReturn)> OnAThreadAsync(SynchronizationContext? context, Func<ValueTask<int>> start)
    {
        var result = new TaskCompletionSource<(ValueTask<int>, bool)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var caller = new Thread(() =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            try
            {
                var wait = start();
                result.SetResult((wait, wait.IsCompleted));
            }
            catch (Exception ex)
            {
                // Surfaces as the test's failure, not as a timeout.
                result.SetException(ex);
            }
        })
        { IsBackground = true };
        caller.Start();
        return await result.Task.WaitAsync(s_bound);
    }

    /// <summary>Counts the registry's spins, answering each waiter with <paramref name="value"/> as its spin starts.</summary>
    private static StrongBox<int> AnswerEachSpin(RequestRegistry<int, int> registry, int value)
    {
        var spins = new StrongBox<int>();
        registry.SpinStartingForTests = waiter =>
        {
            spins.Value++;
            waiter.TrySetResult(value);
        };
        return spins;
    }

    /// <summary>Counts the registry's spins, answering none.</summary>
    private static StrongBox<int> CountEachSpin(RequestRegistry<int, int> registry)
    {
        var spins = new StrongBox<int>();
        registry.SpinStartingForTests = _ => spins.Value++;
        return spins;
    }

    /// <summary>Makes a wait off any loop that its spin (if any) does not answer, then answers it.</summary>
    private static async Task MissAsync(RequestRegistry<int, int> registry, int key)
    {
        var (wait, completedAtReturn) = await OnAThreadAsync(null, () => registry.RequestAsync(key, static _ => { }));
        completedAtReturn.ShouldBeFalse();
        registry.Resolve(key, key).ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(key);
    }

    /// <summary>Makes a wait off any loop that spins and is answered within its spin.</summary>
    private static async Task HitAsync(RequestRegistry<int, int> registry, int key)
    {
        var hook = registry.SpinStartingForTests;
        var spins = AnswerEachSpin(registry, key);
        var (wait, completedAtReturn) = await OnAThreadAsync(null, () => registry.RequestAsync(key, static _ => { }));
        registry.SpinStartingForTests = hook;

        spins.Value.ShouldBe(1);
        completedAtReturn.ShouldBeTrue();
        (await wait.AsTask().WaitAsync(s_bound)).ShouldBe(key);
    }

    private static ValueTask<int> Start(RequestRegistry<int, int> registry, int key, Entry entry)
    {
        switch (entry)
        {
            case Entry.RequestAsync:
                return registry.RequestAsync(key, static _ => { });
            case Entry.WaitAsync:
                return registry.WaitAsync(key, registry.Register(key));
            default:
                return registry.Reply(key).WaitAsync();
        }
    }

    /// <summary>A context of its own, as an event loop's or a UI thread's is: what is posted to it runs with it current.</summary>
    private sealed class LoopContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) => ThreadPool.QueueUserWorkItem(_ =>
        {
            SetSynchronizationContext(this);
            try
            {
                d(state);
            }
            finally
            {
                SetSynchronizationContext(null);
            }
        });
    }
}
