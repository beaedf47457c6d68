using EmbedCache.ClusterSupport;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Hosting;
using EmbedCache.TestSupport;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace EmbedCache.CacheService.Tests.ScaleOut;

/// <summary>
/// Two EmbedCache services sharing a real cluster (redis-server processes, or Garnet in process): node B serves a
/// split node A prewarmed without encoding; a distributed prewarm survives a node killed mid-job; a primary killed
/// during lookups never yields a wrong value; a value corrupted on the cluster is counted, re-encoded, never served.
/// </summary>
public sealed class ScaleOutTests(ITestOutputHelper output)
{
    private const string Mlp = "random-mlp";
    private const string MiniLm = "random-minilm";

    public static TheoryData<string> Engines => ["redis", "garnet"];

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task PrewarmOnA_StreamOnB_EncodesNothing_AndGivesTheSameEmbeddingsAndLabels(string engine)
    {
        await using IClusterFixture cluster = engine == "redis"
            ? await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0)
            : await GarnetCluster.StartAsync(primaries: 3, replicasPerPrimary: 0);
        var remote = RemoteArgs(cluster, NewPrefix());
        await using var a = await InProcessService.StartAsync(null, [.. remote, "--EmbedCache:Store:Remote:NodeName=node-a"]);
        await using var b = await InProcessService.StartAsync(null, [.. remote, "--EmbedCache:Store:Remote:NodeName=node-b"]);
        var ca = new Contract(a.Channel);
        var cb = new Contract(b.Channel);

        var prewarm = new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { Mlp }, BatchSize = 128, Follow = true };
        var done = (await Contract.PrewarmToEndAsync(ca.Admin, prewarm))[^1];
        Assert.Equal(JobState.Completed, done.State);
        Assert.DoesNotContain("not marked complete on the cluster", done.Message, StringComparison.Ordinal);

        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { Mlp }, BatchSize = 200, Shuffle = true, Seed = 3, Epoch = 1, IncludeLabels = true };
        var fromA = await StreamAsync(ca, request);
        var fromB = await StreamAsync(cb, request);
        Assert.Equal(fromA.Count, fromB.Count);
        for (var i = 0; i < fromA.Count; i++)
            Assert.Equal(fromA[i], fromB[i]); // indices, embeddings and labels, byte for byte

        var stats = await cb.Admin.GetStatsAsync(new GetStatsRequest());
        var mlp = stats.Namespaces.Single(n => n.Encoder == Mlp);
        Assert.Equal(0ul, mlp.Encoded);
        Assert.Equal(1438ul, mlp.RemoteHits);
        Assert.Equal(1438ul, mlp.Items); // kept in B's own tiers
        Assert.True(stats.Remote.Enabled && stats.Remote.Connected, "B reports its remote tier");
        Assert.Equal((0ul, 0ul), (stats.Remote.Corrupt, stats.Remote.Errors));

        // A second epoch on B is served by its local tiers: the cluster is not asked again.
        _ = await StreamAsync(cb, request);
        Assert.Equal(1438ul, (await cb.Admin.GetStatsAsync(new GetStatsRequest())).Namespaces.Single(n => n.Encoder == Mlp).RemoteHits);
    }

    [Fact]
    public async Task DistributedPrewarm_ANodeKilledMidJob_LosesNothing_AndNothingItCommittedIsEncodedAgain()
    {
        const int Items = 320, ShardItems = 32;
        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0);
        using var data = new TempDirectory("scaleout-data");
        WriteTextDataset(data.Combine("sentences"), Items);
        string[] common =
        [
            .. RemoteArgs(cluster, NewPrefix()), $"--EmbedCache:DataRoot={data.Path}",
            $"--EmbedCache:Store:Remote:ShardItems={ShardItems}", "--EmbedCache:Store:Remote:LeaseMs=3000",
        ];
        await using var a = await InProcessService.StartAsync(null, [.. common, "--EmbedCache:Store:Remote:NodeName=node-a"]);
        using var bDir = new TempDirectory("scaleout-b");
        using var b = ChildProcess.Start(RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService"),
        [
            .. common, "--EmbedCache:Store:Remote:NodeName=node-b", "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0",
            $"--EmbedCache:SaveDir={bDir.Path}",
        ]);
        await b.WaitForListeningAsync("node B to serve");
        var ca = new Contract(a.Channel);

        string id;
        using (var call = ca.Admin.Prewarm(new PrewarmRequest { Dataset = "sentences", Encoders = { MiniLm }, BatchSize = 16, Distributed = true, Follow = false }))
        {
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None), "the prewarm answers with its job");
            id = call.ResponseStream.Current.JobId;
        }

        // Kill B while it holds a shard, once it has finished at least one.
        NodeShare? atKill = null;
        await Wait.UntilAsync(async () =>
        {
            var job = await JobAsync(ca, id);
            Assert.NotEqual(JobState.Completed, job.State);
            atKill = job.Cluster?.Nodes.SingleOrDefault(n => n.Node == "node-b");
            return atKill is { ShardsDone: >= 1, ShardsLeased: >= 1 };
        }, "node B to finish a shard and take another", TimeSpan.FromMinutes(3));
        b.Kill();
        await b.WaitForExitAsync("node B to die");
        output.WriteLine($"killed node B with {atKill!.ShardsDone} shards done and {atKill.ShardsLeased} leased");

        PrewarmProgress final = null!;
        await Wait.UntilAsync(async () => (final = await JobAsync(ca, id)).State is JobState.Completed or JobState.Failed,
            "the job to complete on node A alone", TimeSpan.FromMinutes(3));
        output.WriteLine($"{final.Message}; {string.Join("; ", final.Cluster.Nodes.Select(n => $"{n.Node}: {n.ShardsDone} done, {n.Encoded} encoded, {n.Skipped} skipped"))}");
        Assert.Equal(JobState.Completed, final.State);
        Assert.Equal(Items / ShardItems, (int)final.Cluster.ShardsDone);
        Assert.Equal((ulong)Items, final.Committed);
        var nodeB = final.Cluster.Nodes.Single(n => n.Node == "node-b");
        Assert.Equal(atKill.ShardsDone, nodeB.ShardsDone); // B's finished shards stay B's: none was run again

        // Nothing B committed was encoded again: A encoded at most what B had not put on the cluster.
        var encodedOnA = (await ca.Admin.GetStatsAsync(new GetStatsRequest())).Namespaces.Single(n => n.Encoder == MiniLm).Encoded;
        Assert.True(encodedOnA <= (ulong)(Items - (int)atKill.ShardsDone * ShardItems),
            $"node A encoded {encodedOnA} of {Items}, though node B had committed {atKill.ShardsDone} shards of {ShardItems}");

        // Nothing lost: every embedding and label, as a service on its own computes them.
        await using var reference = await InProcessService.StartAsync(null, $"--EmbedCache:DataRoot={data.Path}");
        var cr = new Contract(reference.Channel);
        Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(cr.Admin, new PrewarmRequest { Dataset = "sentences", Encoders = { MiniLm }, Follow = true }))[^1].State);
        var request = new StreamDatasetRequest { Dataset = "sentences", Split = "train", Encoders = { MiniLm }, BatchSize = 64, IncludeLabels = true };
        Assert.Equal(await StreamAsync(cr, request), await StreamAsync(ca, request));
    }

    [Fact]
    public async Task APrimaryKilledDuringLookups_NeverGivesAWrongValue_NorAnError()
    {
        const int N = 600;
        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 2000);
        var remote = RemoteArgs(cluster, NewPrefix());
        await using var a = await InProcessService.StartAsync(null, [.. remote]);
        await using var b = await InProcessService.StartAsync(null, [.. remote, "--EmbedCache:Store:Remote:OperationTimeoutMs=300"]);
        var reference = await FillAsync(a, N);
        await cluster.WaitForReplicationAsync();

        var cb = new Contract(b.Channel);
        var random = new Random(17);
        long found = 0, missed = 0, lookups = 0;
        async Task LookupRoundAsync()
        {
            var keys = Enumerable.Range(0, 50).Select(_ => random.Next(N)).ToArray();
            var response = await cb.Cache.LookupAsync(Contract.Custom(Mlp, [.. keys.Select(Key)]));
            var result = response.Results[0];
            var rows = result.Embeddings.ToByteArray();
            var rb = rows.Length / keys.Length;
            for (var j = 0; j < keys.Length; j++)
            {
                if (!Contract.IsFound(result.Found, j))
                {
                    missed++;
                    continue;
                }

                found++;
                Assert.Equal(reference[keys[j]], rows.AsSpan(j * rb, rb).ToArray());
            }

            lookups++;
        }

        using var stop = new CancellationTokenSource();
        var during = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                await LookupRoundAsync();
        });
        await Wait.UntilAsync(() => Interlocked.Read(ref lookups) >= 5, "lookups on node B before the kill");
        var killed = await cluster.KillPrimaryOfAsync("any-key");
        output.WriteLine($"killed primary {killed} after {lookups} lookups");
        await stop.CancelAsync();
        await during; // any wrong value or RPC error fails here

        // After the failover every key is found again, from B's tiers or the promoted replica.
        await Wait.UntilAsync(async () =>
        {
            var all = await cb.Cache.LookupAsync(Contract.Custom(Mlp, [.. Enumerable.Range(0, N).Select(Key)]));
            var rows = all.Results[0].Embeddings.ToByteArray();
            var rb = rows.Length / N;
            for (var i = 0; i < N; i++)
            {
                if (Contract.IsFound(all.Results[0].Found, i))
                    Assert.Equal(reference[i], rows.AsSpan(i * rb, rb).ToArray());
            }

            return Enumerable.Range(0, N).All(i => Contract.IsFound(all.Results[0].Found, i));
        }, "every key to be served after the failover", TimeSpan.FromMinutes(1));
        output.WriteLine($"{lookups} lookup rounds during the failover: {found} rows found, {missed} missed (the documented fallback)");
    }

    [Fact]
    public async Task AValueCorruptedOnTheCluster_IsCounted_ReEncoded_AndNeverServed()
    {
        const int N = 50;
        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0);
        var prefix = NewPrefix();
        var remote = RemoteArgs(cluster, prefix);
        await using var a = await InProcessService.StartAsync(null, [.. remote]);
        await using var b = await InProcessService.StartAsync(null, [.. remote]);
        var reference = await FillAsync(a, N);

        byte[] corruptRow;
        using (var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString))
        {
            var keys = new List<RedisKey>();
            foreach (var endpoint in redis.GetEndPoints())
            {
                await foreach (var key in redis.GetServer(endpoint).KeysAsync(pattern: $"{{{prefix}:e*"))
                    keys.Add(key);
            }

            Assert.Equal(N, keys.Count);
            var db = redis.GetDatabase();
            var value = (byte[])(await db.StringGetAsync(keys[0]))!;
            value[value.Length / 2] ^= 0x01;
            await db.StringSetAsync(keys[0], value);
            corruptRow = value[4..]; // the value is checksum ‖ row
        }

        var request = Contract.Custom(Mlp, [.. Enumerable.Range(0, N).Select(Key)]);
        request.Features = Contract.Vectors(64, [.. Enumerable.Range(0, N).Select(Item)]);
        var result = (await new Contract(b.Channel).Cache.LookupAsync(request)).Results[0];
        Assert.Equal(1u, result.Encoded); // the corrupt one, and only it
        var rows = result.Embeddings.ToByteArray();
        var rb = rows.Length / N;
        // Every row served from the cluster is A's, byte for byte. The re-encoded one is encoded alone, not in A's
        // batch of 50, so its float32 values may differ from A's in the last bits (the matrix kernels block by batch).
        var reencoded = Enumerable.Range(0, N).Where(i => !rows.AsSpan(i * rb, rb).SequenceEqual(reference[i])).ToList();
        Assert.True(reencoded.Count <= 1, $"{reencoded.Count} rows differ from A's");
        foreach (var i in reencoded)
        {
            var served = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(rows.AsSpan(i * rb, rb)).ToArray();
            var expected = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(reference[i]).ToArray();
            Assert.All(served.Zip(expected), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5f * Math.Max(1, Math.Abs(p.Second)), $"{p.First} vs {p.Second}"));
        }

        for (var i = 0; i < N; i++)
            Assert.False(rows.AsSpan(i * rb, rb).SequenceEqual(corruptRow), $"row {i} is the corrupted value");
        var stats = await new Contract(b.Channel).Admin.GetStatsAsync(new GetStatsRequest());
        Assert.Equal(1ul, stats.Remote.Corrupt);
        Assert.Equal(1ul, stats.Namespaces.Single(n => n.Encoder == Mlp).RemoteCorrupt);
    }

    private static string[] RemoteArgs(IClusterFixture cluster, string prefix) =>
    [
        $"--EmbedCache:Store:Remote:Endpoints:0={string.Join(',', cluster.Endpoints)}",
        $"--EmbedCache:Store:Remote:KeyPrefix={prefix}",
    ];

    private static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];

    private static string Key(int i) => $"item-{i}";

    private static float[] Item(int i) => Contract.Vector(64, i + 7000);

    /// <summary>Fills <paramref name="n"/> items through lookups with features on a service and waits until they are on the cluster; returns their rows.</summary>
    private static async Task<byte[][]> FillAsync(InProcessService service, int n)
    {
        var request = Contract.Custom(Mlp, [.. Enumerable.Range(0, n).Select(Key)]);
        request.Features = Contract.Vectors(64, [.. Enumerable.Range(0, n).Select(Item)]);
        var result = (await new Contract(service.Channel).Cache.LookupAsync(request)).Results[0];
        Assert.Equal((uint)n, result.Encoded);
        var rows = result.Embeddings.ToByteArray();
        var rb = rows.Length / n;
        var remote = service.Services.GetRequiredService<EngineHost>().Engine.Store.Remote!;
        Assert.True(await remote.FlushAsync(TimeSpan.FromSeconds(60), CancellationToken.None), "the fill reaches the cluster");
        return [.. Enumerable.Range(0, n).Select(i => rows.AsSpan(i * rb, rb).ToArray())];
    }

    private static async Task<PrewarmProgress> JobAsync(Contract contract, string id) =>
        (await contract.Admin.ListJobsAsync(new ListJobsRequest())).Jobs.Single(j => j.JobId == id);

    /// <summary>Every batch of a stream, as bytes (indices, rows, labels): two streams equal byte for byte compare equal.</summary>
    private static async Task<List<string>> StreamAsync(Contract contract, StreamDatasetRequest request)
    {
        using var call = contract.Cache.StreamDataset(request);
        var batches = new List<string>();
        await foreach (var batch in call.ResponseStream.ReadAllAsync())
        {
            batch.Results[0].Encoded = 0;
            batches.Add(Convert.ToBase64String(Google.Protobuf.MessageExtensions.ToByteArray(batch)));
        }

        return batches;
    }

    /// <summary>A text dataset of <paramref name="items"/> sentences of ~40 words, labelled by group, in one split.</summary>
    private static void WriteTextDataset(string dir, int items)
    {
        Directory.CreateDirectory(dir);
        string[] words = ["cache", "frozen", "encoder", "embedding", "cluster", "shard", "lease", "node", "replica", "primary", "batch", "epoch", "trainer", "vector", "slot"];
        var lines = Enumerable.Range(0, items).Select(i =>
        {
            var text = string.Join(' ', Enumerable.Range(0, 40).Select(w => words[(i * 7 + w * 3 + w * w) % words.Length]));
            return System.Text.Json.JsonSerializer.Serialize(new { text = $"sentence {i}: {text}", label = i % 5 });
        });
        File.WriteAllLines(Path.Combine(dir, "train.jsonl"), lines);
        File.WriteAllText(Path.Combine(dir, "dataset.json"), """
            {
              "format": "jsonl",
              "splits": { "train": "train.jsonl" },
              "features": { "kind": "text", "field": "text" },
              "labels": { "kind": "group", "field": "label" },
              "key": { "scheme": "positional" }
            }
            """);
    }
}
