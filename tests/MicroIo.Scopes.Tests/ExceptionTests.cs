namespace MicroIo.Tests;

public class ExceptionTests
{
    [Fact]
    public void DefaultConstructors_HaveClearMessages()
    {
        new ClosedResourceException().Message.ShouldNotBeNullOrWhiteSpace();
        new BrokenResourceException().Message.ShouldNotBeNullOrWhiteSpace();
        new EndOfChannelException().Message.ShouldNotBeNullOrWhiteSpace();
        new ClosedResourceException(null).Message.ShouldNotBeNullOrWhiteSpace();
    }

    [Fact]
    public void BrokenResourceException_CarriesCauseAsInner()
    {
        var cause = new IOException("cause");

        var ex = new BrokenResourceException("broken", cause);

        ex.Message.ShouldBe("broken");
        ex.InnerException.ShouldBeSameAs(cause);
    }

    [Fact]
    public void Exceptions_DoNotClashWithSystemNames()
    {
        typeof(EndOfChannelException).Namespace.ShouldBe("MicroIo");
        typeof(ClosedResourceException).IsAssignableTo(typeof(InvalidOperationException)).ShouldBeTrue();
        typeof(BrokenResourceException).IsAssignableTo(typeof(InvalidOperationException)).ShouldBeTrue();
    }
}
