using System.Runtime.InteropServices;

namespace MicroIo.Benchmarks;

/// <summary>A counter alone on its cache line: the sent count of the reference rows that add MicroIo's exact count to a peer, and the handled count of family 2's consumers.</summary>
/// <remarks>Padded like the channel's own counters, so the reference pays the interlocked add and nothing else (no false sharing).</remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedCounter
{
    [FieldOffset(64)]
    public long Value;
}
