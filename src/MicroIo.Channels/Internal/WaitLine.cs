namespace MicroIo.Internal;

/// <summary>A first-come-first-served line of <see cref="ChannelWaiter"/>s, linked through <see cref="ChannelWaiter.Next"/>; used only under the queue's lock.</summary>
internal struct WaitLine
{
    /// <summary>Gets the oldest wait in the line, or null.</summary>
    public ChannelWaiter? Head { get; private set; }

    private ChannelWaiter? _tail;

    /// <summary>Puts a wait at the end of the line.</summary>
    public void Add(ChannelWaiter waiter)
    {
        if (_tail is null)
        {
            Head = waiter;
        }
        else
        {
            _tail.Next = waiter;
        }

        _tail = waiter;
    }

    /// <summary>Takes the oldest wait that can still be claimed off the line, claimed; the ones a token claimed first leave the line too.</summary>
    public ChannelWaiter? ClaimFirst()
    {
        while (Head is { } head)
        {
            Head = head.Next;
            head.Next = null;
            if (Head is null)
            {
                _tail = null;
            }

            if (head.Claim())
            {
                return head;
            }
        }

        return null;
    }

    /// <summary>Takes a wait off the line, if it is on it.</summary>
    public void Remove(ChannelWaiter waiter)
    {
        ChannelWaiter? previous = null;
        for (var current = Head; current is not null; previous = current, current = current.Next)
        {
            if (current != waiter)
            {
                continue;
            }

            if (previous is null)
            {
                Head = waiter.Next;
            }
            else
            {
                previous.Next = waiter.Next;
            }

            if (_tail == waiter)
            {
                _tail = previous;
            }

            waiter.Next = null;
            return;
        }
    }

    /// <summary>Empties the line and returns its oldest wait, linked to the rest.</summary>
    public ChannelWaiter? TakeAll()
    {
        var head = Head;
        Head = null;
        _tail = null;
        return head;
    }
}
