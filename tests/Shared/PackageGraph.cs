using System.Reflection;

namespace MicroIo.Tests;

/// <summary>Checks a package's compiled references against the dependency graph of DESIGN.md.</summary>
internal static class PackageGraph
{
    /// <summary>
    /// Asserts that the named package's compiled references are all in the BCL or in the allowed list.
    /// </summary>
    /// <remarks>The compiler records only the references a package uses, so this checks that nothing outside the graph is used.</remarks>
    public static void ShouldReferenceOnly(string package, params string[] allowed)
    {
        var assembly = Assembly.Load(package);

        var outside = assembly.GetReferencedAssemblies()
            .Select(a => a.Name!)
            .Where(n => !IsFramework(n) && !allowed.Contains(n))
            .ToArray();

        outside.ShouldBeEmpty($"{package} may reference only the BCL and [{string.Join(", ", allowed)}]");
    }

    private static bool IsFramework(string name) =>
        name is "System" or "netstandard" or "mscorlib" || name.StartsWith("System.", StringComparison.Ordinal);
}
