namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoHosting_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly(
            "MicroIo.Hosting",
            "MicroIo.Threading",
            "MicroIo.Tasks",
            "MicroIo.Scopes",
            "Microsoft.Extensions.Hosting.Abstractions",
            "Microsoft.Extensions.Logging.Abstractions",
            "Microsoft.Extensions.DependencyInjection.Abstractions");
    }
}
