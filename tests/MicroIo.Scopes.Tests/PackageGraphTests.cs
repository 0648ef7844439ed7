namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoScopes_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Scopes");
    }
}
