namespace MicroIo;

/// <summary>
/// The exception that is thrown when a resource is used after it was closed in an orderly way.
/// </summary>
/// <remarks>
/// It derives from <see cref="InvalidOperationException"/>, as <see cref="ObjectDisposedException"/> and
/// <c>ChannelClosedException</c> do, because using a closed resource is a misuse of its current state.
/// A resource that was closed because of a failure throws <see cref="BrokenResourceException"/> instead.
/// </remarks>
public class ClosedResourceException : InvalidOperationException
{
    private const string DefaultMessage = "The resource is closed.";

    /// <summary>Initializes a new instance with a default message.</summary>
    public ClosedResourceException()
        : base(DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message.</summary>
    /// <param name="message">The message that describes why the resource is closed.</param>
    public ClosedResourceException(string? message)
        : base(message ?? DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message and the exception that caused it.</summary>
    /// <param name="message">The message that describes why the resource is closed.</param>
    /// <param name="innerException">The exception that caused the close, or <see langword="null"/>.</param>
    public ClosedResourceException(string? message, Exception? innerException)
        : base(message ?? DefaultMessage, innerException)
    {
    }
}
