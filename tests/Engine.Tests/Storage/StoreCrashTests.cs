using System.Globalization;
using System.Text.RegularExpressions;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.StoreCrashChild;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>Process level: a writer killed with SIGKILL loses nothing it had checkpointed.</summary>
public sealed partial class StoreCrashTests
{
    [Fact]
    public async Task ChildKilledAfterCheckpoint_EveryCheckpointedValueIsBitIdenticalAfterReopen()
    {
        using var dir = new TempDirectory("crash");
        const int checkpointed = 3000;
        long version;
        using (var child = ChildProcess.Start(
            RepoPaths.BuiltTestProgram("StoreCrashChild", "EmbedCache.StoreCrashChild"),
            [dir.Path, checkpointed.ToString(CultureInfo.InvariantCulture)]))
        {
            var line = await child.WaitForLineAsync(CheckpointLine(), "the child's checkpoint", TimeSpan.FromSeconds(120));
            version = long.Parse(line.Groups[1].Value, CultureInfo.InvariantCulture);
            // Let it overwrite checkpointed items and write well past the checkpoint, then kill it mid-write.
            await child.WaitForLineAsync(new Regex($"^WRITING {checkpointed + (20 * 256)}$"), "writes after the checkpoint");
            child.Kill();
            await child.WaitForExitAsync("the killed child to exit");
        }

        using var store = EmbeddingStore.Open(new StoreOptions { SaveDir = dir.Path, CpuMemoryBytes = 4L << 20, CheckpointInterval = TimeSpan.Zero });
        Assert.Equal(version, store.LastCheckpoint!.Version);
        var ns = store.Register(CrashRows.Spec);
        Assert.Equal(checkpointed, ns.Items);
        using var session = store.NewSession();
        var rb = ns.RowBytes;
        var rows = new byte[256 * rb];
        var mask = new byte[32];
        var groups = new long[256];
        for (var first = 0; first < checkpointed; first += 256)
        {
            var n = Math.Min(256, checkpointed - first);
            Assert.Equal(n, session.Get(ns, ItemKeyBatch.Positional("crash", "train", CrashRows.Range(first, n)), rows, mask));
            // generation 0: the overwrites of items 0..99 after the checkpoint are not part of it
            Assert.True(rows.AsSpan(0, n * rb).SequenceEqual(CrashRows.Rows(first, n, generation: 0)), $"rows at {first} differ from the checkpointed bytes");
            Assert.Equal(n, DatasetLabels.GetGroups(session, "crash", "train", CrashRows.Range(first, n), groups, mask));
            for (var i = 0; i < n; i++)
                Assert.Equal((first + i) % 13, groups[i]);
        }

        Assert.Equal("committed"u8.ToArray(), session.GetMetadata("job/crash"));
        // Nothing written after the checkpoint is recovered.
        Assert.Equal(0, session.Contains(ns, ItemKeyBatch.Positional("crash", "train", CrashRows.Range(checkpointed, 256)), mask));
    }

    [GeneratedRegex(@"^CHECKPOINT (\d+) \d+$")]
    private static partial Regex CheckpointLine();
}
