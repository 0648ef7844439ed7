namespace MicroIo.Internal;

/// <summary>Keeps weak references to the live instances of a type, so an observable instrument can sum over them.</summary>
/// <remarks>
/// Linked into the packages that report an observable total (they set <c>UsesLiveInstances</c>). Registering costs one
/// lock when an instance is created; the per-operation paths pay nothing, and nothing is kept alive by being counted.
/// </remarks>
internal sealed class LiveInstances<T>
    where T : class
{
    private readonly Lock _lock = new();
    private readonly List<WeakReference<T>> _items = [];
    private int _pruneAt = 64;

    /// <summary>Registers a new instance.</summary>
    public void Add(T item)
    {
        lock (_lock)
        {
            if (_items.Count >= _pruneAt)
            {
                _items.RemoveAll(static w => !w.TryGetTarget(out _));
                _pruneAt = Math.Max(64, _items.Count * 2);
            }

            _items.Add(new WeakReference<T>(item));
        }
    }

    /// <summary>Sums a value over the instances still alive.</summary>
    public long Sum(Func<T, long> selector)
    {
        lock (_lock)
        {
            long sum = 0;
            foreach (var reference in _items)
            {
                if (reference.TryGetTarget(out var item))
                {
                    sum += selector(item);
                }
            }

            return sum;
        }
    }
}
