namespace EmbedCache.TestSupport;

/// <summary>Locates the repository and the built outputs of its projects from a test's bin folder.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>Debug or Release: whatever this test assembly was built as.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
            ? "Release" : "Debug";

    /// <summary>The built main assembly of a project under src/, e.g. ("CacheService", "EmbedCache.CacheService").</summary>
    public static string BuiltAssembly(string projectFolder, string assemblyName)
    {
        var path = Path.Combine(Root, "src", projectFolder, "bin", Configuration, "net10.0", assemblyName + ".dll");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} is not built; build the solution first.", path);
        return path;
    }

    /// <summary>The built main assembly of a helper program under tests/, e.g. ("EncoderProbe", "EmbedCache.EncoderProbe").</summary>
    public static string BuiltTestProgram(string projectFolder, string assemblyName)
    {
        var path = Path.Combine(Root, "tests", projectFolder, "bin", Configuration, "net10.0", assemblyName + ".dll");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} is not built; build the solution first.", path);
        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EmbedCache.slnx")))
                return dir.FullName;
        }

        throw new InvalidOperationException($"No EmbedCache.slnx above {AppContext.BaseDirectory}.");
    }
}
