using MicroIo.Samples.CounterServer;

namespace MicroIo.Tests;

public class CounterServerTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    [Fact]
    public void Demo_PrintsTheDocumentedLinesInOrder()
    {
        using var output = new StringWriter();

        CounterDemo.Run(output);

        output.ToString().ReplaceLineEndings("\n").ShouldBe(
            """
            starting server
            add 3 -> 3
            add 7 -> 10
            get -> 10
            loop-thread peek -> 10
            bad request -> unknown operation: missing
            closed scope -> True
            joined -> True

            """);
    }

    [Fact]
    public void Server_AnswersFromTheLoop_AndFailsUnknownOperations()
    {
        var server = new CounterServer();
        server.Start();
        server.WaitStarted(s_bound);

        server.Request("add", 3).ShouldBe(3);
        server.Request("add", 7).ShouldBe(10);
        server.Request("get").ShouldBe(10);
        server.Peek().ShouldBe(10);
        Should.Throw<InvalidOperationException>(() => server.Request("missing")).Message.ShouldBe("unknown operation: missing");

        server.Scope.Close("done").ShouldBeTrue();
        server.JoinOrLog(s_bound).ShouldBeTrue();
        server.IsFailed.ShouldBeFalse();
    }

    [Fact]
    public void Request_AfterStop_FailsAtOnce()
    {
        var server = new CounterServer();
        server.Start();
        server.WaitStarted(s_bound);
        server.Stop("maintenance");
        server.JoinOrLog(s_bound).ShouldBeTrue();

        Should.Throw<ClosedResourceException>(() => server.Request("get"));
        Should.Throw<ClosedResourceException>(() => server.Peek());
    }

    [Fact]
    public void Requests_RacingStop_EndWithAValueOrClosed_NeverTimeOut()
    {
        for (var iteration = 0; iteration < 20; iteration++)
        {
            var server = new CounterServer();
            server.Start();
            server.WaitStarted(s_bound);
            var outcomes = new System.Collections.Concurrent.ConcurrentBag<string>();
            using var go = new Barrier(5);
            var clients = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
            {
                go.SignalAndWait();
                for (var i = 0; i < 200; i++)
                {
                    try
                    {
                        server.Request("add", 1);
                        outcomes.Add("value");
                    }
                    catch (ClosedResourceException)
                    {
                        outcomes.Add("closed");
                    }
                }
            })).ToList();
            clients.ForEach(t => t.Start());

            go.SignalAndWait();
            server.Stop("racing");

            clients.ForEach(t => t.Join(TimeSpan.FromSeconds(30)).ShouldBeTrue());
            server.JoinOrLog(s_bound).ShouldBeTrue();
            outcomes.Count.ShouldBe(800);
        }
    }
}
