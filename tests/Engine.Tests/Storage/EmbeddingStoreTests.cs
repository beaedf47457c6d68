using System.Text;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>The store's read/write paths per tier and key scheme, with and without a SaveDir.</summary>
public sealed class EmbeddingStoreTests
{
    [Theory]
    [InlineData(Tier.Cpu, KeyScheme.Positional)]
    [InlineData(Tier.Cpu, KeyScheme.Custom)]
    [InlineData(Tier.Cpu, KeyScheme.Content)]
    [InlineData(Tier.Disk, KeyScheme.Positional)]
    [InlineData(Tier.Disk, KeyScheme.Custom)]
    [InlineData(Tier.Disk, KeyScheme.Content)]
    [InlineData(Tier.Gpu, KeyScheme.Positional)]
    [InlineData(Tier.Gpu, KeyScheme.Custom)]
    [InlineData(Tier.Gpu, KeyScheme.Content)]
    public void Get_AfterPut_ReturnsRowsBitIdenticalAndZeroesMissingRows(Tier tier, KeyScheme scheme)
    {
        using var dir = new TempDirectory("store");
        using var store = EmbeddingStore.Open(Options(dir.Path));
        var ns = store.Register(Spec("enc", tier));
        Assert.Equal(tier, ns.Tier);
        using var session = store.NewSession();

        // Put 300 items, then read 256 keys of which every 4th was never written.
        var rb = ns.RowBytes;
        session.Put(ns, Keys(scheme, 0, 300), Rows(rb, 0, 300));
        var readKeys = new long[256];
        for (var i = 0; i < 256; i++)
            readKeys[i] = i % 4 == 3 ? 10_000 + i : i;

        var destination = new byte[256 * rb];
        Array.Fill(destination, (byte)0xEE);
        var mask = new byte[MaskBytes(256)];
        var found = session.Get(ns, Keys(scheme, readKeys), destination, mask);

        Assert.Equal(192, found);
        for (var i = 0; i < 256; i++)
        {
            var row = destination.AsSpan(i * rb, rb);
            if (readKeys[i] >= 10_000)
            {
                Assert.False(IsSet(mask, i), $"missing key {readKeys[i]} reported found");
                Assert.True(row.IndexOfAnyExcept((byte)0) < 0, $"row {i} of a missing key is not zeroed");
            }
            else
            {
                Assert.True(IsSet(mask, i), $"stored key {readKeys[i]} not found");
                Assert.True(row.SequenceEqual(Rows(rb, readKeys[i], 1)), $"row {i} differs from what was stored");
            }
        }

        Assert.Equal(300, ns.Items);
        Assert.Equal(192, ns.Hits);
        Assert.Equal(64, ns.Misses);
    }

    [Theory]
    [InlineData(EmbeddingDType.Float32)]
    [InlineData(EmbeddingDType.Float16)]
    [InlineData(EmbeddingDType.BFloat16)]
    public void Put_InStoredDType_RoundTripsThroughConversions(EmbeddingDType dtype)
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("dtype", Tier.Cpu, dim: 64, dtype: dtype));
        Assert.Equal(dtype.RowBytes(64), ns.RowBytes);
        var floats = new float[64];
        for (var i = 0; i < 64; i++)
            floats[i] = (i - 32) / 8f;
        var row = new byte[ns.RowBytes];
        EmbeddingDTypes.FromFloat32(floats, dtype, row);
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("d", "s", [7]), row);

        var back = new byte[ns.RowBytes];
        var mask = new byte[1];
        Assert.Equal(1, session.Get(ns, ItemKeyBatch.Positional("d", "s", [7]), back, mask));
        var restored = new float[64];
        EmbeddingDTypes.ToFloat32(back, dtype, restored);
        Assert.Equal(floats, restored); // multiples of 1/8 are exact in all three types
    }

    [Fact]
    public void Namespaces_WithTheSameItemKeys_AreIsolatedByFingerprint()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var a = store.Register(Spec("a", Tier.Cpu));
        var b = store.Register(Spec("b", Tier.Cpu));
        using var session = store.NewSession();
        var keys = ItemKeyBatch.Positional("ds", "train", Range(0, 10));
        session.Put(a, keys, Rows(a.RowBytes, 0, 10, salt: 1));
        session.Put(b, keys, Rows(b.RowBytes, 0, 10, salt: 2));

        var rows = new byte[10 * a.RowBytes];
        var mask = new byte[2];
        session.Get(a, keys, rows, mask);
        Assert.Equal(Rows(a.RowBytes, 0, 10, salt: 1), rows);
        session.Get(b, keys, rows, mask);
        Assert.Equal(Rows(b.RowBytes, 0, 10, salt: 2), rows);
        Assert.Equal(0, session.Contains(store.Register(Spec("c", Tier.Cpu)), keys, mask));
    }

    [Fact]
    public async Task Put_SameKeyAgain_KeepsOneItemAndReturnsTheLatestValue()
    {
        using var dir = new TempDirectory("store");
        using var store = EmbeddingStore.Open(Options(dir.Path));
        var ns = store.Register(Spec("enc", Tier.Cpu));
        using var session = store.NewSession();
        var keys = ItemKeyBatch.Custom([Encoding.UTF8.GetBytes("file-a.txt"), Encoding.UTF8.GetBytes("file-b.txt")]);
        session.Put(ns, keys, Rows(ns.RowBytes, 0, 2, salt: 1));
        await store.CheckpointAsync(); // makes the records read-only: the next put copies
        session.Put(ns, keys, Rows(ns.RowBytes, 0, 2, salt: 2));
        session.Put(ns, keys, Rows(ns.RowBytes, 0, 2, salt: 3)); // in place

        var rows = new byte[2 * ns.RowBytes];
        Assert.Equal(2, session.Get(ns, keys, rows, new byte[1]));
        Assert.Equal(Rows(ns.RowBytes, 0, 2, salt: 3), rows);
        Assert.Equal(2, ns.Items);
    }

    [Fact]
    public void Contains_ReportsOnlyStoredKeys()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("enc", Tier.Disk));
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "", Range(0, 50)), Rows(ns.RowBytes, 0, 50));
        var mask = new byte[MaskBytes(100)];
        Assert.Equal(25, session.Contains(ns, ItemKeyBatch.Positional("ds", "", Range(25, 100)), mask));
        for (var i = 0; i < 100; i++)
            Assert.Equal(i < 25, IsSet(mask, i));
    }

    [Fact]
    public void ItemKeyBatch_RejectsBadKeysNamingTheIndex()
    {
        var tooLong = new byte[ItemKeyBatch.MaxCustomKeyBytes + 1];
        var e = Assert.Throws<ArgumentException>(() => ItemKeyBatch.Custom([new byte[] { 1 }, tooLong]));
        Assert.Contains("custom key 1", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ItemKeyBatch.Custom([ReadOnlyMemory<byte>.Empty]));
        Assert.Contains("custom key 0", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ItemKeyBatch.Content(new byte[17]));
        Assert.Throws<ArgumentException>(() => ItemKeyBatch.Positional("", "train", [1]));
        Assert.Equal(3, ItemKeyBatch.Content(new byte[48]).Count);
    }

    [Fact]
    public void ContentHash_IsStableXxHash128()
    {
        var features = "the same feature bytes"u8;
        Span<byte> a = stackalloc byte[16];
        ContentHash.Compute(features, a);
        Assert.Equal(System.IO.Hashing.XxHash128.Hash(features), a.ToArray());
        Assert.Equal(System.IO.Hashing.XxHash128.HashToUInt128(features), ContentHash.Compute(features));
    }

    [Fact]
    public void Get_WithWrongBufferSizes_Throws()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("enc", Tier.Cpu));
        using var session = store.NewSession();
        var keys = ItemKeyBatch.Positional("ds", "s", Range(0, 9));
        Assert.Throws<ArgumentException>(() => session.Get(ns, keys, new byte[8 * ns.RowBytes], new byte[2]));
        Assert.Throws<ArgumentException>(() => session.Get(ns, keys, new byte[9 * ns.RowBytes], new byte[1]));
        Assert.Throws<ArgumentException>(() => session.Put(ns, keys, new byte[8 * ns.RowBytes]));
    }

    [Fact]
    public void Register_IsIdempotentPerFingerprintAndResolvesAuto()
    {
        using var store = EmbeddingStore.Open(Options(null, defaultTier: Tier.Auto));
        var first = store.Register(Spec("enc", Tier.Auto));
        var again = store.Register(Spec("enc", Tier.Auto));
        Assert.Same(first, again);
        Assert.Equal(store.CudaAvailable ? Tier.Gpu : Tier.Cpu, first.Tier);
        var spec = Spec("enc", Tier.Auto);
        var e = Assert.Throws<NamespaceConfigException>(() => store.Register(spec with { Dim = 128 }));
        Assert.Contains("is stored as dim 384 Float32; registered as dim 128 Float32", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reopen_AfterDispose_RecoversEmbeddingsLabelsMetadataAndNamespaces()
    {
        using var dir = new TempDirectory("store");
        var spec = Spec("enc", Tier.Cpu);
        var disk = Spec("big", Tier.Disk);
        long checkpointVersion;
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var ns = store.Register(spec);
            var dns = store.Register(disk);
            using var session = store.NewSession();
            session.Put(ns, ItemKeyBatch.Positional("ds", "train", Range(0, 500)), Rows(ns.RowBytes, 0, 500));
            session.Put(dns, ItemKeyBatch.Positional("ds", "train", Range(0, 500)), Rows(dns.RowBytes, 0, 500, salt: 9));
            DatasetLabels.PutGroups(session, "ds", "train", Range(0, 500), Enumerable.Range(0, 500).Select(i => (long)(i % 7)).ToArray());
            session.PutMetadata("job/1", "{\"done\":500}"u8);
            var first = await store.CheckpointAsync();
            // Written after the explicit checkpoint: the checkpoint on dispose must cover it.
            session.Put(ns, ItemKeyBatch.Positional("ds", "train", Range(500, 100)), Rows(ns.RowBytes, 500, 100));
            checkpointVersion = first.Version;
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            Assert.Equal(checkpointVersion + 1, store.LastCheckpoint!.Version);
            var listed = store.ListNamespaces();
            Assert.Equal(2, listed.Count);
            Assert.All(listed, n => Assert.False(n.Registered));
            Assert.Equal(600, listed.Single(n => n.Fingerprint == spec.Fingerprint).Items);
            Assert.Equal(500, listed.Single(n => n.Fingerprint == disk.Fingerprint).Items);

            var ns = store.Register(spec);
            var dns = store.Register(disk);
            Assert.Equal(600, ns.Items);
            using var session = store.NewSession();
            var rows = new byte[600 * ns.RowBytes];
            var mask = new byte[MaskBytes(600)];
            Assert.Equal(600, session.Get(ns, ItemKeyBatch.Positional("ds", "train", Range(0, 600)), rows, mask));
            Assert.Equal(Rows(ns.RowBytes, 0, 600), rows);
            Assert.Equal(500, session.Get(dns, ItemKeyBatch.Positional("ds", "train", Range(0, 500)), rows.AsSpan(0, 500 * dns.RowBytes), mask));
            Assert.True(rows.AsSpan(0, 500 * dns.RowBytes).SequenceEqual(Rows(dns.RowBytes, 0, 500, salt: 9)));

            var groups = new long[500];
            Assert.Equal(500, DatasetLabels.GetGroups(session, "ds", "train", Range(0, 500), groups, mask));
            Assert.Equal(Enumerable.Range(0, 500).Select(i => (long)(i % 7)), groups);
            Assert.Equal("{\"done\":500}"u8.ToArray(), session.GetMetadata("job/1"));
        }
    }

    [Fact]
    public async Task MemoryOnly_KeepsDataWhileOpenAndRemovesItsFilesOnDispose()
    {
        string root;
        using (var store = EmbeddingStore.Open(Options(null)))
        {
            Assert.False(store.Persistent);
            root = store.Root;
            Assert.True(Directory.Exists(root));
            var ns = store.Register(Spec("enc", Tier.Disk));
            using var session = store.NewSession();
            session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 2000)), Rows(ns.RowBytes, 0, 2000));
            var checkpoint = await store.CheckpointAsync();
            Assert.False(checkpoint.Persistent);
            var rows = new byte[2000 * ns.RowBytes];
            Assert.Equal(2000, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 2000)), rows, new byte[250]));
            Assert.Equal(Rows(ns.RowBytes, 0, 2000), rows);
        }

        Assert.False(Directory.Exists(root), "the memory-only store left its spill directory behind");
    }

    [Fact]
    public async Task Checkpoints_HaveIncreasingVersionsAndAreAnnounced()
    {
        using var dir = new TempDirectory("store");
        using var store = EmbeddingStore.Open(Options(dir.Path));
        var seen = new List<long>();
        store.CheckpointCompleted += (_, c) => seen.Add(c.Version);
        Assert.Null(store.LastCheckpoint);
        var a = await store.CheckpointAsync();
        var b = await store.CheckpointAsync();
        Assert.Equal(a.Version + 1, b.Version);
        Assert.True(b.Persistent);
        Assert.Equal(b, store.LastCheckpoint);
        Assert.Equal([a.Version, b.Version], seen);
        Assert.True(File.Exists(Path.Combine(dir.Path, "manifest.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "embedcache-store.json")));
    }

    [Fact]
    public async Task PeriodicCheckpoints_RunWithoutBeingAsked()
    {
        using var dir = new TempDirectory("store");
        var options = Options(dir.Path);
        options.CheckpointInterval = TimeSpan.FromMilliseconds(50);
        using var store = EmbeddingStore.Open(options);
        await Wait.UntilAsync(() => store.LastCheckpoint is { Version: >= 2 }, "two periodic checkpoints");
    }

    [Fact]
    public async Task ConcurrentWritersDuringCheckpoints_KeepExactItemCounts()
    {
        using var dir = new TempDirectory("store");
        var spec = Spec("enc", Tier.Cpu, dim: 32);
        const int writers = 3, batches = 40, batch = 50;
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var ns = store.Register(spec);
            var tasks = new List<Task>();
            for (var w = 0; w < writers; w++)
            {
                var writer = w;
                tasks.Add(Task.Run(() =>
                {
                    using var session = store.NewSession();
                    for (var b = 0; b < batches; b++)
                    {
                        var first = ((writer * batches) + b) * batch;
                        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(first, batch)), Rows(ns.RowBytes, first, batch));
                    }
                }));
            }

            var checkpoints = Task.Run(async () =>
            {
                while (!tasks.TrueForAll(t => t.IsCompleted))
                    await store.CheckpointAsync();
            });
            await Task.WhenAll(tasks);
            await checkpoints;
            Assert.Equal(writers * batches * batch, ns.Items);
        }

        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var ns = store.Register(spec);
            Assert.Equal(writers * batches * batch, ns.Items);
            using var session = store.NewSession();
            var mask = new byte[MaskBytes(writers * batches * batch)];
            Assert.Equal(writers * batches * batch, session.Contains(ns, ItemKeyBatch.Positional("ds", "s", Range(0, writers * batches * batch)), mask));
        }
    }

    [Fact]
    public void Session_UsedAfterStoreDispose_Throws()
    {
        var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("enc", Tier.Cpu));
        var session = store.NewSession();
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => session.Contains(ns, ItemKeyBatch.Positional("d", "s", [1]), new byte[1]));
        session.Dispose();
    }

    private static ItemKeyBatch Keys(KeyScheme scheme, long first, int count)
    {
        var items = new long[count];
        for (var i = 0; i < count; i++)
            items[i] = first + i;
        return Keys(scheme, items);
    }

    /// <summary>The same logical items under each scheme.</summary>
    private static ItemKeyBatch Keys(KeyScheme scheme, long[] items)
    {
        switch (scheme)
        {
            case KeyScheme.Positional:
                var indices = new ulong[items.Length];
                for (var i = 0; i < items.Length; i++)
                    indices[i] = (ulong)items[i];
                return ItemKeyBatch.Positional("dataset", "train", indices);
            case KeyScheme.Custom:
                var keys = new ReadOnlyMemory<byte>[items.Length];
                for (var i = 0; i < items.Length; i++)
                    keys[i] = Encoding.UTF8.GetBytes($"images/{items[i]:D6}.png");
                return ItemKeyBatch.Custom(keys);
            default:
                var hashes = new byte[items.Length * 16];
                for (var i = 0; i < items.Length; i++)
                    ContentHash.Compute(Encoding.UTF8.GetBytes($"feature text {items[i]}"), hashes.AsSpan(i * 16, 16));
                return ItemKeyBatch.Content(hashes);
        }
    }
}
