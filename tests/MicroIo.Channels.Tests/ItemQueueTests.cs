using System.Runtime.CompilerServices;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// The queue under every channel: its waits end exactly once and never stay listed, its end completes
/// <see cref="ItemQueue{T}.Completion"/> exactly when the last item is taken (what a wait allocates: <see cref="ItemQueueAllocationTests"/>).
/// </summary>
public sealed class ItemQueueTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static TheoryData<int?> Kinds => new() { null, 4 };

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task WaitToRead_ListedWait_IsWokenByAWriteOnAnotherThreadNotInline(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var wait = queue.WaitToReadAsync(CancellationToken.None);
        wait.IsCompleted.ShouldBeFalse();
        queue.ListedWaits.ShouldBe(1);
        var writer = new Thread(() => queue.TryWrite(1).ShouldBe(ItemQueue<int>.WriteResult.Written));
        var continuationThread = 0;

        var continued = Continue(wait, () => continuationThread = Environment.CurrentManagedThreadId);
        writer.Start();

        (await continued.WaitAsync(Bound)).ShouldBeTrue();
        continuationThread.ShouldNotBe(writer.ManagedThreadId);
        queue.ListedWaits.ShouldBe(0);
        queue.TryRead(out var item).ShouldBeTrue();
        item.ShouldBe(1);
    }

    [Fact]
    public async Task WaitToWrite_FullBoundedQueue_IsWokenByAReadOnAnotherThreadNotInline()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1).ShouldBe(ItemQueue<int>.WriteResult.Written);
        queue.TryWrite(2).ShouldBe(ItemQueue<int>.WriteResult.Full);
        var wait = queue.WaitToWriteAsync(CancellationToken.None);
        wait.IsCompleted.ShouldBeFalse();
        var reader = new Thread(() => queue.TryRead(out _).ShouldBeTrue());
        var continuationThread = 0;

        var continued = Continue(wait, () => continuationThread = Environment.CurrentManagedThreadId);
        reader.Start();

        (await continued.WaitAsync(Bound)).ShouldBeTrue();
        continuationThread.ShouldNotBe(reader.ManagedThreadId);
        queue.ListedWaits.ShouldBe(0);
        queue.TryWrite(2).ShouldBe(ItemQueue<int>.WriteResult.Written);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Write_WakesEveryListedReader_AndOnlyOneTakesTheItem(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var first = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        var second = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        queue.ListedWaits.ShouldBe(2);

        queue.TryWrite(7);

        (await first.WaitAsync(Bound)).ShouldBeTrue();
        (await second.WaitAsync(Bound)).ShouldBeTrue();
        queue.TryRead(out var item).ShouldBeTrue();
        item.ShouldBe(7);
        queue.TryRead(out _).ShouldBeFalse();
        queue.Sent.ShouldBe(1);
        queue.Received.ShouldBe(1);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task CancelledWait_IsUnlisted_ThrowsItsToken_AndTheNextItemGoesToTheOtherWait(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        using var cts = new CancellationTokenSource();
        var cancelled = queue.WaitToReadAsync(cts.Token).AsTask();
        var other = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        queue.ListedWaits.ShouldBe(2);

        await cts.CancelAsync();

        var ex = await Caught.ExceptionAsync(cancelled.WaitAsync(Bound));
        ex.ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        queue.ListedWaits.ShouldBe(1);
        queue.TryWrite(1);
        (await other.WaitAsync(Bound)).ShouldBeTrue();
        queue.TryRead(out var item).ShouldBeTrue();
        item.ShouldBe(1);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task CancelledWaitForRoom_IsUnlisted_AndThrowsItsToken()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        using var cts = new CancellationTokenSource();
        var wait = queue.WaitToWriteAsync(cts.Token).AsTask();
        queue.ListedWaits.ShouldBe(1);

        await cts.CancelAsync();

        (await Caught.ExceptionAsync(wait.WaitAsync(Bound))).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        queue.ListedWaits.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Waits_OnACancelledToken_EndAtOnceWithoutListing(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        queue.TryWrite(1);

        var read = queue.WaitToReadAsync(cts.Token);
        var write = queue.WaitToWriteAsync(cts.Token);

        read.IsCanceled.ShouldBeTrue();
        write.IsCanceled.ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Complete_WakesListedReadersWithFalse_AndRefusesWrites(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var first = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        var second = queue.WaitToReadAsync(CancellationToken.None).AsTask();

        queue.Complete(null);

        (await first.WaitAsync(Bound)).ShouldBeFalse();
        (await second.WaitAsync(Bound)).ShouldBeFalse();
        queue.Complete(new IOException());
        queue.TryWrite(1).ShouldBe(ItemQueue<int>.WriteResult.Ended);
        queue.Sent.ShouldBe(0);
        (await Within(queue.WaitToReadAsync(CancellationToken.None))).ShouldBeFalse();
        (await Within(queue.WaitToWriteAsync(CancellationToken.None))).ShouldBeFalse();

        // Completed once, by the first end: the second changes nothing.
        await queue.Completion.WaitAsync(Bound);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task Complete_WakesWritersWaitingForRoomWithFalse()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        var wait = queue.WaitToWriteAsync(CancellationToken.None).AsTask();

        queue.Complete(null);

        (await wait.WaitAsync(Bound)).ShouldBeFalse();
        queue.ListedWaits.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Completion_CompletesWhenTheLastItemIsTaken_NotBefore(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(1);
        queue.TryWrite(2);

        queue.Complete(null);

        queue.Completion.IsCompleted.ShouldBeFalse();
        (await Within(queue.WaitToReadAsync(CancellationToken.None))).ShouldBeTrue();
        queue.TryRead(out _).ShouldBeTrue();
        queue.Completion.IsCompleted.ShouldBeFalse();
        queue.TryRead(out _).ShouldBeTrue();
        await queue.Completion.WaitAsync(Bound);
        (await Within(queue.WaitToReadAsync(CancellationToken.None))).ShouldBeFalse();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Completion_OfAFailedQueue_FaultsWithTheFailureItself_OnceDrained(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var failure = new IOException("broken");
        queue.TryWrite(1);

        queue.Complete(failure);

        queue.Completion.IsCompleted.ShouldBeFalse();
        queue.TryRead(out _).ShouldBeTrue();
        (await Caught.ExceptionAsync(queue.Completion.WaitAsync(Bound))).ShouldBeSameAs(failure);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Completion_OfAQueueFailedWithACancellation_IsCancelled_AsSystemThreadingChannelsDoes(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        queue.Complete(new OperationCanceledException(cts.Token));

        (await Caught.ExceptionAsync(queue.Completion.WaitAsync(Bound))).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        queue.Completion.IsCanceled.ShouldBeTrue();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task ReadAsync_WaitingReads_AreServedFirstComeFirstServed_WithTheItemHandedOver(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var first = queue.ReadAsync(CancellationToken.None).AsTask();
        var second = queue.ReadAsync(CancellationToken.None).AsTask();
        var third = queue.ReadAsync(CancellationToken.None).AsTask();
        queue.ListedWaits.ShouldBe(3);

        queue.TryWrite(1);
        queue.TryWrite(2);
        queue.TryWrite(3);

        (await first.WaitAsync(Bound)).ShouldBe(1);
        (await second.WaitAsync(Bound)).ShouldBe(2);
        (await third.WaitAsync(Bound)).ShouldBe(3);
        queue.Count.ShouldBe(0);
        queue.Sent.ShouldBe(3);
        queue.Received.ShouldBe(3);
        queue.ListedWaits.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task ReadAsync_CancelledLastInLine_IsUnlisted_AndAReadListedAfterItIsStillServed(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        using var cts = new CancellationTokenSource();
        var first = queue.ReadAsync(CancellationToken.None).AsTask();
        var second = queue.ReadAsync(CancellationToken.None).AsTask();
        var cancelled = queue.ReadAsync(cts.Token).AsTask();

        await cts.CancelAsync();
        (await Caught.ExceptionAsync(cancelled.WaitAsync(Bound))).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        queue.ListedWaits.ShouldBe(2);
        var later = queue.ReadAsync(CancellationToken.None).AsTask();
        queue.TryWrite(1);
        queue.TryWrite(2);
        queue.TryWrite(3);

        (await first.WaitAsync(Bound)).ShouldBe(1);
        (await second.WaitAsync(Bound)).ShouldBe(2);
        (await later.WaitAsync(Bound)).ShouldBe(3);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task ReadAsync_CancelledFirstOrMiddleInLine_IsUnlisted_AndTheOthersKeepTheirOrder()
    {
        var queue = new ItemQueue<int>(null);
        using var firstCts = new CancellationTokenSource();
        using var middleCts = new CancellationTokenSource();
        var first = queue.ReadAsync(firstCts.Token).AsTask();
        var second = queue.ReadAsync(CancellationToken.None).AsTask();
        var middle = queue.ReadAsync(middleCts.Token).AsTask();
        var last = queue.ReadAsync(CancellationToken.None).AsTask();

        await firstCts.CancelAsync();
        await middleCts.CancelAsync();
        await Caught.ExceptionAsync(first.WaitAsync(Bound));
        await Caught.ExceptionAsync(middle.WaitAsync(Bound));
        queue.ListedWaits.ShouldBe(2);
        queue.TryWrite(1);
        queue.TryWrite(2);

        (await second.WaitAsync(Bound)).ShouldBe(1);
        (await last.WaitAsync(Bound)).ShouldBe(2);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task ReadAsync_AtTheEnd_GetsWhatIsLeftThenEndOfChannel_AndAListedReadIsWokenWithIt(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        var listed = queue.ReadAsync(CancellationToken.None).AsTask();

        queue.Complete(null);

        (await Caught.ExceptionAsync(listed.WaitAsync(Bound))).ShouldBeOfType<EndOfChannelException>();
        var ended = new ItemQueue<int>(capacity);
        ended.TryWrite(5);
        ended.Complete(null);
        (await Within(ended.ReadAsync(CancellationToken.None))).ShouldBe(5);
        await ended.Completion.WaitAsync(Bound);
        (await Caught.ExceptionAsync(Within(ended.ReadAsync(CancellationToken.None)))).ShouldBeOfType<EndOfChannelException>();
    }

    [Fact]
    public async Task WriteAsync_WaitingWrites_GetTheRoomInTheOrderTheyCame_AndNoLaterWriteTakesItFirst()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        var first = queue.WriteAsync(2, CancellationToken.None).AsTask();
        var second = queue.WriteAsync(3, CancellationToken.None).AsTask();
        queue.ListedWaits.ShouldBe(2);
        queue.Sent.ShouldBe(1);

        queue.TryRead(out var item).ShouldBeTrue();

        // The room went to the oldest waiting write, under the read's lock: a new write still finds the queue full.
        item.ShouldBe(1);
        (await first.WaitAsync(Bound)).ShouldBeTrue();
        second.IsCompleted.ShouldBeFalse();
        queue.ListedWaits.ShouldBe(1);
        queue.TryWrite(9).ShouldBe(ItemQueue<int>.WriteResult.Full);
        queue.Count.ShouldBe(1);
        queue.Sent.ShouldBe(2);
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(2);
        (await second.WaitAsync(Bound)).ShouldBeTrue();
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(3);
        queue.ListedWaits.ShouldBe(0);
        queue.Sent.ShouldBe(3);
        queue.Received.ShouldBe(3);
    }

    [Fact]
    public async Task WriteAsync_CancelledWhileWaiting_IsUnlisted_NeverSent_AndTheRoomGoesToTheNextWrite()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        using var cts = new CancellationTokenSource();
        var first = queue.WriteAsync(2, CancellationToken.None).AsTask();
        var cancelled = queue.WriteAsync(3, cts.Token).AsTask();

        await cts.CancelAsync();
        (await Caught.ExceptionAsync(cancelled.WaitAsync(Bound))).ShouldBeAssignableTo<OperationCanceledException>()!.CancellationToken.ShouldBe(cts.Token);
        queue.ListedWaits.ShouldBe(1);
        var later = queue.WriteAsync(4, CancellationToken.None).AsTask();

        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(1);
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(2);
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(4);
        await Task.WhenAll(first, later).WaitAsync(Bound);
        queue.Sent.ShouldBe(3);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WriteAsync_WaitingWhenTheQueueEnds_IsRefused_AndItsItemIsNeverQueued()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        var waiting = queue.WriteAsync(2, CancellationToken.None).AsTask();

        queue.Complete(null);

        (await waiting.WaitAsync(Bound)).ShouldBeFalse();
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(1);
        (await Caught.ExceptionAsync(Within(queue.ReadAsync(CancellationToken.None)))).ShouldBeOfType<EndOfChannelException>();
        queue.Sent.ShouldBe(1);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WriteAsync_ToAWaitingRead_HandsTheItemOver_EvenOnAFullBoundedQueueOfCapacityOne()
    {
        var queue = new ItemQueue<int>(1);
        var read = queue.ReadAsync(CancellationToken.None).AsTask();

        (await Within(queue.WriteAsync(5, CancellationToken.None))).ShouldBeTrue();

        (await read.WaitAsync(Bound)).ShouldBe(5);
        queue.Count.ShouldBe(0);
    }

    [Fact]
    public async Task BoundedReadAsync_MakesRoom_AndWakesAWriterWaitingForIt()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(1);
        var room = queue.WaitToWriteAsync(CancellationToken.None).AsTask();

        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(1);

        (await room.WaitAsync(Bound)).ShouldBeTrue();
        queue.TryWrite(2).ShouldBe(ItemQueue<int>.WriteResult.Written);
    }

    [Fact]
    public async Task ValueTask_ReadTwice_Throws_AndLeavesTheWaitThatReusedItsWaiterAlone()
    {
        var queue = new ItemQueue<int>(null);
        var first = queue.WaitToReadAsync(CancellationToken.None);
        queue.TryWrite(1);
        (await Within(first)).ShouldBeTrue();
        queue.TryRead(out _).ShouldBeTrue();
        var second = queue.WaitToReadAsync(CancellationToken.None);
        second.IsCompleted.ShouldBeFalse();

#pragma warning disable CA2012 // Read twice on purpose: the misuse must throw and must not recycle the waiter the second wait holds.
        Should.Throw<InvalidOperationException>(() => first.Result);
#pragma warning restore CA2012

        queue.TryWrite(2);
        (await second.AsTask().WaitAsync(Bound)).ShouldBeTrue();
    }

    [Fact]
    public async Task ValueTask_ReadBeforeItCompleted_Throws_AndTheWaitStillEndsWhenWoken()
    {
        var queue = new ItemQueue<int>(null);
        var wait = queue.WaitToReadAsync(CancellationToken.None);

#pragma warning disable CA2012 // Read early on purpose: the misuse must throw and must not recycle the waiter, which is still listed.
        Should.Throw<InvalidOperationException>(() => wait.Result);
#pragma warning restore CA2012

        queue.TryWrite(1);
        (await wait.AsTask().WaitAsync(Bound)).ShouldBeTrue();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task WaitToWrite_WithRoom_IsTrueAtOnce_AndFalseOnceEnded(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(1);

        var room = queue.WaitToWriteAsync(CancellationToken.None);

        room.IsCompletedSuccessfully.ShouldBeTrue();
        (await room).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        queue.Complete(null);
        (await Within(queue.WaitToWriteAsync(CancellationToken.None))).ShouldBeFalse();
    }

    [Fact]
    public void ChannelReaderAdapter_CanCount_AndCountsWhatIsQueued()
    {
        var (tx, rx) = ObjectChannel.Create<int>(new ObjectChannelOptions { SingleReceiver = true });
        var reader = rx.AsChannelReader();
        tx.Send(1);
        tx.Send(2);

        reader.CanCount.ShouldBeTrue();
        reader.Count.ShouldBe(2);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task ReadAsync_TakingOneOfSeveralItemsLeftAtTheEnd_LeavesCompletionPending(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(1);
        queue.TryWrite(2);
        queue.Complete(null);

        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(1);

        queue.Completion.IsCompleted.ShouldBeFalse();
        (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(2);
        await queue.Completion.WaitAsync(Bound);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Count_IsTheNumberQueued(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(1);
        queue.TryWrite(2);
        queue.TryWrite(3);
        queue.TryRead(out _);

        queue.Count.ShouldBe(2);
        queue.Sent.ShouldBe(3);
        queue.Received.ShouldBe(1);
    }

    [Fact]
    public void BoundedQueue_RefusesAWriteWhenFull_WithoutCountingIt()
    {
        var queue = new ItemQueue<int>(2);
        queue.TryWrite(1).ShouldBe(ItemQueue<int>.WriteResult.Written);
        queue.TryWrite(2).ShouldBe(ItemQueue<int>.WriteResult.Written);

        queue.TryWrite(3).ShouldBe(ItemQueue<int>.WriteResult.Full);

        queue.Sent.ShouldBe(2);
        queue.Count.ShouldBe(2);
        queue.TryRead(out _).ShouldBeTrue();
        queue.TryWrite(3).ShouldBe(ItemQueue<int>.WriteResult.Written);
    }

    [Fact]
    public void TryWrite_AfterReadsWithoutTheLockOnAFullBoundedQueue_TakesExactlyTheRoomTheyMade()
    {
        // The queue reads the count of reads again only when the count it last read shows no room: the writes of 4, 5 and
        // 8 read it again and find exactly the room made since; those of 6 and 7 go on the count the write of 5 read.
        var queue = new ItemQueue<int>(4);
        for (var i = 0; i < 4; i++)
        {
            queue.TryWrite(i).ShouldBe(ItemQueue<int>.WriteResult.Written);
        }

        queue.TryWrite(4).ShouldBe(ItemQueue<int>.WriteResult.Full);
        queue.TryRead(out _).ShouldBeTrue();
        queue.TryWrite(4).ShouldBe(ItemQueue<int>.WriteResult.Written);
        queue.TryWrite(5).ShouldBe(ItemQueue<int>.WriteResult.Full);
        for (var i = 0; i < 3; i++)
        {
            queue.TryRead(out _).ShouldBeTrue();
        }

        for (var i = 5; i < 8; i++)
        {
            queue.TryWrite(i).ShouldBe(ItemQueue<int>.WriteResult.Written);
        }

        queue.TryWrite(8).ShouldBe(ItemQueue<int>.WriteResult.Full);
        queue.Count.ShouldBe(4);
        queue.Sent.ShouldBe(8);
        queue.Received.ShouldBe(4);
    }

    [Fact]
    public async Task TryWrite_AfterHandOversOnABoundedQueue_TakesTheRoomTheyLeftAndNoMore()
    {
        // A write handed to a waiting read counts the read too, so the count of reads last read falls behind without any
        // room being taken: two hand-overs leave it two behind, and the writes after them must still stop at the capacity.
        var queue = new ItemQueue<int>(1);
        for (var i = 0; i < 2; i++)
        {
            var read = queue.ReadAsync(CancellationToken.None);
            queue.TryWrite(i).ShouldBe(ItemQueue<int>.WriteResult.Written);
            (await read.AsTask().WaitAsync(Bound)).ShouldBe(i);
        }

        queue.TryWrite(2).ShouldBe(ItemQueue<int>.WriteResult.Written);
        queue.TryWrite(3).ShouldBe(ItemQueue<int>.WriteResult.Full);

        queue.Count.ShouldBe(1);
        queue.Sent.ShouldBe(3);
        queue.Received.ShouldBe(2);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(64)]
    public async Task WriteAsync_RacingReadsWithoutTheLock_NeverQueuesMoreThanTheCapacity(int capacity)
    {
        const int Items = 20_000;
        var queue = new ItemQueue<int>(capacity);
        var most = 0;

        // One writer: only reads change the count between its write and its look, and they only lower it.
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                (await queue.WriteAsync(i, CancellationToken.None)).ShouldBeTrue();
                most = Math.Max(most, queue.Count);
            }
        });
        var reader = Task.Run(async () =>
        {
            for (var next = 0; next < Items;)
            {
                if (queue.TryRead(out var item))
                {
                    item.ShouldBe(next);
                    next++;
                }
                else
                {
                    (await queue.WaitToReadAsync(CancellationToken.None)).ShouldBeTrue();
                }
            }
        });

        await Task.WhenAll(writer, reader).WaitAsync(Bound);
        most.ShouldBeLessThanOrEqualTo(capacity);
        queue.Received.ShouldBe(Items);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WakeRacingCancel_EveryWaitEndsExactlyOnce_NothingIsLost_NothingStaysListed()
    {
        var queue = new ItemQueue<int>(null);
        for (var i = 0; i < 2_000; i++)
        {
            var sent = i;
            using var cts = new CancellationTokenSource();
            var wait = queue.WaitToReadAsync(cts.Token).AsTask();
            await Race(
                () => queue.TryWrite(sent),
                () => cts.Cancel());

            // The wait ends either way, woken (true) or cancelled; a second completion would have thrown in the writer or
            // the canceller. The item is queued in both cases.
            bool? woken = null;
            try
            {
                woken = await wait.WaitAsync(Bound);
            }
            catch (OperationCanceledException ex)
            {
                ex.CancellationToken.ShouldBe(cts.Token);
            }

            woken.ShouldNotBe(false);
            queue.TryRead(out var item).ShouldBeTrue();
            item.ShouldBe(sent);
            queue.ListedWaits.ShouldBe(0);
        }

        queue.Sent.ShouldBe(2_000);
        queue.Received.ShouldBe(2_000);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task HandOverRacingCancel_TheItemIsEitherHandedOverOrQueued_NeverLostOrDoubled(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        for (var i = 0; i < 2_000; i++)
        {
            var sent = i;
            using var cts = new CancellationTokenSource();
            var read = queue.ReadAsync(cts.Token).AsTask();
            await Race(
                () => queue.TryWrite(sent),
                () => cts.Cancel());

            int? handed = null;
            try
            {
                handed = await read.WaitAsync(Bound);
            }
            catch (OperationCanceledException ex)
            {
                ex.CancellationToken.ShouldBe(cts.Token);
            }

            var queued = queue.TryRead(out var item);
            (handed is not null).ShouldNotBe(queued);
            (handed ?? item).ShouldBe(sent);
            queue.ListedWaits.ShouldBe(0);
        }

        queue.Sent.ShouldBe(2_000);
        queue.Received.ShouldBe(2_000);
    }

    [Fact]
    public async Task RoomRacingCancel_TheWaitingWriteIsEitherMovedInOrNeverSent()
    {
        var queue = new ItemQueue<int>(1);
        for (var i = 0; i < 2_000; i++)
        {
            var waiting = i;
            queue.TryWrite(-1).ShouldBe(ItemQueue<int>.WriteResult.Written);
            using var cts = new CancellationTokenSource();
            var write = queue.WriteAsync(waiting, cts.Token).AsTask();
            await Race(
                () =>
                {
                    queue.TryRead(out var first).ShouldBeTrue();
                    first.ShouldBe(-1);
                },
                () => cts.Cancel());

            var written = false;
            try
            {
                written = await write.WaitAsync(Bound);
                written.ShouldBeTrue();
            }
            catch (OperationCanceledException ex)
            {
                ex.CancellationToken.ShouldBe(cts.Token);
            }

            var queued = queue.TryRead(out var item);
            queued.ShouldBe(written);
            if (queued)
            {
                item.ShouldBe(waiting);
            }

            queue.Sent.ShouldBe(queue.Received);
            queue.ListedWaits.ShouldBe(0);
        }
    }

    [Fact]
    public async Task WaitCancelledWhileAWakeWalksItsList_IsNotReused_SoTheWaitsAfterItAreStillWoken()
    {
        var queue = new ItemQueue<WalkItem>(null);
        using var cts = new CancellationTokenSource();

        // Listed last first: a wake walks them as first, middle, last.
        var last = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        var middle = queue.WaitToReadAsync(cts.Token);
        var first = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        ValueTask<bool> listedDuringTheWalk = default;
        ItemQueue<WalkItem>.BeforeWakeForTests = woken =>
        {
            ItemQueue<WalkItem>.BeforeWakeForTests = null;

            // Before the walk reaches it: the middle wait's token ends it, its result is read, and a new wait is listed.
            cts.Cancel();
            if (middle.IsCompleted)
            {
                Should.Throw<OperationCanceledException>(() => middle.Result);
            }

            queue.TryRead(out _).ShouldBeTrue();
            listedDuringTheWalk = queue.WaitToReadAsync(CancellationToken.None);
        };

        try
        {
            queue.TryWrite(new WalkItem(1)).ShouldBe(ItemQueue<WalkItem>.WriteResult.Written);
        }
        finally
        {
            ItemQueue<WalkItem>.BeforeWakeForTests = null;
        }

        (await first.WaitAsync(Bound)).ShouldBeTrue();
        (await last.WaitAsync(Bound)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(1);
        queue.TryWrite(new WalkItem(2));
        (await Within(listedDuringTheWalk)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task ManyWaitsCancelledAndWaitingAgain_WhileWritesWakeThem_EveryWaitEnds_AndNoWriteThrows()
    {
        // Random interleavings of cancels, waits and wakes: every wait ends and no write throws. It seldom hits the
        // reuse of a wait that a walking wake still holds; WaitCancelledWhileAWakeWalksItsList pins that one down.
        var queue = new ItemQueue<int>(null);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                queue.TryWrite(i).ShouldBe(ItemQueue<int>.WriteResult.Written);
                if (i % 64 == 0)
                {
                    Thread.Yield();
                }
            }
        });
        var waiters = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 3_000; i++)
            {
                using var cts = new CancellationTokenSource();
                var wait = queue.WaitToReadAsync(cts.Token);
                if ((i + w) % 2 == 0)
                {
                    cts.Cancel();
                }

                try
                {
                    await Within(wait);
                }
                catch (OperationCanceledException)
                {
                }

                while (queue.TryRead(out _))
                {
                }
            }
        })).ToArray();

        try
        {
            await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            // Even when a wait fails the test: the writer must not go on filling the queue for the rest of the run.
            await stop.CancelAsync();
        }

        await writer.WaitAsync(Bound);

        queue.ListedWaits.ShouldBe(0);
        while (queue.TryRead(out _))
        {
        }

        queue.Received.ShouldBe(queue.Sent);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task HandOverRacingComplete_TheItemIsHandedOverOrRefused_AndTheReadGetsItOrTheEnd(int? capacity)
    {
        for (var i = 0; i < 2_000; i++)
        {
            var queue = new ItemQueue<int>(capacity);
            var read = queue.ReadAsync(CancellationToken.None).AsTask();
            var result = ItemQueue<int>.WriteResult.Full;
            await Race(
                () => result = queue.TryWrite(7),
                () => queue.Complete(null));

            Exception? end = null;
            try
            {
                (await read.WaitAsync(Bound)).ShouldBe(7);
            }
            catch (EndOfChannelException ex)
            {
                end = ex;
            }

            if (result == ItemQueue<int>.WriteResult.Written)
            {
                end.ShouldBeNull();
                queue.Sent.ShouldBe(1);
                queue.Received.ShouldBe(1);
            }
            else
            {
                result.ShouldBe(ItemQueue<int>.WriteResult.Ended);
                end.ShouldNotBeNull();
                queue.Sent.ShouldBe(0);
            }

            await queue.Completion.WaitAsync(Bound);
            queue.ListedWaits.ShouldBe(0);
        }
    }

    [Fact]
    public async Task RoomRacingTheFirstWaitingWritesCancel_TheRoomGoesToExactlyOneWrite_InOrder()
    {
        for (var i = 0; i < 2_000; i++)
        {
            var queue = new ItemQueue<int>(1);
            queue.TryWrite(0);
            using var cts = new CancellationTokenSource();
            var head = queue.WriteAsync(1, cts.Token).AsTask();
            var next = queue.WriteAsync(2, CancellationToken.None).AsTask();
            await Race(
                () => queue.TryRead(out _).ShouldBeTrue(),
                () => cts.Cancel());

            // The head got the room before its cancel, or it was cancelled and the next write got it.
            bool headWritten;
            try
            {
                headWritten = await head.WaitAsync(Bound);
                headWritten.ShouldBeTrue();
            }
            catch (OperationCanceledException ex)
            {
                ex.CancellationToken.ShouldBe(cts.Token);
                headWritten = false;
            }

            (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(headWritten ? 1 : 2);
            if (headWritten)
            {
                (await Within(queue.ReadAsync(CancellationToken.None))).ShouldBe(2);
            }

            (await next.WaitAsync(Bound)).ShouldBeTrue();
            queue.Count.ShouldBe(0);
            queue.Sent.ShouldBe(headWritten ? 3 : 2);
            queue.ListedWaits.ShouldBe(0);
        }
    }

    [Fact]
    public async Task WaitToWrite_WithWritesWaitingAheadOfIt_StaysPendingUntilTheyAreIn_ThenIsWokenByTheNextRoom()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var put = queue.WriteAsync(1, CancellationToken.None).AsTask();
        var wait = queue.WaitToWriteAsync(CancellationToken.None).AsTask();

        queue.TryRead(out _).ShouldBeTrue();

        // The room went to the waiting write; the queue is full again.
        (await put.WaitAsync(Bound)).ShouldBeTrue();
        wait.IsCompleted.ShouldBeFalse();
        queue.ListedWaits.ShouldBe(1);
        queue.TryRead(out var item).ShouldBeTrue();
        item.ShouldBe(1);
        (await wait.WaitAsync(Bound)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task LastReadRacingComplete_CompletionAlwaysCompletes(int? capacity)
    {
        for (var i = 0; i < 2_000; i++)
        {
            var queue = new ItemQueue<int>(capacity);
            queue.TryWrite(1);
            await Race(
                () => queue.TryRead(out _).ShouldBeTrue(),
                () => queue.Complete(null));

            await queue.Completion.WaitAsync(Bound);
        }
    }

    [Fact]
    public async Task ReceiveAsync_WaitingReceives_GetTheItemsInTheOrderTheyCame_AndNoLaterReceiveTakesOneFirst()
    {
        var (tx, rx) = ObjectChannel.Create<int>();
        var first = rx.ReceiveAsync().AsTask();
        var second = rx.ReceiveAsync().AsTask();
        rx.Core.Queue.ListedWaits.ShouldBe(2);

        tx.Send(1);

        // Handed to the first waiting receive under the write's lock: never queued, so no one else can take it.
        rx.TryReceive(out _).ShouldBeFalse();
        (await first.WaitAsync(Bound)).ShouldBe(1);
        second.IsCompleted.ShouldBeFalse();
        rx.Core.Queue.ListedWaits.ShouldBe(1);
        tx.Send(2);
        (await second.WaitAsync(Bound)).ShouldBe(2);
        rx.Stats.ShouldBe(new ChannelStats(2, 2, 0, 0, false));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteOrWaitForRoom_FindingNoRoomAsAReadTakesWithoutTheLock_SeesTheRoomOnceListed_AndEndsAtOnce(bool waitOnly)
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);

        // The read takes its item between the look for room and the listing, so it cannot see the wait listed.
        queue.BeforeListingForRoomForTests = () =>
        {
            queue.BeforeListingForRoomForTests = null;
            TakeWithoutTheLock(queue, 0);
        };
        var listed = waitOnly ? queue.WaitToWriteAsync(CancellationToken.None) : queue.WriteAsync(1, CancellationToken.None);

        (await AtOnce(listed)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        if (waitOnly)
        {
            queue.TryWrite(1).ShouldBe(ItemQueue<int>.WriteResult.Written);
        }

        TakeWithoutTheLock(queue, 1);
        queue.Sent.ShouldBe(2);
        queue.Received.ShouldBe(2);
    }

    [Fact]
    public async Task RoomMadeByAReadWithoutTheLock_IsOwedToTheWaitingWrite_NoLaterWriteOrWaitForRoomTakesIt()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var put = queue.WriteAsync(1, CancellationToken.None);
        put.IsCompleted.ShouldBeFalse();
        var later = ItemQueue<int>.WriteResult.Written;
        var wait = default(ValueTask<bool>);

        // The read has counted its item and not yet looked for the waiting write: the room is there, and it is that write's.
        queue.BeforeLookingForWaitsForTests = () =>
        {
            queue.BeforeLookingForWaitsForTests = null;
            later = queue.TryWrite(2);
            wait = queue.WaitToWriteAsync(CancellationToken.None);
        };
        TakeWithoutTheLock(queue, 0);

        later.ShouldBe(ItemQueue<int>.WriteResult.Full);
        (await AtOnce(put)).ShouldBeTrue();
        wait.IsCompleted.ShouldBeFalse();
        TakeWithoutTheLock(queue, 1);
        (await Within(wait)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        queue.Sent.ShouldBe(2);
    }

    // Unbounded, an item counts as received from its take; bounded, from its read's count, as its room does. An end made
    // in that gap completes at once exactly when the item is already counted.
    [Theory]
    [InlineData(null, 1L, true)]
    [InlineData(4, 0L, false)]
    public void ReadWithoutTheLock_BetweenItsTakeAndItsCount_IsReceivedOnlyWhenUnbounded(int? capacity, long receivedInTheGap, bool completedInTheGap)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(0);
        var counts = (Sent: -1L, Received: -1L);
        var completedAtTheEnd = !completedInTheGap;
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            counts = queue.Counts();
            queue.Complete(null);
            completedAtTheEnd = queue.Completion.IsCompletedSuccessfully;
        };

        TakeWithoutTheLock(queue, 0);

        counts.ShouldBe((1L, receivedInTheGap));
        completedAtTheEnd.ShouldBe(completedInTheGap);
        queue.Counts().ShouldBe((1L, 1L));
        queue.Completion.IsCompletedSuccessfully.ShouldBeTrue();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Counts_WhileReadsTakeWithoutTheLock_NeverMissATakeOrRunAhead(int? capacity)
    {
        const int Items = 20_000;
        const int Readers = 2;
        var queue = new ItemQueue<int>(capacity);
        var taken = 0;

        // Ends the loops below if items go missing, so the test fails instead of spinning for ever.
        using var giveUp = new CancellationTokenSource(Bound);
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                (await queue.WriteAsync(i, CancellationToken.None)).ShouldBeTrue();
            }
        });
        var readers = Enumerable.Range(0, Readers).Select(_ => Task.Run(() =>
        {
            while (Volatile.Read(ref taken) < Items && !giveUp.IsCancellationRequested)
            {
                if (queue.TryRead(out _))
                {
                    Interlocked.Increment(ref taken);
                }
            }
        })).ToArray();

        // Each snapshot counts every read that returned before it began, and at most one more per reader than had
        // returned when it ended (a read between its take and its return); neither count ever goes back.
        var last = (Sent: 0L, Received: 0L);
        while (Volatile.Read(ref taken) < Items && !giveUp.IsCancellationRequested)
        {
            var before = Volatile.Read(ref taken);
            var counts = queue.Counts();
            var after = Volatile.Read(ref taken);

            // Assert.Fail, not Assert.True with a message: the message would be built on every snapshot.
            if (counts.Received < before || counts.Received > after + Readers)
            {
                Assert.Fail($"Received {counts.Received}, with {before} to {after} reads returned.");
            }

            if (counts.Sent < counts.Received || counts.Sent < last.Sent || counts.Received < last.Received)
            {
                Assert.Fail($"{counts} after {last}.");
            }

            last = counts;
        }

        await writer.WaitAsync(Bound);
        await Task.WhenAll(readers).WaitAsync(Bound);
        queue.Counts().ShouldBe((Items, Items));
    }

    [Fact]
    public async Task ReadListedWhileAReadWithoutTheLockHasNotCountedTheLastItem_GetsTheItemOfTheOldestWriteWaitingForRoom_AndNoLaterWriteOvertakesIt()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var first = default(ValueTask<bool>);
        var read = default(ValueTask<int>);
        var later = ItemQueue<int>.WriteResult.Written;
        var second = default(ValueTask<bool>);

        // The read without the lock has taken item 0 and not counted it: the queue is empty, and still has no room.
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            first = queue.WriteAsync(1, CancellationToken.None);
            read = queue.ReadAsync(CancellationToken.None);
            later = queue.TryWrite(2);
            second = queue.WriteAsync(3, CancellationToken.None);
        };
        TakeWithoutTheLock(queue, 0);

        // The listed read does not let the later write go before the one waiting for room.
        later.ShouldBe(ItemQueue<int>.WriteResult.Full);

        // The count made room: the oldest waiting write's item went to the listed read, which left the room for the next
        // waiting write, moved in by the same read.
        (await AtOnce(read)).ShouldBe(1);
        (await AtOnce(first)).ShouldBeTrue();
        (await AtOnce(second)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        TakeWithoutTheLock(queue, 3);
        queue.Sent.ShouldBe(3);
        queue.Received.ShouldBe(3);
    }

    [Fact]
    public async Task EndWhileAReadWithoutTheLockHasNotCountedTheLastItem_RefusesTheWaitingWrite_AndCompletionWaitsForTheCount()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var put = queue.WriteAsync(1, CancellationToken.None);
        var completedAtTheEnd = true;
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            queue.Complete(null);
            completedAtTheEnd = queue.Completion.IsCompleted;
        };
        TakeWithoutTheLock(queue, 0);

        completedAtTheEnd.ShouldBeFalse();
        (await AtOnce(put)).ShouldBeFalse();
        await queue.Completion.WaitAsync(Bound);
        queue.Sent.ShouldBe(1);
        queue.Received.ShouldBe(1);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WaitToReadListedWhileAReadWithoutTheLockHasNotCountedTheLastItem_IsWokenByTheWriteThatWasWaitingForRoom()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        Task<bool>? put = null;
        Task<bool>? wait = null;
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            put = queue.WriteAsync(1, CancellationToken.None).AsTask();
            wait = queue.WaitToReadAsync(CancellationToken.None).AsTask();
        };
        TakeWithoutTheLock(queue, 0);

        (await put.ShouldNotBeNull().WaitAsync(Bound)).ShouldBeTrue();
        (await wait.ShouldNotBeNull().WaitAsync(Bound)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        TakeWithoutTheLock(queue, 1);
    }

    [Fact]
    public async Task ReadListedAfterAReadWithoutTheLockMadeRoomAndBeforeItMovedTheWaitingWriteIn_GetsThatWritesItem()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var put = queue.WriteAsync(1, CancellationToken.None);
        var read = default(ValueTask<int>);
        var later = ItemQueue<int>.WriteResult.Written;

        // The read has counted item 0 and not yet looked for the waiting write: the queue is empty, with room owed to it.
        queue.BeforeLookingForWaitsForTests = () =>
        {
            queue.BeforeLookingForWaitsForTests = null;
            read = queue.ReadAsync(CancellationToken.None);
            later = queue.TryWrite(2);
        };
        TakeWithoutTheLock(queue, 0);

        later.ShouldBe(ItemQueue<int>.WriteResult.Full);
        (await AtOnce(read)).ShouldBe(1);
        (await AtOnce(put)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        queue.TryWrite(3).ShouldBe(ItemQueue<int>.WriteResult.Written);
    }

    [Fact]
    public async Task WaitingWriteCancelledAfterAReadWithoutTheLockMadeRoom_TheWaitForRoomBehindItIsWoken()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        using var cts = new CancellationTokenSource();
        var put = queue.WriteAsync(1, cts.Token).AsTask();
        var wait = queue.WaitToWriteAsync(CancellationToken.None);
        queue.BeforeLookingForWaitsForTests = () =>
        {
            queue.BeforeLookingForWaitsForTests = null;
            cts.Cancel();
        };
        TakeWithoutTheLock(queue, 0);

        // The room the read made was owed to the cancelled write; with it gone, the wait for room behind it gets the room.
        await Should.ThrowAsync<OperationCanceledException>(put.WaitAsync(Bound));
        (await AtOnce(wait)).ShouldBeTrue();
        queue.ListedWaits.ShouldBe(0);
        queue.Sent.ShouldBe(1);
    }

    [Fact]
    public async Task WaitingWrite_MovedIn_LeavesItsItemToTheReadNotToTheQueuesReusedWait()
    {
        var queue = new ItemQueue<object>(1);
        queue.TryWrite(new object());
        var (put, item) = WriteAnItemThatWaits(queue);
        queue.TryRead(out _).ShouldBeTrue();
        (await put).ShouldBeTrue();
        TakeAndDrop(queue).ShouldBeTrue();

        // Awaited, the write's wait is the queue's spare now: it must not keep the item it moved in alive.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        item.IsAlive.ShouldBeFalse();
    }

    [Fact]
    public async Task WaitingWrite_HandedToAListedRead_LeavesItsItemToTheReadNotToTheQueuesReusedWait()
    {
        var queue = new ItemQueue<object>(1);
        queue.TryWrite(new object());
        var put = default(ValueTask<bool>);
        WeakReference? item = null;
        var read = default(ValueTask<object>);
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            (put, item) = WriteAnItemThatWaits(queue);
            read = queue.ReadAsync(CancellationToken.None);
        };
        queue.TryRead(out _).ShouldBeTrue();

        Consume(read).ShouldBeTrue();
        (await put).ShouldBeTrue();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        item.ShouldNotBeNull().IsAlive.ShouldBeFalse();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ReadAsync_OnACancelledToken_EndsAtOnce_WithoutTakingOrListing(int? capacity)
    {
        var queue = new ItemQueue<int>(capacity);
        queue.TryWrite(1);

        var read = queue.ReadAsync(new CancellationToken(canceled: true));

        read.IsCanceled.ShouldBeTrue();
        queue.Count.ShouldBe(1);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WriteToAReadListedWhileAReadWithoutTheLockHasNotCountedTheLastItem_IsHandedOver_ThoughThereIsNoRoom()
    {
        var queue = new ItemQueue<int>(1);
        queue.TryWrite(0);
        var read = default(ValueTask<int>);
        var write = ItemQueue<int>.WriteResult.Full;
        queue.BeforeCountingForTests = () =>
        {
            queue.BeforeCountingForTests = null;
            read = queue.ReadAsync(CancellationToken.None);
            write = queue.TryWrite(1);
        };
        TakeWithoutTheLock(queue, 0);

        // A listed read means nothing is queued: the item goes to it, whatever the count says about room.
        write.ShouldBe(ItemQueue<int>.WriteResult.Written);
        (await AtOnce(read)).ShouldBe(1);
        queue.Count.ShouldBe(0);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WaitToReadListedWhileTwoWaitingWritesAreMovedInByOneRead_IsWoken()
    {
        var queue = new ItemQueue<int>(2);
        queue.TryWrite(0);
        queue.TryWrite(1);
        var first = queue.WriteAsync(10, CancellationToken.None);
        var second = queue.WriteAsync(11, CancellationToken.None);
        var wait = default(ValueTask<bool>);

        // The first read has counted item 0 and not yet looked; a second read takes item 1, and in its own gap a wait to
        // read lists itself on the empty queue. The second read's count makes room for both waiting writes at once.
        queue.BeforeLookingForWaitsForTests = () =>
        {
            queue.BeforeLookingForWaitsForTests = null;
            queue.BeforeCountingForTests = () =>
            {
                queue.BeforeCountingForTests = null;
                wait = queue.WaitToReadAsync(CancellationToken.None);
            };
            TakeWithoutTheLock(queue, 1);
        };
        TakeWithoutTheLock(queue, 0);

        (await AtOnce(first)).ShouldBeTrue();
        (await AtOnce(second)).ShouldBeTrue();
        (await AtOnce(wait)).ShouldBeTrue();
        TakeWithoutTheLock(queue, 10);
        TakeWithoutTheLock(queue, 11);
        queue.ListedWaits.ShouldBe(0);
    }

    [Fact]
    public async Task WaitingWrite_RefusedAtTheEnd_LeavesNoItemInTheQueuesReusedWait()
    {
        var queue = new ItemQueue<object>(1);
        queue.TryWrite(new object());
        var (put, item) = WriteAnItemThatWaits(queue);
        queue.Complete(null);
        (await AtOnce(put)).ShouldBeFalse();

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        item.IsAlive.ShouldBeFalse();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BoundedReadsWithoutTheLock_RacingWritesThatWaitForRoom_GetEveryItemOnceInOrder_AndNoWriteIsLeftWaiting(bool waitToWrite)
    {
        const int Items = 50_000;
        var queue = new ItemQueue<int>(1);
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < Items; i++)
            {
                if (!waitToWrite)
                {
                    Assert.True(await queue.WriteAsync(i, CancellationToken.None));
                    continue;
                }

                while (queue.TryWrite(i) == ItemQueue<int>.WriteResult.Full)
                {
                    Assert.True(await queue.WaitToWriteAsync(CancellationToken.None));
                }
            }
        });

        // The reader takes only without the lock (it waits for items under it, it does not take them there), so every room
        // it makes reaches the writer through its look for waits. It spins a little before it waits, to race the writer as
        // often as it can. A room that never reaches the writer stops both: the bound fails.
        var reader = Task.Run(async () =>
        {
            var spin = default(SpinWait);
            for (var next = 0; next < Items;)
            {
                if (queue.TryRead(out var item))
                {
                    Assert.Equal(next++, item);
                    spin.Reset();
                }
                else if (spin.NextSpinWillYield)
                {
                    Assert.True(await queue.WaitToReadAsync(CancellationToken.None));
                    spin.Reset();
                }
                else
                {
                    spin.SpinOnce();
                }
            }
        });

        await Task.WhenAll(writer, reader).WaitAsync(Bound);
        queue.Sent.ShouldBe(Items);
        queue.Received.ShouldBe(Items);
        queue.ListedWaits.ShouldBe(0);
    }

    // The result of a wait that must have ended by now: nothing else runs that could end it later.
    private static async Task<TResult> AtOnce<TResult>(ValueTask<TResult> wait)
    {
        Assert.True(wait.IsCompletedSuccessfully, "The wait had not ended.");
        return await wait;
    }

    // Made here, so no local of the test holds the item.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (ValueTask<bool> Put, WeakReference Item) WriteAnItemThatWaits(ItemQueue<object> queue)
    {
        var item = new object();
        var put = queue.WriteAsync(item, CancellationToken.None);
        Assert.False(put.IsCompleted, "The write did not wait for room.");
        return (put, new WeakReference(item));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool TakeAndDrop(ItemQueue<object> queue) => queue.TryRead(out _);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool Consume(ValueTask<object> read) => read.IsCompletedSuccessfully && read.Result is not null;

    // A bounded read that finds an item takes it without the lock (the path every receive takes first).
    private static void TakeWithoutTheLock(ItemQueue<int> queue, int expected)
    {
        queue.TryRead(out var item).ShouldBeTrue();
        item.ShouldBe(expected);
    }

    // Runs two actions at once on two pool threads, released together by a barrier, and waits for both within the bound.
    private static async Task Race(Action first, Action second)
    {
        using var go = new Barrier(2);
        await Task.WhenAll(
            Task.Run(() =>
            {
                go.SignalAndWait();
                first();
            }),
            Task.Run(() =>
            {
                go.SignalAndWait();
                second();
            })).WaitAsync(Bound);
    }

    // Every wait in these tests is bounded: a wait that is never woken fails its test instead of hanging the run.
    private static Task<TResult> Within<TResult>(ValueTask<TResult> wait) => wait.AsTask().WaitAsync(Bound);

    private static async Task<bool> Continue(ValueTask<bool> wait, Action onContinue)
    {
        var result = await wait.ConfigureAwait(false);
        onContinue();
        return result;
    }

    // An element type of this class's own: the wake hook is static per element type, and no other test queues these.
    private readonly record struct WalkItem(int Value);
}
