using System.Runtime.CompilerServices;

namespace MicroIo.Internal;

/// <summary>Validates the timeouts that MicroIo's public members accept.</summary>
/// <remarks>Linked into every package (as runtime's Common sources are), so no package depends on another for it.</remarks>
internal static class Timeouts
{
    /// <summary>The largest finite timeout that the BCL's waits accept.</summary>
    private static readonly TimeSpan s_max = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>Throws unless the timeout is <see cref="Timeout.InfiniteTimeSpan"/> or between zero and <see cref="int.MaxValue"/> milliseconds.</summary>
    public static void Validate(TimeSpan timeout, [CallerArgumentExpression(nameof(timeout))] string? paramName = null)
    {
        if (timeout != Timeout.InfiniteTimeSpan && (timeout < TimeSpan.Zero || timeout > s_max))
        {
            throw new ArgumentOutOfRangeException(paramName, timeout, "The timeout must be zero or positive (at most int.MaxValue milliseconds), or Timeout.InfiniteTimeSpan.");
        }
    }
}
