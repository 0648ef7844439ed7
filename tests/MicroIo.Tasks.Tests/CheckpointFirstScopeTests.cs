using System.Reflection;
using System.Runtime.Loader;

namespace MicroIo.Tests;

/// <summary>
/// The first scope a process makes ambient. Checkpoints skip the ambient read until then, so they must see that first
/// scope at once, on its own thread and wherever its async flow goes, however it was entered.
/// </summary>
/// <remarks>
/// The rest of the suite runs after other tests have entered scopes. Each test here loads a fresh copy of MicroIo.Tasks
/// into a load context of its own, so its statics start as they do in a new process. Mutation runs leave these tests
/// out (<c>Category=FreshAssembly</c>, see eng/stryker-config.json): a second copy of the mutated assembly in the test
/// process defeats Stryker's per-test coverage capture, and the copy could not see the active mutant anyway.
/// </remarks>
[Trait("Category", "FreshAssembly")]
public class CheckpointFirstScopeTests
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    public enum FirstScope
    {
        /// <summary>A new scope, entered without a lock.</summary>
        Plain,

        /// <summary>A scope with a deadline, entered under its lock.</summary>
        WithDeadline,
    }

    [Theory]
    [InlineData(FirstScope.Plain)]
    [InlineData(FirstScope.WithDeadline)]
    public async Task FirstScopeOfTheProcess_IsSeenByCheckpointsOnItsThreadAndOnAnotherThreadRunningItsContext(FirstScope kind)
    {
        var fresh = FreshTasks.Load();
        try
        {
            fresh.IsCancelled().ShouldBeFalse();
            fresh.Current().ShouldBeNull();

            var scope = kind == FirstScope.Plain ? fresh.NewScope() : fresh.MoveOnAfter(TimeSpan.FromDays(1));
            using (fresh.Enter(scope))
            {
                fresh.Current().ShouldBeSameAs(scope);
                fresh.IsCancelled().ShouldBeFalse();

                fresh.Cancel(scope);

                fresh.IsCancelled().ShouldBeTrue();
                (await Task.Run(fresh.IsCancelled).WaitAsync(s_bound)).ShouldBeTrue();
                RunOnNewThread(ExecutionContext.Capture()!, fresh.IsCancelled).ShouldBeTrue();
            }

            fresh.Current().ShouldBeNull();
            fresh.IsCancelled().ShouldBeFalse();
        }
        finally
        {
            fresh.Unload();
        }
    }

    [Fact]
    public async Task FirstScopeOfTheProcess_IsATaskGroups_ItsChildrenSeeItsCancellation()
    {
        var fresh = FreshTasks.Load();
        try
        {
            var childStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var groupCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var childSaw = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

            await fresh.RunTaskGroupAsync(async group =>
            {
                fresh.StartSoon(group, async _ =>
                {
                    childStarted.SetResult();
                    await groupCancelled.Task.ConfigureAwait(false);
                    childSaw.SetResult(fresh.IsCancelled());
                });

                await childStarted.Task.WaitAsync(s_bound).ConfigureAwait(false);
                fresh.IsCancelled().ShouldBeFalse();
                fresh.CancelGroup(group);
                groupCancelled.SetResult();
            }).WaitAsync(s_bound);

            (await childSaw.Task.WaitAsync(s_bound)).ShouldBeTrue();
        }
        finally
        {
            fresh.Unload();
        }
    }

    /// <summary>Runs a check on a thread of its own inside the given context, as a handoff with no queue would.</summary>
    private static bool RunOnNewThread(ExecutionContext context, Func<bool> check)
    {
        var result = false;
        var thread = new Thread(() => ExecutionContext.Run(context, _ => result = check(), null));
        thread.Start();
        thread.Join(s_bound).ShouldBeTrue();
        return result;
    }

    /// <summary>A copy of MicroIo.Tasks with statics of its own, used through reflection.</summary>
    private sealed class FreshTasks
    {
        private readonly AssemblyLoadContext _context;
        private readonly Type _scope;
        private readonly Type _group;
        private readonly MethodInfo _isCancelled;

        private FreshTasks(AssemblyLoadContext context, Assembly tasks)
        {
            _context = context;
            _scope = tasks.GetType(typeof(CancelScope).FullName!, throwOnError: true)!;
            _group = tasks.GetType(typeof(TaskGroup).FullName!, throwOnError: true)!;
            _isCancelled = tasks.GetType(typeof(Checkpoint).FullName!, throwOnError: true)!.GetMethod(nameof(Checkpoint.IsCancelled))!;
        }

        public static FreshTasks Load()
        {
            var context = new AssemblyLoadContext(nameof(CheckpointFirstScopeTests), isCollectible: true);
            var fresh = new FreshTasks(context, context.LoadFromAssemblyPath(typeof(CancelScope).Assembly.Location));
            fresh._scope.Assembly.ShouldNotBeSameAs(typeof(CancelScope).Assembly);
            return fresh;
        }

        public bool IsCancelled() => (bool)_isCancelled.Invoke(null, [CancellationToken.None])!;

        public object? Current() => _scope.GetProperty(nameof(CancelScope.Current))!.GetValue(null);

        public object NewScope() => Activator.CreateInstance(_scope, [null])!;

        public object MoveOnAfter(TimeSpan delay) => _scope.GetMethod(nameof(CancelScope.MoveOnAfter))!.Invoke(null, [delay, null])!;

        public IDisposable Enter(object scope) => (IDisposable)_scope.GetMethod(nameof(CancelScope.Enter))!.Invoke(scope, null)!;

        public void Cancel(object scope) => _scope.GetMethod(nameof(CancelScope.Cancel))!.Invoke(scope, [null]);

        /// <summary>Runs <c>TaskGroup.RunAsync(body)</c> of the fresh copy; the body gets the fresh group as an object.</summary>
        public Task RunTaskGroupAsync(Func<object, Task> body)
        {
            // A delegate over object binds to Func<TaskGroup, Task> of the fresh copy: parameters of reference type are contravariant.
            var bodyType = typeof(Func<,>).MakeGenericType(_group, typeof(Task));
            var typedBody = Delegate.CreateDelegate(bodyType, body.Target, body.Method);
            var runAsync = _group.GetMethod(nameof(TaskGroup.RunAsync), [bodyType, typeof(CancellationToken)])!;
            return (Task)runAsync.Invoke(null, [typedBody, CancellationToken.None])!;
        }

        public void StartSoon(object group, Func<CancellationToken, Task> child) =>
            _group.GetMethod(nameof(TaskGroup.StartSoon))!.Invoke(group, [child]);

        public void CancelGroup(object group) => _group.GetMethod(nameof(TaskGroup.Cancel))!.Invoke(group, [null]);

        public void Unload() => _context.Unload();
    }
}
