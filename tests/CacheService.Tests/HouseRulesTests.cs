using System.Text.RegularExpressions;
using EmbedCache.TestSupport;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The arrows docs/ARCHITECTURE.md ("The house") says must never exist, checked in the sources: a file in a part may
/// not name a namespace of a part it must not depend on (in a using or fully qualified). The engine's project has no
/// ASP.NET Core reference, so Engine → Server cannot even compile; the arrows inside each assembly need this test.
/// </summary>
public sealed partial class HouseRulesTests
{
    private static readonly (string Part, string[] MustNotName, string Why)[] Rules =
    [
        ("Engine", ["EmbedCache.Server", "Microsoft.AspNetCore", "Grpc.Core"], "the engine knows nothing of the server or the wire"),
        ("Engine/Storage", ["EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs", "EmbedCache.Engine.Encoders", "EmbedCache.Engine.Datasets"],
            "the store keeps bytes: labels, manifests, datasets and encoders are the layers above it"),
        ("Engine/Caching", ["EmbedCache.Engine.Jobs"], "jobs run on the cache, not the other way round"),
        ("Engine/Remote", ["EmbedCache.Engine.Storage", "EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs", "EmbedCache.Engine.Encoders", "EmbedCache.Engine.Datasets"],
            "the cluster client moves bytes under keys; what they mean (rows, labels, manifests, shards) is the layers' that use it"),
        ("Engine/Encoders", ["EmbedCache.Engine.Storage", "EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs"], "an encoder turns features into rows and stores nothing"),
        ("Engine/Datasets", ["EmbedCache.Engine.Storage", "EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs"], "a dataset reader reads files and stores nothing"),
        ("Engine/Keys", ["EmbedCache.Engine.Storage", "EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs"], "keys are values the store and the cache share"),
        ("Engine/Embeddings", ["EmbedCache.Engine.Storage", "EmbedCache.Engine.Caching", "EmbedCache.Engine.Jobs"], "fingerprints, dtypes and tiers are values"),
        ("Server/Grpc", ["EmbedCache.Server.Hosting", "EmbedCache.Engine.Storage"],
            "handlers are given the cache engine and the job manager; they neither locate them through the host nor reach under the cache to the store"),
        ("Server/Configuration", ["EmbedCache.Server.Grpc", "EmbedCache.Server.Hosting"], "options are plain values"),
        ("Server/Platform", ["EmbedCache.Server.Grpc", "EmbedCache.Server.Hosting", "EmbedCache.Engine"], "platform calls know nothing of the service"),
    ];

    [Fact]
    public void NoPartNamesAPartItMustNotDependOn()
    {
        var root = Path.Combine(RepoPaths.Root, "src", "CacheService");
        var violations = new List<string>();
        var checkedFiles = 0;
        foreach (var (part, mustNotName, why) in Rules)
        {
            var dir = Path.Combine(root, part);
            Assert.True(Directory.Exists(dir), $"{dir} is gone: update the rules with the house's new map");
            foreach (var file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(root, file);
                if (relative.Split(Path.DirectorySeparatorChar).Any(segment => segment is "bin" or "obj"))
                    continue;
                checkedFiles++;
                var text = Comments().Replace(File.ReadAllText(file), "");
                foreach (var name in mustNotName)
                {
                    if (Regex.IsMatch(text, Regex.Escape(name) + @"\b"))
                        violations.Add($"{relative} names {name}: {why}");
                }
            }
        }

        Assert.True(checkedFiles > 100, $"only {checkedFiles} files checked: the rules no longer point at the sources");
        Assert.True(violations.Count == 0, "arrows the house must not have:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TheRulesCatchAnArrowTheyForbid()
    {
        // The check itself must be able to fail: a storage file that imported the caching layer would be reported.
        var text = Comments().Replace("// using EmbedCache.Engine.Caching; in a comment is fine\nusing EmbedCache.Engine.Caching;\n", "");
        Assert.Matches(Regex.Escape("EmbedCache.Engine.Caching") + @"\b", text);
        Assert.DoesNotMatch(Regex.Escape("EmbedCache.Engine.Caching") + @"\b", Comments().Replace("/// <see cref=\"EmbedCache.Engine.Caching.X\"/>\n", ""));
    }

    /// <summary>Line comments (doc comments included): a cref or a sentence may name another part.</summary>
    [GeneratedRegex(@"//[^\n]*")]
    private static partial Regex Comments();
}
