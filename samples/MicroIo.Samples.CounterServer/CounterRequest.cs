namespace MicroIo.Samples.CounterServer;

/// <summary>One request to the counter server: the id its reply is matched by, the operation and its argument.</summary>
/// <param name="Id">The request id, the key of the reply in the server's <see cref="RequestRegistry{TKey, TResult}"/>.</param>
/// <param name="Operation">The operation: <c>add</c> or <c>get</c>; anything else fails the request.</param>
/// <param name="Argument">The operation's argument (what <c>add</c> adds).</param>
public sealed record CounterRequest(int Id, string Operation, int Argument);
