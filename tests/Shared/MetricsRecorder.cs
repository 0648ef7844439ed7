using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MicroIo.Tests;

/// <summary>Listens to the <c>MicroIo</c> meter and sums what each instrument records, for tests of the metrics.</summary>
/// <remarks>Use it in the <see cref="MetricsTests"/>, which runs alone, so no other test's measurements mix in.</remarks>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _sums = new();
    private readonly ConcurrentDictionary<string, long> _last = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();

    public MetricsRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "MicroIo")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument.Name, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument.Name, (long)Math.Round(value * 1_000_000), tags));
        _listener.Start();
    }

    /// <summary>Gets the sum of what a counter recorded since this recorder started.</summary>
    public long Sum(string instrument) => _sums.GetValueOrDefault(instrument);

    /// <summary>Gets the sum of what a counter recorded with one tag value since this recorder started.</summary>
    public long Sum(string instrument, string tag, string value) => _sums.GetValueOrDefault(Key(instrument, tag, value));

    /// <summary>Gets how many measurements an instrument recorded since this recorder started.</summary>
    public int Count(string instrument) => _counts.GetValueOrDefault(instrument);

    /// <summary>Reads the observable instruments now and returns the value one of them reported.</summary>
    public long Observe(string instrument)
    {
        _last.TryRemove(instrument, out _);
        _listener.RecordObservableInstruments();
        return _last.GetValueOrDefault(instrument);
    }

    public void Dispose() => _listener.Dispose();

    private static string Key(string instrument, string tag, object? value) => $"{instrument}|{tag}={value}";

    private void Record(string name, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            _sums.AddOrUpdate(Key(name, tag.Key, tag.Value), value, (_, sum) => sum + value);
        }

        Record(name, value);
    }

    private void Record(string name, long value)
    {
        _sums.AddOrUpdate(name, value, (_, sum) => sum + value);
        _counts.AddOrUpdate(name, 1, (_, count) => count + 1);
        _last[name] = value;
    }
}

/// <summary>Runs the metrics tests alone: the instruments are process-wide, so a parallel test would add to the counts.</summary>
[CollectionDefinition(nameof(MetricsTests), DisableParallelization = true)]
public sealed class MetricsTests;
