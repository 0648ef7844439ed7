namespace MicroIo.Tests;

public class MailboxTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Submit_FromOtherThread_GetReceivesInOrder()
    {
        var mailbox = new Mailbox<int>();

        var producer = new Thread(() =>
        {
            for (var i = 0; i < 3; i++)
            {
                mailbox.Submit(i).ShouldBeTrue();
            }
        });
        producer.Start();
        producer.Join(s_bound).ShouldBeTrue();

        (await mailbox.GetAsync()).ShouldBe(0);
        (await mailbox.GetAsync()).ShouldBe(1);
        (await mailbox.GetAsync()).ShouldBe(2);
    }

    [Fact]
    public async Task LateSubmit_DropsAndCountsByDefault()
    {
        var mailbox = new Mailbox<string>();
        mailbox.Submit("a");
        mailbox.Close().ShouldBeTrue();

        mailbox.Submit("late").ShouldBeFalse();

        mailbox.Stats.ShouldBe(new ChannelStats(1, 0, 1, 1, true));
        (await mailbox.GetAsync()).ShouldBe("a");
        await Should.ThrowAsync<EndOfChannelException>(mailbox.GetAsync().AsTask());
    }

    [Fact]
    public void LateSubmit_ThrowPolicy_Throws()
    {
        var mailbox = new Mailbox<int>(LateSendPolicy.Throw);
        mailbox.Close();

        Should.Throw<ClosedResourceException>(() => mailbox.Submit(1));
        mailbox.Stats.Dropped.ShouldBe(1);
    }

    [Fact]
    public async Task Fail_DeliversKeptItemsThenFailure()
    {
        var mailbox = new Mailbox<int>();
        var failure = new IOException("x");
        mailbox.Submit(1);

        mailbox.Fail(failure).ShouldBeTrue();

        (await mailbox.GetAsync()).ShouldBe(1);
        (await Should.ThrowAsync<IOException>(mailbox.GetAsync().AsTask())).ShouldBeSameAs(failure);
        mailbox.IsClosed.ShouldBeTrue();
    }

    [Fact]
    public async Task DrainAndEnumerate()
    {
        var mailbox = new Mailbox<int>();
        for (var i = 0; i < 5; i++)
        {
            mailbox.Submit(i);
        }

        mailbox.DrainNowait(2).ShouldBe([0, 1]);
        mailbox.TryGet(out var next).ShouldBeTrue();
        next.ShouldBe(2);
        mailbox.Close();
        var rest = new List<int>();
        await foreach (var item in mailbox)
        {
            rest.Add(item);
        }

        rest.ShouldBe([3, 4]);
    }

    [Fact]
    public void BadPolicy_Throws()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new Mailbox<int>((LateSendPolicy)9));
    }
}
