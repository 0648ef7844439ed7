using Microsoft.Extensions.Logging;

namespace MicroIo.Internal;

/// <summary>The log messages of MicroIo.Threading.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Service thread {ServiceName} did not end within {Timeout}.")]
    public static partial void DidNotEnd(ILogger logger, string serviceName, TimeSpan timeout);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Service thread {ServiceName} failed.")]
    public static partial void Failed(ILogger logger, string serviceName, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "A callback on the event loop of {ServiceName} threw after the service had already failed.")]
    public static partial void LaterLoopFailure(ILogger logger, string serviceName, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "A callback registered on the scope of {ServiceName} threw while the service was being failed.")]
    public static partial void ScopeCallbackFailed(ILogger logger, string serviceName, Exception exception);
}
