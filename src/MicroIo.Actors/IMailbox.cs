using System.Diagnostics.CodeAnalysis;

namespace MicroIo;

/// <summary>Defines a thread-safe, closable queue of messages, as <see cref="ActorCore{T}"/> reads it.</summary>
/// <typeparam name="T">The type of the messages.</typeparam>
/// <remarks>
/// Implemented by <see cref="Mailbox{T}"/> (first in, first out) and <see cref="PriorityMailbox{T}"/> (highest key
/// first). Submitting, closing and failing may happen on any thread. A close lets consumers take what was submitted
/// before; a failure does too, then throws its exception. Enumerating with <c>await foreach</c> ends quietly at a close.
/// </remarks>
public interface IMailbox<T> : IAsyncEnumerable<T>
{
    /// <summary>Gets a value indicating whether the mailbox was closed or failed (it may still hold messages).</summary>
    bool IsClosed { get; }

    /// <summary>Gets a consistent snapshot of the mailbox's counters.</summary>
    ChannelStats Stats { get; }

    /// <summary>Queues a message without waiting.</summary>
    /// <param name="item">The message.</param>
    /// <returns><see langword="true"/> if it was queued; <see langword="false"/> if the mailbox is closed and drops late messages (counted).</returns>
    /// <exception cref="ClosedResourceException">The mailbox is closed and throws on late messages (counted as dropped).</exception>
    bool Submit(T item);

    /// <summary>Takes the next message, waiting for one.</summary>
    /// <param name="cancellationToken">A token that stops the wait; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns>The next message.</returns>
    /// <exception cref="EndOfChannelException">The mailbox is closed and has nothing left to deliver.</exception>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled.</exception>
    /// <exception cref="Exception">The mailbox failed and has nothing left to deliver: the exception given to <see cref="Fail"/>, itself.</exception>
    ValueTask<T> GetAsync(CancellationToken cancellationToken = default);

    /// <summary>Takes the next message if one can be delivered now.</summary>
    /// <param name="item">The message taken, or the default value.</param>
    /// <returns><see langword="true"/> if a message was taken; otherwise, <see langword="false"/>.</returns>
    bool TryGet([MaybeNullWhen(false)] out T item);

    /// <summary>Waits until a message can be taken, or the mailbox ends.</summary>
    /// <param name="cancellationToken">A token that stops the wait; the ambient <see cref="CancelScope"/> stops it too.</param>
    /// <returns><see langword="true"/> if a message can be taken; <see langword="false"/> if the mailbox is closed and has nothing left to deliver.</returns>
    /// <exception cref="OperationCanceledException">The token or the ambient scope was cancelled.</exception>
    /// <exception cref="Exception">The mailbox failed and has nothing left to deliver: the exception given to <see cref="Fail"/>, itself.</exception>
    ValueTask<bool> WaitToGetAsync(CancellationToken cancellationToken = default);

    /// <summary>Closes the mailbox; what was submitted before can still be taken.</summary>
    /// <returns><see langword="true"/> for the call that closed it; otherwise, <see langword="false"/>.</returns>
    bool Close();

    /// <summary>Fails the mailbox: what was submitted before can still be taken, then <paramref name="exception"/> is thrown to consumers.</summary>
    /// <param name="exception">The failure.</param>
    /// <returns><see langword="true"/> for the call that closed it; otherwise, <see langword="false"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    bool Fail(Exception exception);

    /// <summary>Takes the queued messages, up to a limit, without waiting.</summary>
    /// <param name="maxItems">The most messages to take; by default, all.</param>
    /// <returns>The messages taken, in delivery order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxItems"/> is negative.</exception>
    IReadOnlyList<T> DrainNowait(int maxItems = int.MaxValue);
}
