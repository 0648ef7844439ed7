namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoThreading_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Threading", "MicroIo.Tasks", "MicroIo.Scopes", "Microsoft.Extensions.Logging.Abstractions");
    }
}
