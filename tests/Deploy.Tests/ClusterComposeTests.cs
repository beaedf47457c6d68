using System.Globalization;
using System.Net;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Google.Protobuf;
using Until = EmbedCache.TestSupport.Wait;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// docs/SCALE-OUT-DEPLOY.md: <c>docker compose --profile cluster up</c>, the Redis Cluster (3 primaries, 3 replicas),
/// its one-shot init and the two EmbedCache nodes (not the trainers: the same calls, made here through the client
/// library). A split prewarmed on node A streams from node B with B encoding nothing, bit for bit what A streams.
/// Its own project name, free ports for all sixteen ports, and <c>down -v</c> at the end.
/// </summary>
[Collection(DeployCollection.Name)]
public sealed class ClusterComposeTests(DeployImages images)
{
    private const string Encoder = "random-mlp";

    [DockerFact]
    public async Task ClusterProfile_SplitPrewarmedOnNodeA_StreamsFromNodeBWithNothingEncoded()
    {
        Assert.NotNull(images);
        var (aGrpc, aHttp, bGrpc, bHttp) = (Compose.FreePort(), Compose.FreePort(), Compose.FreePort(), Compose.FreePort());
        var environment = new Dictionary<string, string>
        {
            ["EMBEDCACHE_A_GRPC_PORT"] = Text(aGrpc),
            ["EMBEDCACHE_A_HTTP_PORT"] = Text(aHttp),
            ["EMBEDCACHE_B_GRPC_PORT"] = Text(bGrpc),
            ["EMBEDCACHE_B_HTTP_PORT"] = Text(bHttp),
        };
        for (var i = 1; i <= 6; i++)
        {
            environment[$"EMBEDCACHE_REDIS_PORT_{i}"] = Text(Compose.FreePort());
            environment[$"EMBEDCACHE_REDIS_BUS_PORT_{i}"] = Text(Compose.FreePort());
        }

        var compose = await Compose.CreateAsync(environment);
        string[] up = ["--profile", "cluster", "up", "-d", "embedcache-a", "embedcache-b"];
        try
        {
            // Compose starts the nodes only after redis-cluster-init exited 0 (service_completed_successfully).
            var first = await compose.RunAsync(up, TimeSpan.FromMinutes(5));
            Assert.True(first.ExitCode == 0, first + await LogsAsync(compose));
            var init = await compose.RunAsync(["--profile", "cluster", "logs", "--no-color", "redis-cluster-init"]);
            Assert.Contains("creating the cluster: 6 nodes, 1 replica(s) per primary", init.Output, StringComparison.Ordinal);
            Assert.Contains("cluster ok", init.Output, StringComparison.Ordinal);

            await HealthyAsync(aHttp, "node A");
            await HealthyAsync(bHttp, "node B");
            using var a = new EmbedCacheClient(new Uri($"http://127.0.0.1:{aGrpc}"));
            using var b = new EmbedCacheClient(new Uri($"http://127.0.0.1:{bGrpc}"));

            // The job completes only once its rows, labels and manifests reached the cluster (or says it did not).
            var prewarm = await LastAsync(a.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Encoders = { Encoder }, Follow = true }));
            Assert.True(prewarm.State == JobState.Completed, prewarm.ToString());
            Assert.Equal(prewarm.Total, prewarm.Encoded);
            Assert.DoesNotContain("not marked complete on the cluster", prewarm.Message, StringComparison.Ordinal);

            var fromA = await ReadSplitAsync(a);
            var fromB = await ReadSplitAsync(b);
            Assert.True(fromA.Indices.Count > 0 && (ulong)fromA.Indices.Count == fromA.Total, $"node A streamed {fromA.Indices.Count} of {fromA.Total} items");
            Assert.Equal(fromA.Indices, fromB.Indices);
            Assert.Equal(fromA.Groups, fromB.Groups);
            Assert.Equal((fromA.Dim, fromA.DType), (fromB.Dim, fromB.DType));
            Assert.True(fromA.Rows.SequenceEqual(fromB.Rows), "node B streamed other embedding bytes than node A");
            Assert.Equal(0, fromB.Encoded);

            // A wrote everything behind to the cluster; B encoded nothing, and its rows came from the cluster.
            var statsA = await a.GetStatsAsync();
            Assert.True(statsA.Remote is { Enabled: true, Connected: true, Dropped: 0 } && statsA.Remote.Written > 0, $"node A's remote tier: {statsA.Remote}");
            var statsB = await b.GetStatsAsync();
            var stats = statsB.Namespaces.Single(n => n.Encoder == Encoder);
            Assert.True(stats.Encoded == 0, $"node B encoded {stats.Encoded} items of {Encoder}: {stats}");
            Assert.True(stats.Hits > 0, $"node B counted no hits for {Encoder}: {stats}");
            Assert.True(stats.RemoteHits > 0 && stats.RemoteCorrupt == 0, $"node B's rows of {Encoder} did not come from the cluster: {stats}");
            Assert.True(statsB.Remote is { Connected: true, Corrupt: 0 }, $"node B's remote tier: {statsB.Remote}");

            // A second `up` finds the cluster formed: the init service creates nothing and exits 0 again.
            var second = await compose.RunAsync(up, TimeSpan.FromMinutes(5));
            Assert.True(second.ExitCode == 0, second + await LogsAsync(compose));
            init = await compose.RunAsync(["--profile", "cluster", "logs", "--no-color", "redis-cluster-init"]);
            Assert.Contains("the nodes already form a cluster; nothing to create", init.Output, StringComparison.Ordinal);
        }
        finally
        {
            await compose.RunAsync(["--profile", "cluster", "down", "-v"], TimeSpan.FromMinutes(3));
        }
    }

    private sealed record Split(ulong Total, List<ulong> Indices, List<long> Groups, uint Dim, DType DType, byte[] Rows, long Encoded);

    /// <summary>digits/train for the encoder, in index order, with labels: everything as the wire carried it.</summary>
    private static async Task<Split> ReadSplitAsync(EmbedCacheClient client)
    {
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", Encoders = { Encoder }, IncludeLabels = true, BatchSize = 256 };
        var (indices, groups, rows) = (new List<ulong>(), new List<long>(), new MemoryStream());
        ulong total = 0;
        uint dim = 0;
        var dtype = DType.Unspecified;
        long encoded = 0;
        await foreach (var batch in client.StreamEpochAsync(request))
        {
            var result = batch.Results.Single(r => r.Encoder == Encoder);
            Assert.Equal(batch.Indices.Count, Embeddings.CountFound(result.Found, batch.Indices.Count));
            (total, dim, dtype) = (batch.Total, result.Dim, result.Dtype);
            encoded += result.Encoded;
            indices.AddRange(batch.Indices);
            groups.AddRange(batch.Labels.Groups.GroupIds);
            result.Embeddings.WriteTo(rows);
        }

        return new Split(total, indices, groups, dim, dtype, rows.ToArray(), encoded);
    }

    private static async Task<T> LastAsync<T>(IAsyncEnumerable<T> items) where T : class
    {
        T? last = null;
        await foreach (var item in items)
            last = item;
        return last ?? throw new Xunit.Sdk.XunitException("the stream ended without a message");
    }

    private static async Task HealthyAsync(int httpPort, string node)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        await Until.UntilAsync(async () =>
        {
            try
            {
                return (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, $"{node}'s /healthz to answer 200", TimeSpan.FromMinutes(3));
    }

    /// <summary>The cluster services' logs, for a failure message.</summary>
    private static async Task<string> LogsAsync(Compose compose) =>
        "\n--- compose logs\n" + (await compose.RunAsync(["--profile", "cluster", "logs", "--no-color", "--tail", "40"])).Output;

    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);
}
