namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoActors_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Actors", "MicroIo.Channels", "MicroIo.Tasks", "MicroIo.Scopes");
    }
}
