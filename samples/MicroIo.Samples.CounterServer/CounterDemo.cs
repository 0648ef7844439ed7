namespace MicroIo.Samples.CounterServer;

/// <summary>Runs the counter-server demo: start, three requests, a peek on the loop thread, a bad request, a stop, a join.</summary>
public static class CounterDemo
{
    /// <summary>Makes the demo's requests to a started server (two adds, a get, a peek on the loop thread, a bad request) and writes one line for each.</summary>
    /// <param name="server">A started counter server.</param>
    /// <param name="output">Where the lines go.</param>
    public static void MakeRequests(CounterServer server, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(output);
        output.WriteLine($"add 3 -> {server.Request("add", 3)}");
        output.WriteLine($"add 7 -> {server.Request("add", 7)}");
        output.WriteLine($"get -> {server.Request("get")}");
        output.WriteLine($"loop-thread peek -> {server.Peek()}");
        try
        {
            server.Request("missing");
        }
        catch (InvalidOperationException ex)
        {
            output.WriteLine($"bad request -> {ex.Message}");
        }
    }

    /// <summary>Runs the demo and writes one line for each step to <paramref name="output"/>.</summary>
    /// <param name="output">Where the lines go.</param>
    public static void Run(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.WriteLine("starting server");
        var server = new CounterServer();
        server.Start();
        server.WaitStarted(TimeSpan.FromSeconds(5));

        MakeRequests(server, output);
        output.WriteLine($"closed scope -> {server.Scope.Close("demo finished")}");
        output.WriteLine($"joined -> {server.JoinOrLog(TimeSpan.FromSeconds(5))}");
    }
}
