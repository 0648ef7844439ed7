namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoChannels_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Channels", "MicroIo.Tasks", "MicroIo.Scopes");
    }
}
