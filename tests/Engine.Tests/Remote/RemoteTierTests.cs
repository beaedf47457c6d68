using EmbedCache.ClusterSupport;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Remote;
using EmbedCache.Engine.Storage;
using EmbedCache.TestSupport;
using StackExchange.Redis;
using static EmbedCache.Engine.Tests.Remote.RemoteTestKit;
using static EmbedCache.Engine.Tests.Storage.StoreTestKit;

namespace EmbedCache.Engine.Tests.Remote;

/// <summary>
/// The remote tier on a real cluster of each engine (redis-server processes, Garnet in process): two stores with
/// SaveDirs of their own share rows, labels and manifests through it; a value corrupted on the cluster is counted and
/// never served.
/// </summary>
public sealed class RemoteTierTests(SharedClusters clusters) : IClassFixture<SharedClusters>
{
    public static TheoryData<string> Engines => ["redis", "garnet"];

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task RowsPutOnOneStore_AreReadByAnother_WhichKeepsThemLocally(string engine)
    {
        var cluster = await clusters.GetAsync(engine);
        var remote = RemoteFor(cluster, NewPrefix());
        using var dirA = new TempDirectory("remote-a");
        using var dirB = new TempDirectory("remote-b");
        using var a = EmbeddingStore.Open(WithRemote(Options(dirA.Path), remote));
        using var b = EmbeddingStore.Open(WithRemote(Options(dirB.Path), remote));
        var spec = Spec("enc", Tier.Cpu, dim: 64, dtype: EmbeddingDType.Float16);
        var nsA = a.Register(spec);
        var nsB = b.Register(spec);
        const int N = 1000;
        var keys = ItemKeyBatch.Positional("ds", "train", Range(0, N));
        var rows = Rows(nsA.RowBytes, 0, N);
        using (var session = a.NewSession())
            session.Put(nsA, keys, rows);
        Assert.True(await a.Remote!.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None), "A's writes reach the cluster");

        var read = new byte[rows.Length];
        var mask = new byte[MaskBytes(N)];
        using (var session = b.NewSession())
        {
            Assert.Equal(N, session.Get(nsB, keys, read, mask));
            Assert.Equal(rows, read);
            Assert.Equal(N, nsB.RemoteHits);
            Assert.Equal(N, nsB.Items); // filled into B's own FASTER store

            // Read again: served by B's local tier, the cluster not asked.
            Array.Clear(read);
            Assert.Equal(N, session.Get(nsB, keys, read, mask));
            Assert.Equal(rows, read);
            Assert.Equal(N, nsB.RemoteHits);
        }

        var stats = b.Remote!.Stats();
        Assert.Equal((N, 0L, 0L, 0L), (stats.Hits, stats.Misses, stats.Corrupt, stats.Errors));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task LabelsIndexKeysAndManifests_WrittenOnOneStore_AreReadOnAnother(string engine)
    {
        var cluster = await clusters.GetAsync(engine);
        var remote = RemoteFor(cluster, NewPrefix());
        using var dirA = new TempDirectory("remote-a");
        using var dirB = new TempDirectory("remote-b");
        using var a = EmbeddingStore.Open(WithRemote(Options(dirA.Path), remote));
        using var b = EmbeddingStore.Open(WithRemote(Options(dirB.Path), remote));
        using var poolA = new SessionPool(a);
        using var poolB = new SessionPool(b);
        var indices = Range(0, 300);
        var groups = indices.Select(i => (long)(i % 7)).ToArray();
        var custom = ItemKeyBatch.Custom(indices.Select(i => (ReadOnlyMemory<byte>)System.Text.Encoding.UTF8.GetBytes($"item-{i}")).ToList());
        Assert.True(Fingerprint.TryParse("0123456789abcdef0123456789abcdef", out var fingerprint));
        using (var lease = poolA.Rent())
        {
            DatasetLabels.PutGroups(lease.Session, "ds", "train", indices, groups);
            DatasetLabels.PutIndexKeys(lease.Session, "ds", "train", indices, custom);
        }

        var manifestsA = new SplitManifests(poolA, a.Remote);
        manifestsA.Record("ds", "train", 300, 0, DatasetLabelKind.Group, DatasetKeyScheme.Custom);
        Assert.True(await a.Remote!.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None));
        Assert.True(manifestsA.MarkComplete("ds", "train", [fingerprint]), "the cluster takes the manifest");

        var manifestB = new SplitManifests(poolB, b.Remote).Get("ds", "train");
        Assert.NotNull(manifestB);
        Assert.True(manifestB.LabelsComplete);
        Assert.Contains(fingerprint, manifestB.CompleteFor);
        Assert.Equal((300L, DatasetKeyScheme.Custom), (manifestB.Items, manifestB.KeyScheme));

        using var leaseB = poolB.Rent();
        var readGroups = new long[300];
        Assert.Equal(300, DatasetLabels.GetGroups(leaseB.Session, "ds", "train", indices, readGroups, new byte[MaskBytes(300)]));
        Assert.Equal(groups, readGroups);
        var readKeys = DatasetLabels.GetIndexKeys(leaseB.Session, "ds", "train", indices, new byte[MaskBytes(300)]);
        Assert.NotNull(readKeys);
        Assert.Equal(Enumerable.Range(0, 300).Select(custom.ItemKey), Enumerable.Range(0, 300).Select(readKeys.ItemKey));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task AValueCorruptedOnTheCluster_IsCountedAndTreatedAsAMiss_NeverServed(string engine)
    {
        var cluster = await clusters.GetAsync(engine);
        var prefix = NewPrefix();
        var remote = RemoteFor(cluster, prefix);
        using var dirA = new TempDirectory("remote-a");
        using var dirB = new TempDirectory("remote-b");
        using var a = EmbeddingStore.Open(WithRemote(Options(dirA.Path), remote));
        using var b = EmbeddingStore.Open(WithRemote(Options(dirB.Path), remote));
        var spec = Spec("enc", Tier.Cpu, dim: 32);
        var nsA = a.Register(spec);
        var nsB = b.Register(spec);
        const int N = 20;
        var keys = ItemKeyBatch.Positional("ds", "train", Range(0, N));
        var rows = Rows(nsA.RowBytes, 0, N);
        using (var session = a.NewSession())
            session.Put(nsA, keys, rows);
        Assert.True(await a.Remote!.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None));

        // Flip one byte of one row's value on the cluster, by hand.
        using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString);
        var db = redis.GetDatabase();
        var stored = await KeysAsync(redis, $"{{{prefix}:e*");
        Assert.Equal(N, stored.Count);
        var victim = stored[0];
        var value = (byte[])(await db.StringGetAsync(victim))!;
        value[^1] ^= 0x40;
        await db.StringSetAsync(victim, value);

        var read = new byte[rows.Length];
        var mask = new byte[MaskBytes(N)];
        using (var session = b.NewSession())
            Assert.Equal(N - 1, session.Get(nsB, keys, read, mask));
        var missing = Enumerable.Range(0, N).Single(i => !IsSet(mask, i));
        Assert.All(read.AsSpan(missing * nsB.RowBytes, nsB.RowBytes).ToArray(), x => Assert.Equal(0, x));
        for (var i = 0; i < N; i++)
        {
            if (i != missing)
                Assert.Equal(rows.AsSpan(i * nsB.RowBytes, nsB.RowBytes).ToArray(), read.AsSpan(i * nsB.RowBytes, nsB.RowBytes).ToArray());
        }

        Assert.Equal(1, nsB.RemoteCorruptRows);
        Assert.Equal(1, b.Remote!.Stats().Corrupt);

        // Written again (as a re-encode would), the good value replaces the bad one on the cluster.
        using (var session = b.NewSession())
            session.Put(nsB, keys.Select([missing]), rows.AsSpan(missing * nsB.RowBytes, nsB.RowBytes));
        Assert.True(await b.Remote.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None));
        using var c = EmbeddingStore.Open(WithRemote(Options(null), remote));
        var nsC = c.Register(spec);
        using (var session = c.NewSession())
            Assert.Equal(N, session.Get(nsC, keys, read, mask));
        Assert.Equal(rows, read);
    }

    [Fact]
    public async Task AnUnreachableCluster_IsSkippedByTheBreaker_AndQueuedWritesReachItWhenItIsBack()
    {
        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0);
        var remote = RemoteFor(cluster, NewPrefix());
        remote.OperationTimeoutMs = 300;
        remote.BreakerFailures = 2;
        remote.BreakerOpenMs = 300;
        using var dir = new TempDirectory("remote-down");
        using var store = EmbeddingStore.Open(WithRemote(Options(dir.Path), remote));
        var ns = store.Register(Spec("enc", Tier.Cpu, dim: 32));
        using var session = store.NewSession();
        var rb = ns.RowBytes;

        await cluster.StopAllAsync();
        var absent = ItemKeyBatch.Positional("ds", "train", Range(1000, 10));
        var read = new byte[10 * rb];
        var mask = new byte[MaskBytes(10)];
        for (var i = 0; i < 3; i++)
            Assert.Equal(0, session.Get(ns, absent, read, mask)); // misses, not errors
        var down = store.Remote!.Stats();
        Assert.True(down.BreakerOpened >= 1, $"two failed reads open the breaker (errors {down.Errors}, opened {down.BreakerOpened})");
        Assert.True(down.Errors >= 2, $"the failures are counted ({down.Errors})");

        // Local serving goes on; writes wait in the queue.
        var keys = ItemKeyBatch.Positional("ds", "train", Range(0, 100));
        var rows = Rows(rb, 0, 100);
        session.Put(ns, keys, rows);
        var all = new byte[rows.Length];
        Assert.Equal(100, session.Get(ns, keys, all, new byte[MaskBytes(100)]));
        Assert.Equal(rows, all);
        Assert.True(store.Remote.Stats().WritesQueued >= 100, "the writes wait for the cluster");
        Assert.False(await store.Remote.FlushAsync(TimeSpan.FromMilliseconds(500), CancellationToken.None), "nothing can be written while it is down");

        await cluster.RestartAllAsync();
        Assert.True(await store.Remote.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None), "the queued writes reach the cluster once it is back");
        using var other = EmbeddingStore.Open(WithRemote(Options(null), remote));
        var nsOther = other.Register(Spec("enc", Tier.Cpu, dim: 32));
        using var otherSession = other.NewSession();
        Array.Clear(all);
        Assert.Equal(100, otherSession.Get(nsOther, keys, all, new byte[MaskBytes(100)]));
        Assert.Equal(rows, all);
    }

    [Fact]
    public async Task ACredentialedCluster_IsReadAndWritten_WithTheConfiguredUser()
    {
        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0, user: "embedcache", password: "remote-tier-secret");
        var remote = RemoteFor(cluster, NewPrefix());
        remote.User = "embedcache";
        remote.Password = "remote-tier-secret";
        using var a = EmbeddingStore.Open(WithRemote(Options(null), remote));
        using var b = EmbeddingStore.Open(WithRemote(Options(null), remote));
        var nsA = a.Register(Spec("enc", Tier.Cpu, dim: 16));
        var nsB = b.Register(Spec("enc", Tier.Cpu, dim: 16));
        var keys = ItemKeyBatch.Positional("ds", "train", Range(0, 50));
        var rows = Rows(nsA.RowBytes, 0, 50);
        using (var session = a.NewSession())
            session.Put(nsA, keys, rows);
        Assert.True(await a.Remote!.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None));
        var read = new byte[rows.Length];
        using (var session = b.NewSession())
            Assert.Equal(50, session.Get(nsB, keys, read, new byte[MaskBytes(50)]));
        Assert.Equal(rows, read);

        // The wrong password: every call fails, and the breaker keeps the store serving locally.
        remote.Password = "not-the-password";
        remote.ConnectTimeoutMs = 1000;
        using var wrong = EmbeddingStore.Open(WithRemote(Options(null), remote));
        var nsW = wrong.Register(Spec("enc", Tier.Cpu, dim: 16));
        using (var session = wrong.NewSession())
            Assert.Equal(0, session.Get(nsW, keys, read, new byte[MaskBytes(50)]));
        Assert.Equal(0, nsW.RemoteHits);
    }
}
