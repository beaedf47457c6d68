using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>Checkpoints must finish while readers and writers never pause (the service's normal state).</summary>
public sealed class CheckpointUnderTrafficTests
{
    [Theory]
    [InlineData(Tier.Cpu)]
    [InlineData(Tier.Disk)]
    public async Task Checkpoints_CompleteWhilePooledSessionsReadAndWriteWithoutPause(Tier tier)
    {
        using var dir = new TempDirectory("store");
        using var store = EmbeddingStore.Open(Options(dir.Path));
        var ns = store.Register(Spec("enc", tier, dim: 32));
        const int items = 2048, batch = 256;
        using (var session = store.NewSession())
            session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, items)), Rows(ns.RowBytes, 0, items));

        using var pool = new SessionPool(store);
        using var stop = new CancellationTokenSource();
        var traffic = new List<Task>();
        for (var t = 0; t < 6; t++)
        {
            var writer = t % 3 == 0;
            traffic.Add(Task.Run(async () =>
            {
                var rows = new byte[batch * ns.RowBytes];
                var mask = new byte[MaskBytes(batch)];
                var round = 0L;
                while (!stop.IsCancellationRequested)
                {
                    var first = (round++ * batch) % items;
                    var keys = ItemKeyBatch.Positional("ds", "s", Range(first, batch));
                    using (var lease = pool.Rent())
                    {
                        if (writer)
                            lease.Session.Put(ns, keys, Rows(ns.RowBytes, first, batch));
                        else
                            Assert.Equal(batch, lease.Session.Get(ns, keys, rows, mask));
                    }

                    await Task.Yield(); // the next batch runs on whichever pool thread is free, as gRPC calls do
                }
            }));
        }

        try
        {
            // A stuck checkpoint never finishes; a slow one (CI runs every test assembly at once on 2 cores, and six
            // busy loops here) can take tens of seconds: the bound tells the two apart without failing the slow one.
            for (var i = 0; i < 20; i++)
            {
                var checkpoint = store.CheckpointAsync();
                var finished = await Task.WhenAny(checkpoint, Task.Delay(TimeSpan.FromSeconds(120)));
                Assert.True(finished == checkpoint, $"checkpoint {i + 1} did not finish in 120 s under traffic");
                await checkpoint;
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(traffic);
        }
    }
}

/// <summary>The checkpoint the manifest names must outlive newer FASTER checkpoints until the store commits one.</summary>
public sealed class CommittedCheckpointTests
{
    [Fact]
    public async Task ANewerFasterCheckpoint_NotYetCommitted_LeavesTheCommittedOneRecoverable()
    {
        using var dir = new TempDirectory("store");
        var spec = Spec("enc", Tier.Cpu, dim: 16);
        byte[] rows;
        using (var store = EmbeddingStore.Open(Options(dir.Path)))
        {
            var ns = store.Register(spec);
            rows = Rows(ns.RowBytes, 0, 64);
            using (var session = store.NewSession())
                session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(0, 64)), rows);
            await store.CheckpointAsync();
            var committed = Manifest.Read(dir.Path)!.Tokens[EmbeddingStore.CpuName];

            // FASTER finishes a newer checkpoint the manifest does not name yet (a crash now would recover `committed`).
            using (var session = store.NewSession())
                session.Put(ns, ItemKeyBatch.Positional("ds", "s", Range(64, 64)), Rows(ns.RowBytes, 64, 64));
            var (ok, newer) = await store.CpuStore.Kv.TakeFullCheckpointAsync(FASTER.core.CheckpointType.FoldOver);

            Assert.True(ok);
            Assert.NotEqual(committed, newer);
            Assert.True(Directory.Exists(Path.Combine(store.CpuStore.CheckpointDirectory, "cpr-checkpoints", committed.ToString())),
                "FASTER removed the checkpoint the manifest still names");
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(store.CpuStore.CheckpointDirectory, "cpr-checkpoints", committed.ToString())));
        }
    }
}

/// <summary>Dropping one namespace compacts the FASTER store it shares with others; readers of those must not notice.</summary>
public sealed class DropUnderReadsTests
{
    [Fact]
    public async Task DroppingAnotherNamespace_NeverHidesAStoredRow_FromConcurrentReaders()
    {
        using var dir = new TempDirectory("store");
        using var store = EmbeddingStore.Open(Options(dir.Path));
        var kept = store.Register(Spec("kept", Tier.Cpu, dim: 16));
        const int items = 4096, batch = 512;
        using (var session = store.NewSession())
            session.Put(kept, ItemKeyBatch.Positional("ds", "s", Range(0, items)), Rows(kept.RowBytes, 0, items));

        using var stop = new CancellationTokenSource();
        var misses = 0L;
        var readers = Enumerable.Range(0, 2).Select(r => Task.Run(() =>
        {
            using var session = store.NewSession();
            var rows = new byte[batch * kept.RowBytes];
            var mask = new byte[MaskBytes(batch)];
            for (var round = r; !stop.IsCancellationRequested; round++)
            {
                var first = (round * batch) % items;
                var found = session.Get(kept, ItemKeyBatch.Positional("ds", "s", Range(first, batch)), rows, mask);
                Interlocked.Add(ref misses, batch - found);
            }
        })).ToArray();

        try
        {
            for (var cycle = 0; cycle < 40; cycle++)
            {
                var spec = Spec($"dropped-{cycle}", Tier.Cpu, dim: 16);
                var dropped = store.Register(spec);
                using (var session = store.NewSession())
                    session.Put(dropped, ItemKeyBatch.Positional("other", "s", Range(0, 2048)), Rows(dropped.RowBytes, 0, 2048, salt: cycle));
                await store.DropAsync(spec.Fingerprint);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(readers);
        }

        Assert.Equal(0, Interlocked.Read(ref misses));
    }
}
