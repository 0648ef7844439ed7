namespace MicroIo;

/// <summary>
/// The exception that is thrown when a resource is used after it was closed by a failure.
/// </summary>
/// <remarks>
/// The failure that broke the resource is the <see cref="Exception.InnerException"/>, so a caller can
/// tell a crashed peer from an orderly close (<see cref="ClosedResourceException"/>) and still see the cause.
/// </remarks>
public class BrokenResourceException : InvalidOperationException
{
    private const string DefaultMessage = "The resource is broken.";

    /// <summary>Initializes a new instance with a default message.</summary>
    public BrokenResourceException()
        : base(DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message.</summary>
    /// <param name="message">The message that describes why the resource is broken.</param>
    public BrokenResourceException(string? message)
        : base(message ?? DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message and the failure that broke the resource.</summary>
    /// <param name="message">The message that describes why the resource is broken.</param>
    /// <param name="innerException">The failure that broke the resource.</param>
    public BrokenResourceException(string? message, Exception? innerException)
        : base(message ?? DefaultMessage, innerException)
    {
    }
}
