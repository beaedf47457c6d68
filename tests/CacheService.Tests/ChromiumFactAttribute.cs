using EmbedCache.TestSupport;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// A fact that needs node, Debian's chromium and tests/StatusPage's node_modules (<c>npm ci</c> there;
/// .ci/run does both). Skipped, with the missing piece named, where any is absent.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (MissingPiece() is { } missing)
            Skip = missing;
    }

    public static string Chromium => Environment.GetEnvironmentVariable("CHROMIUM_PATH") ?? "/usr/bin/chromium";

    public static string ScriptFolder => Path.Combine(RepoPaths.Root, "tests", "StatusPage");

    private static string? MissingPiece()
    {
        if (ProgramRun.FindOnPath("node") is null)
            return "node is not on PATH (the status page test drives Chromium from node with playwright-core)";
        if (!File.Exists(Chromium))
            return $"{Chromium} is missing: apt-get install chromium (listed in .ci/apt-packages)";
        if (!Directory.Exists(Path.Combine(ScriptFolder, "node_modules", "playwright-core")))
            return "tests/StatusPage/node_modules is missing: run `npm ci` in tests/StatusPage (.ci/run does)";
        return null;
    }
}
