namespace MicroIo.Tests;

/// <summary>Runs blocking test code on its own thread, so tests that block never starve the thread pool the library uses.</summary>
internal static class DedicatedThread
{
    public static Task Run(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                action();
                done.SetResult();
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        })
        { IsBackground = true };
        thread.Start();
        return done.Task;
    }
}
