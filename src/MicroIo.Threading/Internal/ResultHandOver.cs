namespace MicroIo.Internal;

/// <summary>
/// Hands a result from the thread that ends a piece of work to the thread waiting for it, if that one is still there; one
/// compare-and-swap decides which of the two hands the result on, so it is handed on exactly once.
/// </summary>
/// <remarks>
/// <para>
/// A caller that spins for a quick answer takes the result and makes its task from it: the thread ending the work never
/// touches that task, so only the lines of the object holding this struct move between their cores. A caller that has
/// stopped waiting (<see cref="TryTake"/> returned false) leaves the result to the other thread (<see cref="TryLeave"/>
/// returns false), which then completes the caller's task itself.
/// </para>
/// <para>
/// A mutable struct, kept as a field of the object both threads share, so that it costs no object of its own; it is never
/// copied. <see cref="TryLeave"/> is called at most once, by the thread ending the work; <see cref="TryTake"/> exactly once,
/// by the waiter, which then owns the result if it returns true.
/// </para>
/// </remarks>
/// <typeparam name="T">The type of the result.</typeparam>
internal struct ResultHandOver<T>
{
    private const int Waiting = 0;
    private const int Left = 1;
    private const int Gone = 2;

    private T? _value;
    private int _state;

    /// <summary>Gets a value indicating whether a result has been left for the waiter; the waiter may poll it from any thread.</summary>
    public bool HasResult => Volatile.Read(ref _state) == Left;

    /// <summary>Leaves <paramref name="value"/> for the waiter if it is still there; returns false if it has gone, and the leaving thread must then hand the result over itself.</summary>
    public bool TryLeave(T value)
    {
        // A waiter long gone (work that ran on asynchronously) is the common case here: no write to the shared line then.
        // Stryker disable once all : a fast path with the same outcome as the compare-and-swap; only cache traffic differs.
        if (Volatile.Read(ref _state) == Gone)
        {
            return false;
        }

        _value = value;
        return Interlocked.CompareExchange(ref _state, Left, Waiting) == Waiting;
    }

    /// <summary>Takes the result if one was left and returns true, or else marks the waiter gone (later results go elsewhere) and returns false.</summary>
    public bool TryTake(out T value)
    {
        // The fence of the compare-and-swap (or of the read) that finds Left orders the read of the value after its write.
        // The read first spares the usual case (a result left) a write to the line the leaving thread has just written.
        // Stryker disable once all : a fast path with the same outcome as the compare-and-swap; only cache traffic differs.
        if (Volatile.Read(ref _state) == Left || Interlocked.CompareExchange(ref _state, Gone, Waiting) == Left)
        {
            value = _value!;
            return true;
        }

        value = default!;
        return false;
    }
}
