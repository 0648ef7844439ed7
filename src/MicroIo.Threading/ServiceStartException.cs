namespace MicroIo;

/// <summary>
/// The exception that is thrown by <c>WaitStarted</c> when a service did not report that it started: it failed, it was
/// stopped first, or it ended without calling <see cref="ServiceThread.Started"/>.
/// </summary>
/// <remarks>
/// The <see cref="Exception.InnerException"/> says why: the service's own failure; a <see cref="ClosedResourceException"/>
/// when it was stopped before it started; or an <see cref="InvalidOperationException"/> when it ended without starting.
/// </remarks>
public class ServiceStartException : Exception
{
    private const string DefaultMessage = "The service did not start.";

    /// <summary>Initializes a new instance with a default message.</summary>
    public ServiceStartException()
        : base(DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message.</summary>
    /// <param name="message">The message that describes why the service did not start.</param>
    public ServiceStartException(string? message)
        : base(message ?? DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message and the reason the service did not start.</summary>
    /// <param name="message">The message that describes why the service did not start.</param>
    /// <param name="innerException">The failure, or the reason, that kept the service from starting.</param>
    public ServiceStartException(string? message, Exception? innerException)
        : base(message ?? DefaultMessage, innerException)
    {
    }
}
