using System.Reflection;
using System.Runtime.Loader;

namespace MicroIo.Tests;

/// <summary>
/// The first scope a process makes ambient. Checkpoints skip the ambient read until then, so they must see that first
/// scope at once, on its own thread and wherever its async flow goes.
/// </summary>
/// <remarks>
/// The rest of the suite runs after other tests have entered scopes. Each test here loads a fresh copy of MicroIo.Tasks
/// into a load context of its own, so its statics start as they do in a new process.
/// </remarks>
public class CheckpointFirstScopeTests
{
    [Fact]
    public async Task FirstScopeOfTheProcess_IsSeenByCheckpointsOnItsThreadAndWhereItsFlowGoes()
    {
        var fresh = FreshTasks.Load();
        try
        {
            fresh.IsCancelled().ShouldBeFalse();
            fresh.Current().ShouldBeNull();

            var scope = fresh.NewScope();
            using (fresh.Enter(scope))
            {
                fresh.Current().ShouldBeSameAs(scope);
                fresh.IsCancelled().ShouldBeFalse();

                fresh.Cancel(scope);

                fresh.IsCancelled().ShouldBeTrue();
                (await Task.Run(fresh.IsCancelled)).ShouldBeTrue();
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
    public async Task FirstScopeOfTheProcess_EnteredInsideAFlowOnAnotherThread_IsSeenThere()
    {
        var fresh = FreshTasks.Load();
        try
        {
            var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var scope = fresh.NewScope();

            // The flow enters the process's first scope on a pool thread, then resumes (on whatever thread the pool
            // gives it) after the scope was cancelled from this thread.
            var flow = Task.Run(async () =>
            {
                using (fresh.Enter(scope))
                {
                    entered.SetResult();
                    await cancelled.Task.ConfigureAwait(false);
                    return fresh.IsCancelled();
                }
            });

            await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
            fresh.IsCancelled().ShouldBeFalse();
            fresh.Cancel(scope);
            cancelled.SetResult();

            (await flow.WaitAsync(TimeSpan.FromSeconds(10))).ShouldBeTrue();
        }
        finally
        {
            fresh.Unload();
        }
    }

    /// <summary>A copy of MicroIo.Tasks with statics of its own, used through reflection.</summary>
    private sealed class FreshTasks
    {
        private readonly AssemblyLoadContext _context;
        private readonly Type _scope;
        private readonly MethodInfo _isCancelled;

        private FreshTasks(AssemblyLoadContext context, Assembly tasks)
        {
            _context = context;
            _scope = tasks.GetType("MicroIo.CancelScope", throwOnError: true)!;
            _isCancelled = tasks.GetType("MicroIo.Checkpoint", throwOnError: true)!.GetMethod(nameof(Checkpoint.IsCancelled))!;
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

        public IDisposable Enter(object scope) => (IDisposable)_scope.GetMethod(nameof(CancelScope.Enter))!.Invoke(scope, null)!;

        public void Cancel(object scope) => _scope.GetMethod(nameof(CancelScope.Cancel))!.Invoke(scope, [null]);

        public void Unload() => _context.Unload();
    }
}
