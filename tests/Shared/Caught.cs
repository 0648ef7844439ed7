namespace MicroIo.Tests;

/// <summary>Awaits a task that must fail and returns what it threw, for exact assertions on the exception.</summary>
/// <remarks>Shouldly's <c>ThrowAsync</c> reports a cancelled task as a new <see cref="TaskCanceledException"/>; this returns the real one.</remarks>
internal static class Caught
{
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(10);

    /// <summary>Returns the exception the task ended with, waiting at most 10 seconds; fails the test if it did not throw.</summary>
    public static async Task<Exception> ExceptionAsync(Task task)
    {
        try
        {
            await task.WaitAsync(s_bound);
        }
        catch (Exception ex)
        {
            return ex;
        }

        throw new ShouldAssertException("the task did not throw");
    }
}
