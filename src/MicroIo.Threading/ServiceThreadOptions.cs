using Microsoft.Extensions.Logging;

namespace MicroIo;

/// <summary>Holds the settings of a <see cref="ServiceThread"/>, read once when the service is constructed.</summary>
public sealed class ServiceThreadOptions
{
    /// <summary>Gets or sets the name of the service and of its thread; by default, the service's type name.</summary>
    public string? Name { get; set; }

    /// <summary>Gets or sets a value indicating whether the thread is a background thread, which does not keep the process alive.</summary>
    /// <value><see langword="true"/> (the default) for a background thread; otherwise, <see langword="false"/>.</value>
    public bool IsBackground { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether an exception that escapes the service body is rethrown on its thread.</summary>
    /// <value>
    /// <see langword="true"/> to rethrow it after the service is marked failed and its waiters are woken, which (as for any
    /// exception unhandled on a thread) ends the process; <see langword="false"/> (the default) to record it only.
    /// </value>
    public bool RethrowExceptions { get; set; }

    /// <summary>Gets or sets the logger that <c>JoinOrLog</c> and the loop report to; by default, none.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>Gets or sets the clock that measures the service's timeouts; by default, <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }
}
