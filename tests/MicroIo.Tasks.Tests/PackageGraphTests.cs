namespace MicroIo.Tests;

public class PackageGraphTests
{
    [Fact]
    public void MicroIoTasks_References_OnlyWhatTheDesignGraphAllows()
    {
        PackageGraph.ShouldReferenceOnly("MicroIo.Tasks", "MicroIo.Scopes");
    }
}
