using System.Diagnostics;
using MicroIo.Internal;

namespace MicroIo.Tests;

/// <summary>
/// How long a spin lasts by default, where code may spin at all, and that a spin lasts as long as it is asked to; linked
/// into the test project of every package that links <see cref="Spinning"/>, so each package's copy is tested.
/// </summary>
public class SpinningTests
{
    [Theory]
    [InlineData(1, 1_000_000_000, 0)]
    [InlineData(2, 1_000_000_000, 1_000)]
    [InlineData(16, 10_000_000, 10)]
    public void DefaultTicks_ByProcessorsAndClock_IsAMicrosecondOrNoneOnOneProcessor(int processors, long frequency, long expected) =>
        Spinning.DefaultTicks(processors, frequency).ShouldBe(expected);

    [Fact]
    public async Task HasNoContextOfItsOwn_OnThePool_OrUnderThePlainContext()
    {
        (await Task.Run(Spinning.HasNoContextOfItsOwn)).ShouldBeTrue();
        (await Task.Run(() =>
        {
            SynchronizationContext.SetSynchronizationContext(new SynchronizationContext());
            try
            {
                return Spinning.HasNoContextOfItsOwn();
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(null);
            }
        })).ShouldBeTrue();
    }

    [Fact]
    public async Task HasNoContextOfItsOwn_NotOnALoopsContext_NorUnderASchedulerOfItsOwn()
    {
        using var loop = new SingleThreadContext();
        (await loop.RunAsync(() => Task.FromResult(Spinning.HasNoContextOfItsOwn()))).ShouldBeFalse();

        var exclusive = new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler;
        (await Task.Factory.StartNew(Spinning.HasNoContextOfItsOwn, CancellationToken.None, TaskCreationOptions.None, exclusive)).ShouldBeFalse();
    }

    [Fact]
    public void For_SpinsAtLeastTheTicksGiven()
    {
        var ticks = Stopwatch.Frequency / 1_000;
        var start = Stopwatch.GetTimestamp();

        Spinning.For(ticks);

        (Stopwatch.GetTimestamp() - start).ShouldBeGreaterThanOrEqualTo(ticks);
    }
}
