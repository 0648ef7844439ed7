namespace MicroIo.Tests.BadInput;

/// <summary>Gives every public member of MicroIo.Tasks bad input, and checks the documented exception and the state after it.</summary>
public class TasksBadInputTests
{
    public static TheoryData<TimeSpan> BadDelays => new()
    {
        TimeSpan.FromMilliseconds(-2),
        TimeSpan.FromTicks(-1),
        TimeSpan.MinValue,
    };

    [Theory]
    [MemberData(nameof(BadDelays))]
    public async Task DelaysAndDeadlines_NegativeNotInfinite_ThrowArgumentOutOfRange(TimeSpan delay)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => CancelScope.MoveOnAfter(delay));
        Should.Throw<ArgumentOutOfRangeException>(() => CancelScope.FailAfter(delay));
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => Checkpoint.SleepAsync(delay));
        await Should.ThrowAsync<ArgumentOutOfRangeException>(() => Checkpoint.SleepAsync(delay, TimeProvider.System));
    }

    [Fact]
    public async Task DelaysAndDeadlines_Infinite_AreAccepted()
    {
        var moveOn = CancelScope.MoveOnAfter(Timeout.InfiniteTimeSpan);
        var failAfter = CancelScope.FailAfter(Timeout.InfiniteTimeSpan);

        (await moveOn.RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();
        (await failAfter.RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();
        moveOn.TimedOut.ShouldBeFalse();
    }

    [Fact]
    public async Task SleepAsync_NullTimeProvider_ThrowsArgumentNull()
    {
        await Should.ThrowAsync<ArgumentNullException>(() => Checkpoint.SleepAsync(TimeSpan.Zero, null!));
    }

    [Fact]
    public async Task CancelScopeRunAsync_NullBody_ThrowsAndTheScopeCanStillRun()
    {
        var scope = new CancelScope();

        await Should.ThrowAsync<ArgumentNullException>(() => scope.RunAsync(null!));
        await Should.ThrowAsync<ArgumentNullException>(() => scope.RunAsync<int>(null!));

        (await scope.RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();
    }

    [Fact]
    public async Task CancelScope_EnteredTwice_ThrowsInvalidOperationForEveryForm()
    {
        var scope = new CancelScope();
        await scope.RunAsync(_ => Task.CompletedTask);

        await Should.ThrowAsync<InvalidOperationException>(() => scope.RunAsync(_ => Task.CompletedTask));
        await Should.ThrowAsync<InvalidOperationException>(() => scope.RunAsync(_ => Task.FromResult(1)));
        Should.Throw<InvalidOperationException>(() => scope.Enter());
    }

    [Fact]
    public void CancelScopeCancel_Twice_SecondReturnsFalseAndKeepsTheFirstReason()
    {
        var scope = new CancelScope();

        scope.Cancel("first").ShouldBeTrue();
        scope.Cancel("second").ShouldBeFalse();

        scope.Reason.ShouldBe("first");
        scope.CancelCalled.ShouldBeTrue();
        scope.IsCancellationRequested.ShouldBeTrue();
    }

    [Fact]
    public async Task CancelScopeEnter_DisposedTwice_ExitsOnce()
    {
        var scope = new CancelScope();
        var entered = scope.Enter();
        CancelScope.Current.ShouldBeSameAs(scope);

        entered.Dispose();
        entered.Dispose();

        scope.IsActive.ShouldBeFalse();
        CancelScope.Current.ShouldBeNull();
        await Task.CompletedTask;
    }

    [Fact]
    public async Task TaskGroupRunAsync_NullArguments_ThrowArgumentNull()
    {
        await Should.ThrowAsync<ArgumentNullException>(() => TaskGroup.RunAsync(null!));
        await Should.ThrowAsync<ArgumentNullException>(() => TaskGroup.RunAsync(_ => Task.CompletedTask, null!));
        await Should.ThrowAsync<ArgumentNullException>(() => TaskGroup.RunAsync<int>(null!));
        await Should.ThrowAsync<ArgumentNullException>(() => TaskGroup.RunAsync(_ => Task.FromResult(1), null!));
    }

    [Fact]
    public async Task TaskGroupStart_NullChild_ThrowsAndTheGroupGoesOn()
    {
        var ran = false;

        await TaskGroup.RunAsync(async group =>
        {
            Should.Throw<ArgumentNullException>(() => group.StartSoon(null!));
            await Should.ThrowAsync<ArgumentNullException>(() => group.StartAsync<int>(null!));
            await Should.ThrowAsync<ArgumentNullException>(() => group.StartAsync((Func<TaskReadiness, CancellationToken, Task>)null!));
            group.StartSoon(_ =>
            {
                ran = true;
                return Task.CompletedTask;
            });
        });

        ran.ShouldBeTrue();
    }

    [Fact]
    public async Task TaskGroupStart_AfterTheGroupFinished_ThrowsInvalidOperation()
    {
        TaskGroup? finished = null;
        await TaskGroup.RunAsync(group =>
        {
            finished = group;
            return Task.CompletedTask;
        });

        finished!.IsFinished.ShouldBeTrue();
        Should.Throw<InvalidOperationException>(() => finished.StartSoon(_ => Task.CompletedTask)).Message.ShouldContain("finished");
        (await Should.ThrowAsync<InvalidOperationException>(() => finished.StartAsync<int>((ready, _) => Task.CompletedTask))).Message.ShouldContain("finished");
        finished.RunningCount.ShouldBe(0);
    }

    [Fact]
    public async Task TaskReadinessStarted_Twice_ThrowsInvalidOperationAndTheFirstValueStands()
    {
        Exception? second = null;

        var value = await TaskGroup.RunAsync(async group =>
        {
            var result = await group.StartAsync<int>((ready, _) =>
            {
                ready.Started(1);
                second = Record.Exception(() => ready.Started(2));
                ready.IsStarted.ShouldBeTrue();
                return Task.CompletedTask;
            });
            return result;
        });

        value.ShouldBe(1);
        second.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public async Task TaskReadinessStarted_NonGenericTwice_ThrowsInvalidOperation()
    {
        Exception? second = null;

        await TaskGroup.RunAsync(async group =>
        {
            await group.StartAsync((ready, _) =>
            {
                ready.IsStarted.ShouldBeFalse();
                ready.Started();
                second = Record.Exception(ready.Started);
                return Task.CompletedTask;
            });
        });

        second.ShouldBeOfType<InvalidOperationException>();
    }

    [Fact]
    public async Task TaskReadinessStarted_AfterTheChildEnded_ThrowsInvalidOperation()
    {
        TaskReadiness<int>? kept = null;

        await TaskGroup.RunAsync(async group =>
        {
            await Should.ThrowAsync<InvalidOperationException>(() => group.StartAsync<int>((ready, _) =>
            {
                kept = ready;
                return Task.CompletedTask;
            }));
        });

        Should.Throw<InvalidOperationException>(() => kept!.Started(1));
    }

    [Fact]
    public void TaskGroupOptionsMode_Undefined_ThrowsArgumentOutOfRange()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new TaskGroupOptions { Mode = (TaskGroupMode)42 });
        new TaskGroupOptions { Mode = TaskGroupMode.Supervise }.Mode.ShouldBe(TaskGroupMode.Supervise);
    }

    [Fact]
    public async Task ScopeGroupCancel_Twice_SecondDoesNotUnlatch()
    {
        var group = new ScopeGroup();

        group.Cancel("first", latch: true);
        group.Cancel("second");

        group.IsLatched.ShouldBeTrue();
        (await group.CreateScope().RunAsync(ct => Task.Delay(Timeout.InfiniteTimeSpan, ct))).ShouldBeFalse();
        group.Clear();
        group.IsLatched.ShouldBeFalse();
        (await group.CreateScope().RunAsync(_ => Task.CompletedTask)).ShouldBeTrue();
    }
}
