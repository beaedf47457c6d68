using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>Checksums on the real log files, drop and reclaim, and the SaveDir's identity checks.</summary>
public sealed class StoreIntegrityTests
{
    [Theory]
    [InlineData(Tier.Cpu)]
    [InlineData(Tier.Disk)]
    [InlineData(Tier.Gpu)]
    public void FlippedByteInLogFile_ReadReportsCorruptionAndReturnsNoData(Tier tier)
    {
        using var dir = new TempDirectory("corrupt");
        var spec = Spec("enc", tier);
        var rb = spec.RowBytes;
        WriteAndClose(dir.Path, spec, 100);

        var victim = Rows(rb, 42, 1);
        var (file, offset) = FindInFiles(dir.Path, victim);
        FlipByte(file, offset + 700);

        using var store = EmbeddingStore.Open(Options(dir.Path));
        var ns = store.Register(spec);
        using var session = store.NewSession();
        var rows = new byte[100 * rb];
        var mask = new byte[MaskBytes(100)];
        var e = Assert.Throws<StoreCorruptionException>(() =>
            session.Get(ns, ItemKeyBatch.Positional("ds", "train", Range(0, 100)), rows, mask));
        Assert.Equal(42, e.ItemIndex);
        Assert.Equal(1, e.CorruptCount);
        Assert.Contains("(ds, train, 42)", e.Message, StringComparison.Ordinal);
        Assert.Contains(spec.Fingerprint.ToString(), e.Message, StringComparison.Ordinal);
        Assert.False(IsSet(mask, 42));
        Assert.True(rows.AsSpan(42 * rb, rb).IndexOfAnyExcept((byte)0) < 0, "the corrupt row was returned");
        Assert.True(rows.AsSpan(41 * rb, rb).SequenceEqual(Rows(rb, 41, 1)), "intact neighbours must still be read");
    }

    [Fact]
    public void ValuesSwappedBetweenKeysInLogFile_BothReadsReportCorruption()
    {
        using var dir = new TempDirectory("swap");
        var spec = Spec("enc", Tier.Cpu);
        var rb = spec.RowBytes;
        WriteAndClose(dir.Path, spec, 20);

        // Swap [checksum][row] of items 3 and 4: each value is intact but now sits under the other key.
        var (fileA, a) = FindInFiles(dir.Path, Rows(rb, 3, 1));
        var (fileB, b) = FindInFiles(dir.Path, Rows(rb, 4, 1));
        Assert.Equal(fileA, fileB);
        var bytes = File.ReadAllBytes(fileA);
        var valueA = bytes.AsSpan(a - Checksums.Size, rb + Checksums.Size).ToArray();
        var valueB = bytes.AsSpan(b - Checksums.Size, rb + Checksums.Size).ToArray();
        valueB.CopyTo(bytes, a - Checksums.Size);
        valueA.CopyTo(bytes, b - Checksums.Size);
        File.WriteAllBytes(fileA, bytes);

        using var store = EmbeddingStore.Open(Options(dir.Path));
        var ns = store.Register(spec);
        using var session = store.NewSession();
        var e = Assert.Throws<StoreCorruptionException>(() =>
            session.Get(ns, ItemKeyBatch.Positional("ds", "train", Range(0, 20)), new byte[20 * rb], new byte[3]));
        Assert.Equal(2, e.CorruptCount);
        Assert.Equal(3, e.ItemIndex);
    }

    [Fact]
    public async Task Drop_RemovesTheNamespaceReclaimsLogSpaceAndKeepsOthers()
    {
        using var dir = new TempDirectory("drop");
        var dropped = Spec("old-model", Tier.Cpu);
        var kept = Spec("new-model", Tier.Cpu);
        const int n = 3000; // ~4.8 MB per namespace: several 1 MiB log segments
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var a = store.Register(dropped);
            var b = store.Register(kept);
            using (var session = store.NewSession())
            {
                for (var first = 0; first < n; first += 500)
                {
                    session.Put(a, ItemKeyBatch.Positional("ds", "s", Range(first, 500)), Rows(a.RowBytes, first, 500, salt: 1));
                    session.Put(b, ItemKeyBatch.Positional("ds", "s", Range(first, 500)), Rows(b.RowBytes, first, 500, salt: 2));
                }
            }

            await store.CheckpointAsync();
            var logBefore = DirectorySize(Path.Combine(dir.Path, "cpu", "log"));

            var result = await store.DropAsync(dropped.Fingerprint);

            Assert.True(result.Found);
            Assert.Equal(n, result.Items);
            Assert.True(result.BytesReclaimed >= (long)n * dropped.RowBytes, $"reclaimed {result.BytesReclaimed} bytes");
            Assert.False(a.IsLive);
            var logAfter = DirectorySize(Path.Combine(dir.Path, "cpu", "log"));
            Assert.True(logAfter < logBefore, $"log files did not shrink ({logBefore} → {logAfter})");
            Assert.DoesNotContain(store.ListNamespaces(), i => i.Fingerprint == dropped.Fingerprint);
            using var s2 = store.NewSession();
            Assert.Throws<NamespaceDroppedException>(() => s2.Contains(a, ItemKeyBatch.Positional("ds", "s", [0]), new byte[1]));
            Assert.False((await store.DropAsync(dropped.Fingerprint)).Found);
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var listed = Assert.Single(store.ListNamespaces());
            Assert.Equal(kept.Fingerprint, listed.Fingerprint);
            var a = store.Register(dropped);
            var b = store.Register(kept);
            Assert.Equal(0, a.Items);
            using var session = store.NewSession();
            var mask = new byte[MaskBytes(n)];
            Assert.Equal(0, session.Contains(a, ItemKeyBatch.Positional("ds", "s", Range(0, n)), mask));
            var rows = new byte[n * b.RowBytes];
            Assert.Equal(n, session.Get(b, ItemKeyBatch.Positional("ds", "s", Range(0, n)), rows, mask));
            Assert.Equal(Rows(b.RowBytes, 0, n, salt: 2), rows);
        }
    }

    [Fact]
    public void Open_DirectoryThatIsNotAStore_FailsWithOneClearError()
    {
        using var dir = new TempDirectory("foreign");
        File.WriteAllText(dir.Combine("thesis.tex"), "precious");
        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(Options(dir.Path)));
        Assert.Contains("not an EmbedCache store", e.Message, StringComparison.Ordinal);
        Assert.Equal("precious", File.ReadAllText(dir.Combine("thesis.tex")));
    }

    [Fact]
    public void Open_StoreOfAnotherFormatVersion_FailsNamingBothVersions()
    {
        using var dir = new TempDirectory("format");
        File.WriteAllText(dir.Combine("embedcache-store.json"), "{\"magic\":\"embedcache-store\",\"format\":99}");
        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(Options(dir.Path)));
        Assert.Contains("format 99", e.Message, StringComparison.Ordinal);
        Assert.Contains("format 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_CorruptManifest_FailsOrMovesAsideWhenConfigured()
    {
        using var parent = new TempDirectory("moveaside");
        var root = parent.Combine("store");
        var spec = Spec("enc", Tier.Cpu);
        WriteAndClose(root, spec, 10);
        File.WriteAllText(Path.Combine(root, "manifest.json"), "{ not json");

        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(Options(root)));
        Assert.Contains("corrupt", e.Message, StringComparison.Ordinal);
        Assert.Contains("manifest.json", e.Message, StringComparison.Ordinal);

        var options = Options(root);
        options.MoveAsideIncompatibleSaveDir = true;
        using (var store = EmbeddingStore.Open(options))
            Assert.Empty(store.ListNamespaces());
        var moved = Assert.Single(Directory.GetDirectories(parent.Path, "store.moved-*"));
        Assert.Equal("{ not json", File.ReadAllText(Path.Combine(moved, "manifest.json")));
    }

    [Fact]
    public void Open_CheckpointFilesMissing_FailsAsCorrupt()
    {
        using var dir = new TempDirectory("missing");
        WriteAndClose(dir.Path, Spec("enc", Tier.Cpu), 10);
        Directory.Delete(Path.Combine(dir.Path, "cpu", "checkpoints"), recursive: true);
        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(Options(dir.Path)));
        Assert.Contains("cannot be recovered", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_SaveDirInUse_FailsWithoutMovingIt()
    {
        using var dir = new TempDirectory("inuse");
        using var first = EmbeddingStore.Open(Options(dir.Path));
        var options = Options(dir.Path);
        options.MoveAsideIncompatibleSaveDir = true;
        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(options));
        Assert.Contains("in use", e.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(dir.Combine("embedcache-store.json")));
    }

    [Fact]
    public void Validate_NamesEachBadKey()
    {
        var options = new StoreOptions { CpuMemoryBytes = -1, DiskMemoryBytes = 0, CheckpointInterval = TimeSpan.FromSeconds(-1), DefaultTier = (Tier)9 };
        var errors = options.Validate().ToList();
        Assert.Contains("CpuMemoryBytes must be >= 1048576 (was -1)", errors);
        Assert.Contains(errors, e => e.StartsWith("DiskMemoryBytes", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("CheckpointInterval", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("DefaultTier", StringComparison.Ordinal));
        Assert.Empty(new StoreOptions().Validate());
        Assert.Throws<ArgumentException>(() => EmbeddingStore.Open(options));
    }

    private static void WriteAndClose(string root, NamespaceSpec spec, int count)
    {
        using var store = EmbeddingStore.Open(Options(root));
        var ns = store.Register(spec);
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "train", Range(0, count)), Rows(ns.RowBytes, 0, count));
    }

    /// <summary>The file under <paramref name="root"/> holding <paramref name="needle"/>, and where.</summary>
    private static (string File, int Offset) FindInFiles(string root, byte[] needle)
    {
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            var offset = File.ReadAllBytes(file).AsSpan().IndexOf(needle);
            if (offset >= 0)
                return (file, offset);
        }

        throw new InvalidOperationException("the row was not found in any file of the store");
    }

    private static void FlipByte(string file, long offset)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x10));
    }

    private static long DirectorySize(string dir)
    {
        long total = 0;
        foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
            total += new FileInfo(file).Length;
        return total;
    }
}
