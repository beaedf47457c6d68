using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using TorchSharp;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>
/// The Gpu tier as a real device would exercise it, through the table's seams on this CPU host: one device budget for
/// all namespaces, device errors that fall back to FASTER, and no stale promotion. The <see cref="CudaFactAttribute"/>
/// tests run only where CUDA is usable.
/// </summary>
public sealed class GpuTierTests
{
    [Fact]
    public void FailingWrites_PutsAndGetsStillSucceed_AndRepeatedErrorsSwitchTheTableOff()
    {
        var logs = new TierTests.CollectingLoggerFactory();
        using var store = EmbeddingStore.Open(Options(null), logs);
        var device = new FlakyDevice();
        store.TableDevices = device.Wrap;
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        var rb = ns.RowBytes;
        using var session = store.NewSession();
        device.FailWrites = true;

        var rows = new byte[10 * rb];
        var mask = new byte[2];
        for (var batch = 0; batch < GpuTable.MaxConsecutiveErrors; batch++)
        {
            session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(batch * 10, 10)), Rows(rb, batch * 10, 10));
            Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(batch * 10, 10)), rows, mask));
            Assert.Equal(Rows(rb, batch * 10, 10), rows);
        }

        Assert.True(ns.GpuTableOff, "three failed inserts in a row switch the table off");
        Assert.Equal(GpuTable.MaxConsecutiveErrors, ns.GpuErrors);
        Assert.Equal(0, ns.GpuCorruptRows);
        Assert.Equal(0, ns.GpuReservedBytes); // the device memory went back to the budget
        Assert.Equal(0, store.GpuMemory.Reserved);
        Assert.Single(logs.Messages, m => m.Contains("switched off after 3 device errors", StringComparison.Ordinal));

        // Off: every read and write goes to FASTER, and nothing more reaches the device.
        var calls = device.Calls;
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(100, 10)), Rows(rb, 100, 10));
        Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(100, 10)), rows, mask));
        Assert.Equal(Rows(rb, 100, 10), rows);
        Assert.Equal(calls, device.Calls);
    }

    [Fact]
    public void FailingReads_AreMissesServedFromFaster_NotCorruption()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var device = new FlakyDevice();
        store.TableDevices = device.Wrap;
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        var rb = ns.RowBytes;
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 20)), Rows(rb, 0, 20));
        Assert.Equal(20, ns.GpuCount);

        device.FailReads = true;
        var rows = new byte[20 * rb];
        var mask = new byte[3];
        Assert.Equal(20, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 20)), rows, mask));
        Assert.Equal(Rows(rb, 0, 20), rows);
        Assert.Equal(0, ns.GpuHits);
        Assert.Equal(1, ns.GpuErrors);
        Assert.Equal(0, ns.GpuCorruptRows);

        // One good operation in between resets the run of errors: the table stays on.
        device.FailReads = false;
        Assert.Equal(20, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 20)), rows, mask));
        Assert.Equal(20, ns.GpuHits);
        device.FailReads = true;
        Assert.Equal(20, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 20)), rows, mask));
        Assert.Equal(Rows(rb, 0, 20), rows);
        Assert.False(ns.GpuTableOff);
    }

    [Fact]
    public void PartialInsert_NeverLeavesTheSlotMapAheadOfTheDevice()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var device = new FlakyDevice();
        store.TableDevices = device.Wrap;
        var ns = store.Register(Spec("gpu", Tier.Gpu)); // 1 MiB budget: 64 KiB segments of 42 rows
        var rb = ns.RowBytes;
        using var session = store.NewSession();
        var keys = ItemKeyBatch.Positional("ds", "s", Range(0, 200));
        session.Put(ns, keys, Rows(rb, 0, 200));

        // New values for the same keys: the first segment's rows reach the device, then the device fails.
        device.FailWritesAfter = 1;
        session.Put(ns, keys, Rows(rb, 0, 200, salt: 9));
        Assert.Equal(1, ns.GpuErrors);

        device.FailWritesAfter = -1;
        var rows = new byte[200 * rb];
        Assert.Equal(200, session.Get(ns, keys, rows, new byte[25]));
        Assert.Equal(Rows(rb, 0, 200, salt: 9), rows);
        Assert.Equal(0, ns.GpuCorruptRows); // no key kept a slot whose device row is not its value

        // Promoted again: the next read is all from the table, with the new values.
        var gpuHits = ns.GpuHits;
        Assert.Equal(200, session.Get(ns, keys, rows, new byte[25]));
        Assert.Equal(Rows(rb, 0, 200, salt: 9), rows);
        Assert.Equal(200, ns.GpuHits - gpuHits);
        Assert.Equal(0, ns.GpuCorruptRows);
    }

    [Fact]
    public void PutDuringARead_ThePromotionOfTheOlderValueIsSkipped()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu-wide", Tier.Gpu, dim: 65536)); // 256 KiB rows: 4 fit in the 1 MiB budget
        var rb = ns.RowBytes;
        Assert.Equal(4, ns.GpuCapacity);
        using var reader = store.NewSession();
        using var writer = store.NewSession();
        var k = ItemKeyBatch.Positional("ds", "s", [0]);
        writer.Put(ns, k, Rows(rb, 0, 1, salt: 1));
        writer.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(1, 4)), Rows(rb, 1, 4)); // evicts K from the table
        Assert.Equal(4, ns.GpuCount);

        // The read of K misses the table, reads v1 from FASTER; then v2 is put; then the read would promote v1.
        var row = new byte[rb];
        var mask = new byte[1];
        reader.BeforePromotion = () => Task.Run(() => writer.Put(ns, k, Rows(rb, 0, 1, salt: 2))).GetAwaiter().GetResult();
        Assert.Equal(1, reader.Get(ns, k, row, mask));
        Assert.Equal(Rows(rb, 0, 1, salt: 1), row); // what was stored when the read began
        reader.BeforePromotion = null;

        Assert.Equal(1, reader.Get(ns, k, row, mask));
        Assert.Equal(Rows(rb, 0, 1, salt: 2), row);
    }

    [Fact]
    public async Task PutsRacingGetsOfOneKey_LeaveTheLastValueServed()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu-wide", Tier.Gpu, dim: 65536));
        var rb = ns.RowBytes;
        const int puts = 300;
        var k = ItemKeyBatch.Positional("ds", "s", [0]);
        var others = ItemKeyBatch.Positional("ds", "s", Range(1, 4));
        using (var setup = store.NewSession())
            setup.Put(ns, others, Rows(rb, 1, 4));

        using var stop = new CancellationTokenSource();
        var readerTask = Task.Run(() =>
        {
            // Reads K, then the four others, which push K out of the 4-row table: every read of K promotes.
            using var session = store.NewSession();
            var row = new byte[4 * rb];
            var mask = new byte[1];
            var reads = 0;
            while (!stop.IsCancellationRequested)
            {
                session.Get(ns, k, row.AsSpan(0, rb), mask);
                session.Get(ns, others, row, mask);
                reads++;
            }

            return reads;
        });
        using (var session = store.NewSession())
        {
            for (var i = 1; i <= puts; i++)
                session.Put(ns, k, Rows(rb, 0, 1, salt: i));
        }

        stop.Cancel();
        Assert.True(await readerTask > 0);
        using var check = store.NewSession();
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var row = new byte[rb];
            Assert.Equal(1, check.Get(ns, k, row, new byte[1]));
            Assert.True(row.AsSpan().SequenceEqual(Rows(rb, 0, 1, salt: puts)), $"read {attempt} after the last put served an older value");
        }
    }

    [Fact]
    public async Task NamespacesDemandingMoreThanTheBudget_FallBackToTheCpuTier_AndEverythingIsServed()
    {
        var logs = new TierTests.CollectingLoggerFactory();
        using var store = EmbeddingStore.Open(Options(null), logs);
        // 256 KiB rows, 1 MiB budget: four namespaces reserve a row each, the fifth gets nothing.
        var handles = Enumerable.Range(0, 5).Select(i => store.Register(Spec($"gpu-{i}", Tier.Gpu, dim: 65536))).ToArray();
        Assert.All(handles[..4], h => Assert.Equal(Tier.Gpu, h.Tier));
        Assert.Equal(Tier.Cpu, handles[4].Tier);
        Assert.Equal(1, store.GpuTierFallbacks);
        Assert.Single(logs.Messages, m => m.Contains("gpu-4", StringComparison.Ordinal) && m.Contains("served from the Cpu tier", StringComparison.Ordinal));
        Assert.Equal(store.GpuMemory.Budget, store.GpuMemory.Reserved);
        Assert.Equal(store.GpuMemory.Reserved, handles.Sum(h => h.GpuReservedBytes));

        // Each Gpu namespace holds one row of the table and evicts; the fallen-back one reads FASTER. All are served.
        using var session = store.NewSession();
        foreach (var h in handles)
        {
            var rb = h.RowBytes;
            var keys = ItemKeyBatch.Positional("ds", "s", Range(0, 6));
            session.Put(h, keys, Rows(rb, 0, 6, salt: h.Spec.Encoder.Length));
            var rows = new byte[6 * rb];
            Assert.Equal(6, session.Get(h, keys, rows, new byte[1]));
            Assert.Equal(Rows(rb, 0, 6, salt: h.Spec.Encoder.Length), rows);
            Assert.True(h.GpuCount <= 1);
        }

        // A dropped namespace gives its device memory back.
        await store.DropAsync(handles[0].Fingerprint);
        Assert.Equal(store.GpuMemory.Budget - (256L << 10), store.GpuMemory.Reserved);
    }

    [Fact]
    public void DeviceReservation_GrowsWithUse_NotWithTheBudget()
    {
        var options = Options(null);
        options.GpuMemoryBytes = 8L << 30;
        using var store = EmbeddingStore.Open(options);
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        // One 64 MiB segment is reserved, with its host bookkeeping; not 8 GiB worth of slots (about 190 MB of it).
        Assert.Equal(64L << 20, ns.GpuReservedBytes + ((64L << 20) % ns.RowBytes));
        Assert.True(allocated < 8L << 20, $"registering allocated {allocated} bytes on the host");
        Assert.InRange(ns.GpuCapacity, (int)((8L << 30) / ns.RowBytes) - 1, (int)((8L << 30) / ns.RowBytes));

        using var session = store.NewSession();
        var perSegment = (int)((64L << 20) / ns.RowBytes);
        for (var first = 0; first < perSegment + 10; first += 1024)
        {
            var n = Math.Min(1024, perSegment + 10 - first);
            session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(first, n)), Rows(ns.RowBytes, first, n));
        }

        Assert.Equal(2L * perSegment * ns.RowBytes, ns.GpuReservedBytes); // a second segment once the first was full
        Assert.Equal(ns.GpuReservedBytes, store.GpuMemory.Reserved);
        Assert.Equal((long)(perSegment + 10) * ns.RowBytes, store.ListNamespaces().Single().GpuBytes);
    }

    [Fact]
    public void GpuDevice_MustNotBeNegative()
    {
        var options = Options(null);
        options.GpuDevice = -1;
        var e = Assert.Throws<ArgumentException>(() => EmbeddingStore.Open(options));
        Assert.Contains("GpuDevice must be >= 0 (was -1)", e.Message, StringComparison.Ordinal);
    }

    [CudaFact]
    public void OnDevice_RoundTripAndAByteFlippedByTensorOpsIsCaught()
    {
        using var store = EmbeddingStore.Open(Options(null));
        var ns = store.Register(Spec("gpu", Tier.Gpu));
        Assert.True(ns.OnDevice);
        var rb = ns.RowBytes;
        using var session = store.NewSession();
        session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), Rows(rb, 0, 10));
        var rows = new byte[10 * rb];
        var mask = new byte[2];
        Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), rows, mask));
        Assert.Equal(Rows(rb, 0, 10), rows);
        Assert.Equal(10, ns.GpuHits);

        var (table, row) = ns.State.Table!.RowOf(6);
        using (var cell = table[row, 100])
            cell.bitwise_xor_(torch.tensor((byte)1, device: table.device));
        var gpuHits = ns.GpuHits;
        Assert.Equal(10, session.Get(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 10)), rows, mask));
        Assert.Equal(Rows(rb, 0, 10), rows);
        Assert.Equal(1, ns.GpuCorruptRows);
        Assert.Equal(9, ns.GpuHits - gpuHits);
    }

    [CudaFact]
    public void OnDevice_RequireGpu_RefusesANamespaceTheBudgetCannotHold()
    {
        var options = Options(null);
        options.RequireGpu = true;
        using var store = EmbeddingStore.Open(options);
        for (var i = 0; i < 4; i++)
            store.Register(Spec($"gpu-{i}", Tier.Gpu, dim: 65536));
        var e = Assert.Throws<StoreOpenException>(() => store.Register(Spec("gpu-4", Tier.Gpu, dim: 65536)));
        Assert.Contains("RequireGpu", e.Message, StringComparison.Ordinal);
        Assert.Contains("GpuMemoryBytes", e.Message, StringComparison.Ordinal);
    }

#pragma warning disable CA2201 // TorchSharp reports CUDA errors as ExternalException: the injected ones are of that type
    /// <summary>The default device operations, failing on demand.</summary>
    private sealed class FlakyDevice
    {
        public volatile bool FailReads;
        public volatile bool FailWrites;

        /// <summary>Fail each Put's write after this many segment writes succeeded within it (-1: never).</summary>
        public int FailWritesAfter = -1;

        public int Calls;

        public TableDevice Wrap(torch.Device device) => new Flaky(this, device);

        private sealed class Flaky(FlakyDevice owner, torch.Device device) : TableDevice(device)
        {
            private int _writesInCall;

            public override void Read(torch.Tensor segment, torch.Tensor index, torch.Tensor destination)
            {
                Interlocked.Increment(ref owner.Calls);
                if (owner.FailReads)
                    throw new System.Runtime.InteropServices.ExternalException("CUDA error: an illegal memory access was encountered (injected)");
                base.Read(segment, index, destination);
            }

            public override void Write(torch.Tensor segment, torch.Tensor index, torch.Tensor source)
            {
                Interlocked.Increment(ref owner.Calls);
                if (owner.FailWrites)
                    throw new System.Runtime.InteropServices.ExternalException("CUDA error: out of memory (injected)");
                if (owner.FailWritesAfter >= 0 && _writesInCall++ >= owner.FailWritesAfter)
                {
                    _writesInCall = 0;
                    owner.FailWritesAfter = -1;
                    throw new System.Runtime.InteropServices.ExternalException("CUDA error: unspecified launch failure (injected)");
                }

                base.Write(segment, index, source);
            }
        }
    }
}

#pragma warning restore CA2201

/// <summary>A fact that needs a usable CUDA device; skipped with the reason elsewhere.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        bool available;
        try
        {
            available = torch.cuda.is_available();
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            available = false;
        }

        if (!available)
            Skip = "no CUDA device here (torch.cuda.is_available() is false): runs on a GPU host with the CUDA build (-p:TorchBackend=cuda)";
    }
}
