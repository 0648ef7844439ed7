using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>The tests that count what the current thread allocates: they run alone, so no other test's work can add to the count.</summary>
[CollectionDefinition(nameof(ItemQueueAllocationTests), DisableParallelization = true)]
public sealed class ItemQueueAllocationTestsDefinition;

/// <summary>A wait on <see cref="ItemQueue{T}"/> that had to wait allocates nothing in steady state.</summary>
[Collection(nameof(ItemQueueAllocationTests))]
public sealed class ItemQueueAllocationTests
{
    [Theory]
    [InlineData(null, false)]
    [InlineData(null, true)]
    [InlineData(4, false)]
    [InlineData(4, true)]
    public void WaitThatHadToWait_InSteadyState_AllocatesNothing(int? capacity, bool cancellableToken)
    {
        var queue = new ItemQueue<int>(capacity);
        using var cts = new CancellationTokenSource();
        var token = cancellableToken ? cts.Token : CancellationToken.None;
        var waitsForRoom = capacity is null ? 0 : 1;
        RoundTrips(queue, 100, token);
        TwoWaitsAtOnce(queue, 100, token);
        HandOvers(queue, 100, token);
        WaitsForRoom(queue, 100 * waitsForRoom, token);

        var before = GC.GetAllocatedBytesForCurrentThread();
        RoundTrips(queue, 1_000, token);
        TwoWaitsAtOnce(queue, 1_000, token);
        HandOvers(queue, 1_000, token);
        WaitsForRoom(queue, 1_000 * waitsForRoom, token);

        (GC.GetAllocatedBytesForCurrentThread() - before).ShouldBe(0);
    }

    // Each trip lists two waits at once (two receivers, or a receiver and a sender), so both spares are used.
    private static void TwoWaitsAtOnce(ItemQueue<int> queue, int trips, CancellationToken token)
    {
        for (var i = 0; i < trips; i++)
        {
            var first = queue.WaitToReadAsync(token);
            var second = queue.WaitToReadAsync(token);
            queue.TryWrite(i);
            Assert.True(first.IsCompletedSuccessfully && first.Result && second.IsCompletedSuccessfully && second.Result, "The write did not wake both waits.");
            Assert.True(queue.TryRead(out _));
        }
    }

    // Each hand-over lists a read, writes the item it takes, and reads the result, all on this thread.
    private static void HandOvers(ItemQueue<int> queue, int trips, CancellationToken token)
    {
        for (var i = 0; i < trips; i++)
        {
            var read = queue.ReadAsync(token);
            queue.TryWrite(i);
            Assert.True(read.IsCompletedSuccessfully && read.Result == i, "The write did not hand its item to the read.");
        }
    }

    // Each trip fills the bounded queue, lists a write that waits for room, and makes the room with a read.
    private static void WaitsForRoom(ItemQueue<int> queue, int trips, CancellationToken token)
    {
        for (var i = 0; i < trips; i++)
        {
            while (queue.TryWrite(i) == ItemQueue<int>.WriteResult.Written)
            {
            }

            var write = queue.WriteAsync(i, token);
            Assert.True(queue.TryRead(out _));
            Assert.True(write.IsCompletedSuccessfully && write.Result, "The read did not move the waiting write's item in.");
            while (queue.TryRead(out _))
            {
            }
        }
    }

    // Each trip lists a wait, wakes it with a write, reads the result and takes the item, all on this thread.
    private static void RoundTrips(ItemQueue<int> queue, int trips, CancellationToken token)
    {
        for (var i = 0; i < trips; i++)
        {
            // Assert rather than Shouldly: the loop must allocate nothing of its own.
            var wait = queue.WaitToReadAsync(token);
            queue.TryWrite(i);
            Assert.True(wait.IsCompletedSuccessfully && wait.Result, "The write did not wake the wait with true.");
            Assert.True(queue.TryRead(out _));
        }
    }
}
