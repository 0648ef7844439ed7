using System.Runtime.InteropServices;

namespace MicroIo.Internal;

/// <summary>A counter alone on its cache line (64 bytes of padding each side), so two counters never share one.</summary>
/// <remarks>Outside <see cref="ItemQueue{T}"/>: a type nested in a generic type is generic, and generic types cannot have explicit layout.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedCounter
{
    [FieldOffset(64)]
    public long Value;
}
