using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using MicroIo.Internal;

namespace MicroIo;

/// <summary>
/// Runs a handler for each message of a mailbox: one at a time in order (serial), or overlapping, each handler letting
/// the next one start with a <c>release</c> callback (concurrent).
/// </summary>
/// <typeparam name="T">The type of the messages.</typeparam>
/// <remarks>
/// <para>
/// <see cref="RunAsync"/> returns when the mailbox is closed and has nothing left to deliver. Handlers run where
/// <see cref="RunAsync"/> was called: on its <see cref="SynchronizationContext"/> when there is one (so an actor run on a
/// loop thread keeps its state on that thread), else on the thread pool. The core is not tied to a thread: a service
/// thread, a host or a test can run it.
/// </para>
/// <para>
/// A handler that throws fails the mailbox with its exception, so producers learn of it (late submits are dropped and
/// counted, or throw, as the mailbox says) and no message is left waiting forever; messages not yet taken stay in the
/// mailbox for <see cref="Drain"/>. In serial mode <see cref="RunAsync"/> then throws the handler's exception itself; in
/// concurrent mode it throws the <see cref="AggregateException"/> of the task group the handlers run in. In concurrent
/// mode a failing handler does not cancel the handlers already running: each message taken is handled to its end.
/// </para>
/// <para>
/// In serial mode, on more than one processor and off any synchronization context or task scheduler of its own, a run
/// that has just handled a burst of messages and emptied the mailbox spins briefly (about a microsecond) and looks once
/// more before it waits: a producer streaming messages then runs ahead, and the run takes them in bursts instead of
/// waiting to be woken every few messages. A run handling one message at a time never pauses, and one whose pauses keep
/// catching nothing pauses only now and then.
/// </para>
/// <para><see cref="Submit"/>, <see cref="Close"/>, <see cref="Fail"/> and <see cref="Drain"/> may be called from any thread.</para>
/// </remarks>
/// <example>
/// <code>
/// var actor = new ActorCore&lt;string&gt;(async (line, ct) =&gt; await log.WriteLineAsync(line));
/// var run = actor.RunAsync();
/// actor.Submit("hello");
/// actor.Close();
/// await run;
/// </code>
/// </example>
public sealed class ActorCore<T>
{
    private static readonly TaskGroupOptions s_supervise = new() { Mode = TaskGroupMode.Supervise };
    private static readonly long s_pauseTicks = Spinning.DefaultTicks(Environment.ProcessorCount, Stopwatch.Frequency);

    private readonly Func<T, CancellationToken, Task>? _serial;
    private readonly Func<T, Action, CancellationToken, Task>? _concurrent;

    private int _running;
    private volatile bool _handlerFailed;

    /// <summary>Initializes an actor that handles one message at a time, in order.</summary>
    /// <param name="handler">Handles one message; it receives the token of the run.</param>
    /// <param name="mailbox">The mailbox to read; by default, a new <see cref="Mailbox{T}"/> that drops late messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is <see langword="null"/>.</exception>
    public ActorCore(Func<T, CancellationToken, Task> handler, IMailbox<T>? mailbox = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _serial = handler;
        Mailbox = mailbox ?? new Mailbox<T>();
    }

    /// <summary>Initializes an actor whose handlers may overlap: the next message starts once the current handler calls <c>release</c> or returns.</summary>
    /// <param name="handler">Handles one message; it receives a <c>release</c> callback (safe to call more than once, from any thread) and the token of the run.</param>
    /// <param name="mailbox">The mailbox to read; by default, a new <see cref="Mailbox{T}"/> that drops late messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is <see langword="null"/>.</exception>
    public ActorCore(Func<T, Action, CancellationToken, Task> handler, IMailbox<T>? mailbox = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _concurrent = handler;
        Mailbox = mailbox ?? new Mailbox<T>();
    }

    /// <summary>Gets how long a serial run pauses when a burst empties its mailbox, in ticks of <see cref="Stopwatch"/>; 0 never pauses. Set by tests.</summary>
    internal long PauseTicks { get; init; } = s_pauseTicks;

    /// <summary>Gets the mailbox the actor reads.</summary>
    public IMailbox<T> Mailbox { get; }

    /// <summary>Gets a value indicating whether handlers may overlap (the actor was made with a <c>release</c> handler).</summary>
    public bool IsConcurrent => _concurrent is not null;

    /// <summary>Queues a message for the actor.</summary>
    /// <param name="item">The message.</param>
    /// <returns><see langword="true"/> if it was queued; <see langword="false"/> if the mailbox is closed and drops late messages.</returns>
    /// <exception cref="ClosedResourceException">The mailbox is closed and throws on late messages.</exception>
    public bool Submit(T item) => Mailbox is Mailbox<T> direct ? direct.Submit(item) : Mailbox.Submit(item);

    /// <summary>Closes the mailbox: the run handles what was submitted before, then returns.</summary>
    /// <returns><see langword="true"/> for the call that closed the mailbox; otherwise, <see langword="false"/>.</returns>
    public bool Close() => Mailbox.Close();

    /// <summary>Fails the mailbox: the run handles what was submitted before, then throws <paramref name="exception"/>.</summary>
    /// <param name="exception">The failure.</param>
    /// <returns><see langword="true"/> for the call that closed the mailbox; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    public bool Fail(Exception exception) => Mailbox.Fail(exception);

    /// <summary>Takes the messages still queued, up to a limit, without handling them.</summary>
    /// <param name="maxItems">The most messages to take; by default, all.</param>
    /// <returns>The messages taken, in delivery order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxItems"/> is negative.</exception>
    public IReadOnlyList<T> Drain(int maxItems = int.MaxValue) => Mailbox.DrainNowait(maxItems);

    /// <summary>Handles messages until the mailbox is closed and has nothing left to deliver.</summary>
    /// <param name="cancellationToken">A token that stops the run; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns>A task that completes when the mailbox has ended and every handler has finished.</returns>
    /// <exception cref="InvalidOperationException">The actor is already running.</exception>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled (the mailbox stays open); or, serial mode, a handler threw a cancellation of its own (for example of a scope it entered), which fails the mailbox like any handler failure.</exception>
    /// <exception cref="AggregateException">Concurrent mode: a handler failed, a cancellation of its own included; it holds the handler's exception.</exception>
    /// <exception cref="Exception">Serial mode: the exception a handler threw, or the failure the mailbox was failed with.</exception>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException("The actor is already running; run it once at a time.");
        }

        try
        {
            _handlerFailed = false;
            if (_serial is not null)
            {
                await RunSerialAsync(_serial, cancellationToken).ConfigureAwait(true);
            }
            else
            {
                // Supervising, so that a failing handler does not cancel the handlers already running: every message
                // taken is handled to the end, and the dispatcher stops taking more once a handler has failed.
                await TaskGroup.RunAsync(group => DispatchAsync(_concurrent!, group, cancellationToken), s_supervise, cancellationToken).ConfigureAwait(true);
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    // The run's token is checked apart from the scope linked to it: a cancellation runs the token's callbacks newest first,
    // so a handler waiting on the run's token itself can end before the older link has cancelled the run's scope.
    private static bool IsCancellation(Exception exception, CancelScope? runScope, CancellationToken token, CancellationToken runToken = default) =>
        exception is OperationCanceledException
        && (token.IsCancellationRequested || runToken.IsCancellationRequested || runScope?.IsCancellationRequested == true);

    // Every await here keeps the caller's context (ConfigureAwait(true)): handlers must run where the actor's owner runs.
    // The run's scope is taken once, at the start: a handler's own inner scope, still entered when a synchronous handler
    // throws, must not make the handler's failure look like the run's cancellation. A handler whose task is already
    // complete is not awaited, so the loop skips the awaiter; the checkpoint after every message stays (a handler may
    // cancel the run, and the next message must not start then).
    private async Task RunSerialAsync(Func<T, CancellationToken, Task> handler, CancellationToken cancellationToken)
    {
        var runScope = CancelScope.Current;
        var mailbox = Mailbox;
        var pause = new DryPause(Spinning.HasNoContextOfItsOwn() ? PauseTicks : 0);
        var taken = 0L;
        while (await mailbox.WaitToGetAsync(cancellationToken).ConfigureAwait(true))
        {
            while (TryTake(out var item) || TryTakeAfterPause(ref pause, taken, cancellationToken, out item))
            {
                taken++;
                var started = ActorMetrics.Start();
                try
                {
                    var handled = handler(item, cancellationToken);

                    // A null task fails as awaiting it would: with a NullReferenceException that fails the mailbox.
                    if (handled is not { IsCompletedSuccessfully: true })
                    {
                        await handled.ConfigureAwait(true);
                    }
                }
                catch (Exception ex)
                {
                    if (!IsCancellation(ex, runScope, cancellationToken))
                    {
                        mailbox.Fail(ex);
                    }

                    ActorMetrics.Record(started, failed: true);
                    throw;
                }

                ActorMetrics.Record(started, failed: false);
                Checkpoint.ThrowIfCancelled(cancellationToken);
            }
        }
    }

    // A Mailbox<T> (the default, or one the caller made) is called directly here and in Submit, the two calls made for every
    // message: the type test on a sealed type is one compare, and the call can then be inlined, where an interface call is
    // inlined only when profiling guesses the type (docs/benchmarks.md, family 2). Any other mailbox goes through the interface.
    private bool TryTake([MaybeNullWhen(false)] out T item) =>
        Mailbox is Mailbox<T> direct ? direct.TryGet(out item) : Mailbox.TryGet(out item);

    // See DryPause. The checkpoint keeps a run cancelled during the pause from taking another message. Nothing can arrive
    // in a closed mailbox, so a run at its end does not pause.
    private bool TryTakeAfterPause(ref DryPause pause, long taken, CancellationToken cancellationToken, [MaybeNullWhen(false)] out T item)
    {
        if (!pause.RunsDry(taken) || Mailbox.IsClosed)
        {
            item = default;
            return false;
        }

        pause.Pause();
        Checkpoint.ThrowIfCancelled(cancellationToken);
        var caught = TryTake(out item);
        pause.Caught(caught);
        return caught;
    }

    private async Task DispatchAsync(Func<T, Action, CancellationToken, Task> handler, TaskGroup group, CancellationToken runToken)
    {
        while (await WaitToDispatchAsync(group.Token).ConfigureAwait(true))
        {
            // A handler that failed has failed the mailbox before releasing: take nothing more, so every message not
            // yet handled stays in the mailbox for Drain.
            if (_handlerFailed)
            {
                return;
            }

            if (!TryTake(out var item))
            {
                continue;
            }

            var released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            group.StartSoon(async token =>
            {
                var runScope = CancelScope.Current;
                var started = ActorMetrics.Start();
                var failed = true;
                try
                {
                    await handler(item, () => released.TrySetResult(), token).ConfigureAwait(true);
                    failed = false;
                }
                catch (Exception ex) when (!IsCancellation(ex, runScope, token, runToken))
                {
                    _handlerFailed = true;
                    Mailbox.Fail(ex);
                    throw;
                }
                finally
                {
                    ActorMetrics.Record(started, failed);
                    released.TrySetResult();
                }
            });

            await released.Task.ConfigureAwait(true);
            if (_handlerFailed)
            {
                return;
            }
        }
    }

    /// <summary>Waits for the next message; a failure that a handler put on the mailbox ends the dispatch quietly.</summary>
    /// <remarks>The group reports that handler's exception; throwing it here as well would report it twice.</remarks>
    private async ValueTask<bool> WaitToDispatchAsync(CancellationToken token)
    {
        try
        {
            return !_handlerFailed && await Mailbox.WaitToGetAsync(token).ConfigureAwait(true);
        }
        catch (Exception) when (_handlerFailed)
        {
            return false;
        }
    }
}
