using System.Runtime.InteropServices;

namespace MicroIo.Benchmarks;

/// <summary>A counter alone on its cache line, for the reference rows that add MicroIo's exact sent count to a peer.</summary>
/// <remarks>Padded like the channel's own counters, so the reference pays the interlocked add and nothing else (no false sharing).</remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedCounter
{
    [FieldOffset(64)]
    public long Value;
}
