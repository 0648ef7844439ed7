using System.Threading.Channels;

namespace MicroIo.Tests.BadInput;

/// <summary>Gives every public member of MicroIo.Channels bad input, and checks the documented exception and the state after it.</summary>
public class ChannelsBadInputTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void OptionsCapacity_ZeroOrNegative_ThrowsArgumentOutOfRange(int capacity)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new ObjectChannelOptions { Capacity = capacity }).ParamName.ShouldBe("Capacity");
    }

    [Fact]
    public void OptionsLateSend_Undefined_ThrowsArgumentOutOfRange()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new ObjectChannelOptions { LateSend = (LateSendPolicy)7 }).ParamName.ShouldBe("LateSend");
    }

    [Fact]
    public void Options_Defaults_AreUnboundedThrowingSeveralReceivers()
    {
        var options = new ObjectChannelOptions { Capacity = null };

        options.Capacity.ShouldBeNull();
        options.LateSend.ShouldBe(LateSendPolicy.Throw);
        options.SingleReceiver.ShouldBeFalse();
    }

    [Fact]
    public void Fail_Null_ThrowsOnBothEndpointsAndTheChannelStaysOpen()
    {
        var (sender, receiver) = ObjectChannel.Create<int>();

        Should.Throw<ArgumentNullException>(() => sender.Fail(null!)).ParamName.ShouldBe("exception");
        Should.Throw<ArgumentNullException>(() => receiver.Fail(null!)).ParamName.ShouldBe("exception");

        sender.IsClosed.ShouldBeFalse();
        sender.Send(1).ShouldBeTrue();
        receiver.TryReceive(out var item).ShouldBeTrue();
        item.ShouldBe(1);
    }

    [Fact]
    public void DrainNowait_Negative_ThrowsAndLeavesTheQueue()
    {
        var (sender, receiver) = ObjectChannel.Create<int>();
        sender.Send(1);

        Should.Throw<ArgumentOutOfRangeException>(() => receiver.DrainNowait(-1)).ParamName.ShouldBe("maxItems");

        receiver.DrainNowait(0).ShouldBeEmpty();
        receiver.Stats.Queued.ShouldBe(1);
        receiver.DrainNowait().ShouldBe([1]);
    }

    [Fact]
    public async Task CloseAndFail_Twice_OnlyTheFirstCountsAndTheFirstFailureIsDelivered()
    {
        var (sender, receiver) = ObjectChannel.Create<int>();
        var first = new IOException("first");

        receiver.Fail(first).ShouldBeTrue();
        sender.Fail(new IOException("second")).ShouldBeFalse();
        sender.Close().ShouldBeFalse();
        receiver.Close().ShouldBeFalse();

        (await Should.ThrowAsync<IOException>(() => receiver.ReceiveAsync().AsTask())).ShouldBeSameAs(first);
        (await Should.ThrowAsync<IOException>(() => receiver.WaitToReceiveAsync().AsTask())).ShouldBeSameAs(first);
    }

    [Theory]
    [InlineData(LateSendPolicy.Throw)]
    [InlineData(LateSendPolicy.Drop)]
    public async Task UseAfterClose_EveryMemberFollowsThePolicyAndCounts(LateSendPolicy policy)
    {
        var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { LateSend = policy, Capacity = 4 });
        sender.Send(1);
        sender.Close();

        if (policy == LateSendPolicy.Throw)
        {
            Should.Throw<ClosedResourceException>(() => sender.Send(2));
            await Should.ThrowAsync<ClosedResourceException>(() => sender.SendAsync(3).AsTask());
        }
        else
        {
            sender.Send(2).ShouldBeFalse();
            (await sender.SendAsync(3)).ShouldBeFalse();
        }

        sender.AsChannelWriter().TryWrite(4).ShouldBeFalse();
        await Should.ThrowAsync<ChannelClosedException>(() => sender.AsChannelWriter().WriteAsync(5).AsTask());
        (await receiver.ReceiveAsync()).ShouldBe(1);
        await Should.ThrowAsync<EndOfChannelException>(() => receiver.ReceiveAsync().AsTask());
        (await receiver.WaitToReceiveAsync()).ShouldBeFalse();
        receiver.TryReceive(out _).ShouldBeFalse();
        receiver.Stats.ShouldBe(new ChannelStats(1, 1, 4, 0, true));
    }

    [Fact]
    public async Task SendAfterFail_UnderThrow_ThrowsClosedWithTheFailureInside()
    {
        var (sender, _) = ObjectChannel.Create<int>();
        var failure = new IOException("broken");
        sender.Fail(failure);

        Should.Throw<ClosedResourceException>(() => sender.Send(1)).InnerException.ShouldBeSameAs(failure);
        (await Should.ThrowAsync<ClosedResourceException>(() => sender.SendAsync(1).AsTask())).InnerException.ShouldBeSameAs(failure);
        sender.Stats.Dropped.ShouldBe(2);
    }

    [Fact]
    public async Task CancelledToken_SendAsyncAndReceiveAsync_ThrowAndCountNothing()
    {
        var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1 });
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        await Should.ThrowAsync<OperationCanceledException>(() => sender.SendAsync(1, cts.Token).AsTask());
        await Should.ThrowAsync<OperationCanceledException>(() => receiver.ReceiveAsync(cts.Token).AsTask());
        await Should.ThrowAsync<OperationCanceledException>(() => receiver.WaitToReceiveAsync(cts.Token).AsTask());

        sender.Stats.ShouldBe(new ChannelStats(0, 0, 0, 0, false));
        sender.Send(1).ShouldBeTrue();
    }

    [Fact]
    public async Task SingleReceiver_SecondWaitingReceive_ThrowsInvalidOperationAndTheFirstStillGetsTheItem()
    {
        var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { SingleReceiver = true });
        var first = receiver.ReceiveAsync().AsTask();

        await Should.ThrowAsync<InvalidOperationException>(() => receiver.ReceiveAsync().AsTask());

        sender.Send(9);
        (await first.WaitAsync(StressRun.HangBound)).ShouldBe(9);
    }

    [Fact]
    public async Task BoundedSendAsync_WaitingSenderWhenChannelFails_IsRefusedAndCounted()
    {
        var (sender, receiver) = ObjectChannel.Create<int>(new ObjectChannelOptions { Capacity = 1, LateSend = LateSendPolicy.Drop });
        sender.Send(1).ShouldBeTrue();
        var waiting = sender.SendAsync(2).AsTask();
        waiting.IsCompleted.ShouldBeFalse();

        receiver.Fail(new IOException("x"));

        (await waiting.WaitAsync(StressRun.HangBound)).ShouldBeFalse();
        sender.Stats.ShouldBe(new ChannelStats(1, 0, 1, 1, true));
    }
}
