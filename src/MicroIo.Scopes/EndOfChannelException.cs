namespace MicroIo;

/// <summary>
/// The exception that is thrown by a receive on a channel that was closed and has no items left.
/// </summary>
/// <remarks>
/// It marks the orderly end of a stream of items, not a misuse, so it derives from <see cref="Exception"/>
/// directly. (It is not named <c>EndOfStreamException</c>, which <c>System.IO</c> already has.)
/// </remarks>
public class EndOfChannelException : Exception
{
    private const string DefaultMessage = "The channel is closed and has no items left.";

    /// <summary>Initializes a new instance with a default message.</summary>
    public EndOfChannelException()
        : base(DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message.</summary>
    /// <param name="message">The message that describes the end of the channel.</param>
    public EndOfChannelException(string? message)
        : base(message ?? DefaultMessage)
    {
    }

    /// <summary>Initializes a new instance with the given message and inner exception.</summary>
    /// <param name="message">The message that describes the end of the channel.</param>
    /// <param name="innerException">The exception that caused this one, or <see langword="null"/>.</param>
    public EndOfChannelException(string? message, Exception? innerException)
        : base(message ?? DefaultMessage, innerException)
    {
    }
}
