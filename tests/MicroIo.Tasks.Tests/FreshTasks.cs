using System.Reflection;
using System.Runtime.Loader;

namespace MicroIo.Tests;

/// <summary>A copy of MicroIo.Tasks with statics of its own, used through reflection.</summary>
/// <remarks>
/// The suite's other tests enter, cancel and leave scopes in parallel in the same process. A test that needs the
/// process-wide state to start as in a new process (no scope ever made ambient, no scope anywhere that may be cancelled)
/// loads a fresh copy into a collectible load context of its own. Mutation runs leave such tests out
/// (<c>Category=FreshAssembly</c>, see eng/stryker-config.json): a second copy of the mutated assembly in the test
/// process defeats Stryker's per-test coverage capture, and the copy could not see the active mutant anyway.
/// </remarks>
internal sealed class FreshTasks
{
    private readonly AssemblyLoadContext _context;
    private readonly Type _scope;
    private readonly Type _group;
    private readonly MethodInfo _isCancelled;
    private readonly PropertyInfo _mayBeCancelled;

    private FreshTasks(AssemblyLoadContext context, Assembly tasks)
    {
        _context = context;
        _scope = tasks.GetType(typeof(CancelScope).FullName!, throwOnError: true)!;
        _group = tasks.GetType(typeof(TaskGroup).FullName!, throwOnError: true)!;
        _isCancelled = tasks.GetType(typeof(Checkpoint).FullName!, throwOnError: true)!.GetMethod(nameof(Checkpoint.IsCancelled))!;
        _mayBeCancelled = _scope.GetProperty(nameof(CancelScope.MayBeCancelled), BindingFlags.Static | BindingFlags.NonPublic)!;
    }

    public static FreshTasks Load()
    {
        var context = new AssemblyLoadContext(nameof(FreshTasks), isCollectible: true);
        var fresh = new FreshTasks(context, context.LoadFromAssemblyPath(typeof(CancelScope).Assembly.Location));
        fresh._scope.Assembly.ShouldNotBeSameAs(typeof(CancelScope).Assembly);
        return fresh;
    }

    /// <summary>Calls <c>Checkpoint.IsCancelled()</c> of the fresh copy, in the calling flow.</summary>
    public bool IsCancelled() => (bool)_isCancelled.Invoke(null, [CancellationToken.None])!;

    /// <summary>Reads the fresh copy's internal <c>CancelScope.MayBeCancelled</c>: false while checkpoints answer with one read.</summary>
    public bool MayBeCancelled() => (bool)_mayBeCancelled.GetValue(null)!;

    public object? Current() => _scope.GetProperty(nameof(CancelScope.Current))!.GetValue(null);

    public object NewScope(TimeProvider? timeProvider = null) => Activator.CreateInstance(_scope, [timeProvider])!;

    public object MoveOnAfter(TimeSpan delay, TimeProvider? timeProvider = null) =>
        _scope.GetMethod(nameof(CancelScope.MoveOnAfter))!.Invoke(null, [delay, timeProvider])!;

    public IDisposable Enter(object scope) => (IDisposable)_scope.GetMethod(nameof(CancelScope.Enter))!.Invoke(scope, null)!;

    public void Cancel(object scope) => _scope.GetMethod(nameof(CancelScope.Cancel))!.Invoke(scope, [null]);

    public CancellationToken Token(object scope) => (CancellationToken)_scope.GetProperty(nameof(CancelScope.Token))!.GetValue(scope)!;

    public void SetShield(object scope, bool shield) => _scope.GetProperty(nameof(CancelScope.Shield))!.SetValue(scope, shield);

    /// <summary>Runs <c>scope.RunAsync(body, cancellationToken)</c> of the fresh copy.</summary>
    public Task<bool> RunAsync(object scope, Func<CancellationToken, Task> body, CancellationToken cancellationToken) =>
        (Task<bool>)_scope.GetMethod(nameof(CancelScope.RunAsync), [typeof(Func<CancellationToken, Task>), typeof(CancellationToken)])!
            .Invoke(scope, [body, cancellationToken])!;

    /// <summary>Runs <c>TaskGroup.RunAsync(body, cancellationToken)</c> of the fresh copy; the body gets the fresh group as an object.</summary>
    public Task RunTaskGroupAsync(Func<object, Task> body, CancellationToken cancellationToken = default)
    {
        // A delegate over object binds to Func<TaskGroup, Task> of the fresh copy: parameters of reference type are contravariant.
        var bodyType = typeof(Func<,>).MakeGenericType(_group, typeof(Task));
        var typedBody = Delegate.CreateDelegate(bodyType, body.Target, body.Method);
        var runAsync = _group.GetMethod(nameof(TaskGroup.RunAsync), [bodyType, typeof(CancellationToken)])!;
        return (Task)runAsync.Invoke(null, [typedBody, cancellationToken])!;
    }

    /// <summary>Runs <c>group.StartAsync(child)</c> of the fresh copy; the child gets the fresh readiness handle as an object.</summary>
    public Task StartAsync(object group, Func<object, CancellationToken, Task> child)
    {
        var readiness = _group.Assembly.GetType(typeof(TaskReadiness).FullName!, throwOnError: true)!;
        var childType = typeof(Func<,,>).MakeGenericType(readiness, typeof(CancellationToken), typeof(Task));
        var typedChild = Delegate.CreateDelegate(childType, child.Target, child.Method);
        var startAsync = _group.GetMethod(nameof(TaskGroup.StartAsync), [childType, typeof(CancellationToken)])!;
        return (Task)startAsync.Invoke(group, [typedChild, CancellationToken.None])!;
    }

    /// <summary>Calls <c>TaskReadiness.Started()</c> on a fresh readiness handle.</summary>
    public static void Started(object readiness) => readiness.GetType().GetMethod(nameof(TaskReadiness.Started))!.Invoke(readiness, null);

    public void StartSoon(object group, Func<CancellationToken, Task> child) =>
        _group.GetMethod(nameof(TaskGroup.StartSoon))!.Invoke(group, [child]);

    public void CancelGroup(object group) => _group.GetMethod(nameof(TaskGroup.Cancel))!.Invoke(group, [null]);

    public void Unload() => _context.Unload();
}
