using System.Diagnostics.CodeAnalysis;

// CancelScope.Enter returns a struct (CancelScopeEntry) since it stopped allocating a handle. This test stores the entry
// as IDisposable on purpose (code written against the earlier API must keep compiling and behaving), which CA1859 flags.
[assembly: SuppressMessage(
    "Performance",
    "CA1859:Use concrete types when possible for improved performance",
    Justification = "The test keeps the entry as IDisposable on purpose: code written against the IDisposable-returning Enter must still work.",
    Scope = "member",
    Target = "~M:MicroIo.Tests.CancelScopeTests.Enter_ExitInDifferentAsyncFlow_Throws~System.Threading.Tasks.Task")]
