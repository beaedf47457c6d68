using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using Microsoft.Extensions.Logging;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>What makes the tiers differ: the Disk tier's reach beyond memory, the Gpu table's capacity and eviction.</summary>
public sealed class TierTests
{
    [Fact]
    public void RowsLargerThanTheTiersPages_AreAConfigurationError_NamingTheBudget()
    {
        using var dir = new TempDirectory("rows-too-large");
        var options = Options(dir.Path);
        options.DiskMemoryBytes = 1L << 20; // 64 KiB pages: records up to 32 KiB
        using var store = EmbeddingStore.Open(options);
        var e = Assert.Throws<NamespaceConfigException>(() => store.Register(Spec("huge", Tier.Disk, dim: 65536)));
        Assert.Equal(ErrorKind.FailedPrecondition, e.Kind);
        Assert.Contains("rows of 262144 bytes do not fit the Disk tier's pages", e.Message, StringComparison.Ordinal);
        Assert.Contains("raise its memory budget", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiskTier_HoldsTenTimesItsMemoryBudgetAndReadsAllOfItBack()
    {
        using var dir = new TempDirectory("disk10x");
        var options = Options(dir.Path);
        options.DiskMemoryBytes = 1L << 20;
        var spec = Spec("enc", Tier.Disk);
        var rb = spec.RowBytes;
        var count = (int)(10 * options.DiskMemoryBytes / rb) + 256; // > 10× the budget in raw embedding bytes
        const int batch = 256;

        using (var store = EmbeddingStore.Open(options))
        {
            var ns = store.Register(spec);
            using var session = store.NewSession();
            for (var first = 0; first < count; first += batch)
            {
                var n = Math.Min(batch, count - first);
                session.Put(ns, ItemKeyBatch.Positional("big", "train", Range(first, n)), Rows(rb, first, n));
            }

            Assert.Equal(count, ns.Items);
            Assert.True((long)count * rb >= 10 * options.DiskMemoryBytes);
            var info = Assert.Single(store.ListNamespaces());
            Assert.True(info.MemoryBytes <= options.DiskMemoryBytes, $"{info.MemoryBytes} bytes of the namespace in memory");
            Assert.True(store.DiskStore.InMemoryFraction < 0.1, $"{store.DiskStore.InMemoryFraction:P0} of the Disk log is in memory");
            ReadAllBack(session, ns, count);
            await store.CheckpointAsync();
        }

        using (var store = EmbeddingStore.Open(options))
        {
            var ns = store.Register(spec);
            using var session = store.NewSession();
            ReadAllBack(session, ns, count);
        }
    }

    private static void ReadAllBack(StoreSession session, NamespaceHandle ns, int count)
    {
        var rb = ns.RowBytes;
        var rows = new byte[256 * rb];
        var mask = new byte[32];
        for (var first = 0; first < count; first += 256)
        {
            var n = Math.Min(256, count - first);
            var found = session.Get(ns, ItemKeyBatch.Positional("big", "train", Range(first, n)), rows, mask);
            Assert.Equal(n, found);
            Assert.True(rows.AsSpan(0, n * rb).SequenceEqual(Rows(rb, first, n)), $"batch at {first} differs");
        }
    }

    [Fact]
    public void GpuTier_OverCapacity_EvictsPromotesMissesAndStillServesEverything()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        var rb = ns.RowBytes;
        var capacity = ns.GpuCapacity;
        Assert.Equal((int)((1L << 20) / rb), capacity);
        Assert.Equal(store.CudaAvailable, ns.OnDevice);
        var total = capacity * 3;
        using var session = store.NewSession();
        for (var first = 0; first < total; first += 256)
        {
            var n = Math.Min(256, total - first);
            session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(first, n)), Rows(rb, first, n));
        }

        Assert.Equal(capacity, ns.GpuCount); // full, and never beyond
        var rows = new byte[256 * rb];
        var mask = new byte[32];

        // The oldest items were evicted from the table: served from FASTER, then promoted.
        var hitsBefore = ns.GpuHits;
        Assert.Equal(256, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 256)), rows, mask));
        Assert.Equal(Rows(rb, 0, 256), rows);
        Assert.True(ns.GpuHits - hitsBefore < 256, "evicted rows cannot all have come from the table");

        // Read again: now all from the device table.
        hitsBefore = ns.GpuHits;
        Assert.Equal(256, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 256)), rows, mask));
        Assert.Equal(Rows(rb, 0, 256), rows);
        Assert.Equal(256, ns.GpuHits - hitsBefore);
        Assert.Equal(capacity, ns.GpuCount);

        // Everything is still served, partly from the table and partly from FASTER.
        for (var first = 0; first < total; first += 256)
        {
            var n = Math.Min(256, total - first);
            Assert.Equal(n, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(first, n)), rows, mask));
            Assert.True(rows.AsSpan(0, n * rb).SequenceEqual(Rows(rb, first, n)), $"batch at {first} differs");
        }

        // A put of an existing key updates the table too: no stale row is served.
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", [5]), Rows(rb, 5, 1, salt: 77));
        Assert.Equal(1, session.Get(ns, ItemKeyBatch.Positional("ds", "s", [5]), rows.AsSpan(0, rb), mask));
        Assert.True(rows.AsSpan(0, rb).SequenceEqual(Rows(rb, 5, 1, salt: 77)));
    }

    [Fact]
    public void GpuTier_BatchLargerThanTheTable_IsServedCorrectly()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu-small", Tier.Gpu, dim: 4096)); // 16 KiB rows: 64 fit in 1 MiB
        var rb = ns.RowBytes;
        Assert.Equal(64, ns.GpuCapacity);
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 200)), Rows(rb, 0, 200));
        var rows = new byte[200 * rb];
        Assert.Equal(200, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 200)), rows, new byte[25]));
        Assert.Equal(Rows(rb, 0, 200), rows);
        Assert.Equal(64, ns.GpuCount);
    }

    [Fact]
    public void GpuTier_RowChangedInTheTable_IsDetectedDroppedAndServedIntactFromFaster()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        var rb = ns.RowBytes;
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), Rows(rb, 0, 10));
        if (ns.OnDevice)
            return; // the table is device memory here; the host fallback is what this test can reach into

        // Flip a byte of item 6's row inside the tensor table (item i went to slot i: the table was empty).
        var (table, row) = ns.State.Table!.RowOf(6);
        table.bytes[(row * rb) + 100] ^= 0x01;

        var rows = new byte[10 * rb];
        var mask = new byte[2];
        var gpuHits = ns.GpuHits;
        Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), rows, mask));
        Assert.Equal(Rows(rb, 0, 10), rows); // the bad table row was not returned: item 6 came from FASTER
        Assert.Equal(1, ns.GpuCorruptRows);
        Assert.Equal(9, ns.GpuHits - gpuHits);

        // Promoted again from FASTER: the next read is all from the table, intact.
        gpuHits = ns.GpuHits;
        Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), rows, mask));
        Assert.Equal(Rows(rb, 0, 10), rows);
        Assert.Equal(10, ns.GpuHits - gpuHits);
        Assert.Equal(1, ns.GpuCorruptRows);
    }

    [Fact]
    public void GpuTier_WithoutCuda_FallsBackWithOneWarningAndRequireGpuRefusesToOpen()
    {
        var logs = new CollectingLoggerFactory();
        bool cuda;
        using (var store = EmbeddingStore.Open(Options(null), logs))
        {
            cuda = store.CudaAvailable;
            var a = store.Register(Spec("gpu-a", Tier.Gpu));
            var b = store.Register(Spec("gpu-b", Tier.Gpu));
            Assert.Equal(cuda, a.OnDevice);
            Assert.Equal(cuda, b.OnDevice);
        }

        var options = Options(null);
        options.RequireGpu = true;
        if (cuda)
        {
            // On a CUDA host there is nothing to fall back from: no warning, and RequireGpu opens.
            Assert.DoesNotContain(logs.Messages, m => m.Contains("CUDA is not available", StringComparison.Ordinal));
            using var store = EmbeddingStore.Open(options);
            return;
        }

        Assert.Single(logs.Messages, m => m.Contains("CUDA is not available", StringComparison.Ordinal));
        var e = Assert.Throws<StoreOpenException>(() => EmbeddingStore.Open(options));
        Assert.Contains("RequireGpu", e.Message, StringComparison.Ordinal);
        Assert.Contains("CUDA is not available", e.Message, StringComparison.Ordinal);
    }

    internal sealed class CollectingLoggerFactory : ILoggerFactory
    {
        public List<string> Messages { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Collector(this);

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        private sealed class Collector(CollectingLoggerFactory owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (owner.Messages)
                    owner.Messages.Add(formatter(state, exception));
            }
        }
    }
}
