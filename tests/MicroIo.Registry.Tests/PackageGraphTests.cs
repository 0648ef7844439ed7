namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoRegistry_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Registry", "MicroIo.Scopes");
    }
}
