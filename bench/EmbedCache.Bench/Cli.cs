using EmbedCache.TestSupport;

namespace EmbedCache.Bench;

/// <summary>What the benches read from their command line, and their progress lines on stderr.</summary>
internal static class Cli
{
    public static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>The repository this bench was built in: the folder above it with EmbedCache.slnx.</summary>
    public static string FindRepo()
    {
        try
        {
            return RepoPaths.Root;
        }
        catch (TypeInitializationException e)
        {
            throw new InvalidOperationException("cannot find the repository root (EmbedCache.slnx); pass --repo DIR", e);
        }
    }

    public static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");
}
