using Microsoft.Extensions.Logging;

namespace MicroIo.Internal;

/// <summary>The log messages of MicroIo.Hosting, written to the host's logger under the category <c>MicroIo.Hosting</c>.</summary>
internal static partial class Log
{
    /// <summary>The category of every message: the host's logger for MicroIo services.</summary>
    public const string Category = "MicroIo.Hosting";

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "MicroIo service {ServiceName} started.")]
    public static partial void Started(ILogger logger, string serviceName);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "MicroIo service {ServiceName} did not start; the host does not start.")]
    public static partial void StartFailed(ILogger logger, string serviceName, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Host start was cancelled (or its startup timeout elapsed) before these MicroIo services reported started: {ServiceNames}.")]
    public static partial void StartCancelled(ILogger logger, string serviceNames);

    [LoggerMessage(EventId = 4, Level = LogLevel.Critical, Message = "MicroIo service {ServiceName} failed while the host was running; stopping the application with exit code {ExitCode}.")]
    public static partial void FailedWhileRunning(ILogger logger, string serviceName, int exitCode, Exception exception);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "MicroIo service {ServiceName} was stopped while the host was running ({Reason}); stopping the application.")]
    public static partial void StoppedWhileRunning(ILogger logger, string serviceName, string? reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "MicroIo service {ServiceName} ended on its own while the host was running; stopping the application.")]
    public static partial void EndedWhileRunning(ILogger logger, string serviceName);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "MicroIo service {ServiceName} did not stop within the host's shutdown timeout.")]
    public static partial void DidNotStop(ILogger logger, string serviceName);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "MicroIo service {ServiceName} failed while the host was stopping; the exit code is {ExitCode}.")]
    public static partial void FailedWhileStopping(ILogger logger, string serviceName, int exitCode, Exception exception);

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "A callback registered on the scope of MicroIo service {ServiceName} threw while the service was being stopped.")]
    public static partial void StopCallbackFailed(ILogger logger, string serviceName, Exception exception);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "MicroIo service {ServiceName} stopped.")]
    public static partial void Stopped(ILogger logger, string serviceName);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "MicroIo service {ServiceName} was asked to stop only after the host's shutdown timeout had elapsed (a service stopped before it was late), and has not ended.")]
    public static partial void NotWaitedFor(ILogger logger, string serviceName);
}
