using System.Diagnostics;
using System.Globalization;
using EmbedCache.CacheClient;
using EmbedCache.ClusterSupport;
using EmbedCache.Contract.V1;
using EmbedCache.Engine.Encoders;
using StackExchange.Redis;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Measurement;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// Scale-out through the remote tier (DESIGN, "Scale-out"), with child-process services on a real Redis Cluster of 3
/// primaries and no replicas (<see cref="RedisCluster"/>) — all on this one host:
/// <list type="number">
/// <item>node B streams a split (fortunes train, all-minilm-l6-v2, labels included) that node A prewarmed, with B's
/// local tier cold and B encoding nothing (checked in B's stats), against A's prewarm of it — the re-encoding;</item>
/// <item>keys-only GetEmbeddings on node B with its local tier cold (every row from the cluster, one pass over
/// distinct keys), on B once the rows are local, and StackExchange.Redis MGETs of the same values against the cluster
/// (one per hash slot, the remote tier's own keys) and a standalone redis-server;</item>
/// <item>a StreamDataset epoch on a fresh node C (every row from the cluster) against C's second epoch (local);</item>
/// <item>a distributed prewarm of the same split and encoder as 1. on one node, then on two.</item>
/// </list>
/// </summary>
internal static class RemoteTierScenario
{
    private const string AllMiniLm = EncoderRegistry.AllMiniLmL6V2;
    private const int TextBatch = 32;
    private const int WarmSentences = 64;

    public static async Task RunAsync(CompareReport report, string serviceDll, string repo, string root, Processes.Started redis, Settings s, CancellationToken token)
    {
        var scenario = Stopwatch.StartNew();
        var dataRoot = Path.Combine(root, "data-remote");
        var (train, _) = CopyFortunes(Path.Combine(repo, "deploy", "datasets", "fortunes"), Path.Combine(dataRoot, "fortunes"), s.Quick);
        WriteVectorDataset(Path.Combine(dataRoot, "vec"), s.Items);
        WriteVectorDataset(Path.Combine(dataRoot, "vecw"), WarmRows(s)); // registered as WarmVectors(0..WarmRounds-1): other keys, the same files
        WriteWarmDataset(Path.Combine(repo, "deploy", "datasets", "fortunes"), Path.Combine(dataRoot, "warm"));
        Log($"remote tier: fortunes train {train.Length:N0} sentences, vec {s.Items:N0} vectors; starting a Redis Cluster of 3 primaries, no replicas");

        await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0);
        var endpoints = string.Join(",", cluster.Endpoints);
        using var mux = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString + ",syncTimeout=30000,asyncTimeout=30000");
        var version = mux.GetServer(cluster.Endpoints[0]).Version;
        Log($"remote tier: cluster {endpoints} (redis-server {version})");

        Task<RemoteNode> Start(string prefix, string name, int? shardItems = null) =>
            RemoteNode.StartAsync(serviceDll, root, dataRoot, endpoints, prefix, name, token, shardItems);

        // --- 1. Node A prewarms; node B serves what A prewarmed --------------------------------------------------
        const string Prefix = "bench";
        RemoteNode.Prewarmed reencode;
        await using (var a = await Start(Prefix, "A"))
        {
            // The model's first forward passes allocate ONNX Runtime's buffers: a small split first, unmeasured.
            await a.PrewarmAsync(RemoteNode.WarmDatasets[0], "train", AllMiniLm, TextBatch, 1, token);
            reencode = await a.PrewarmAsync("fortunes", "train", AllMiniLm, TextBatch, 1, token, cpu: [a]);
            // The key set of parts 2 and 3 (384 float32 rows, e32), and the rows the other nodes warm up on.
            await a.PrewarmAsync("vec", null, "e32", 256, PrewarmScenario.FillWorkers, token);
            for (var round = 0; round < WarmRounds; round++)
                await a.PrewarmAsync(WarmVectors(round), null, "e32", 256, PrewarmScenario.FillWorkers, token);
            var written = await a.RemoteAsync(token);
            if (written.Dropped != 0 || written.Queued != 0)
                throw new InvalidOperationException($"node A's writes did not all reach the cluster: {written}");
            report.RemoteNotes.Add(FormattableString.Invariant(
                $"Node A's remote tier after its prewarms: {written.Written:N0} values written behind, {written.Dropped} dropped, {written.Errors} errors ({written.Timeouts} timeouts){(written.LastError.Length > 0 ? $", last: {written.LastError}" : "")}."));
        }

        var t = reencode.Seconds;
        double served;
        await using (var b = await Start(Prefix, "B"))
        {
            // B's code warms up on rows it reads from the cluster, as below but of other datasets, and on streams of a
            // small split, in rounds with pauses between them (see WarmRounds). What is measured below is B's steady path.
            var warm = new double[WarmRounds];
            for (var round = 0; round < WarmRounds; round++)
            {
                warm[round] = await ColdPassAsync(b.Client, WarmVectors(round), Shuffled(WarmRows(s), round), 0, WarmRows(s), [256, 1024], token);
                await b.StreamSplitAsync(RemoteNode.WarmDatasets[0], "train", AllMiniLm, RowBytes, (uint)round, token);
                await Task.Delay(TierUpPause, token);
            }

            Log($"node B warmed up: {WarmRounds} rounds of {WarmRows(s):N0} rows from the cluster at {string.Join(" / ", warm.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} rows/s, unmeasured");
            var before = await b.NamespaceAsync(AllMiniLm, token);
            var clock = Stopwatch.StartNew();
            var items = await b.StreamSplitAsync("fortunes", "train", AllMiniLm, RowBytes, 0, token);
            served = clock.Elapsed.TotalSeconds;
            var after = await b.NamespaceAsync(AllMiniLm, token);
            var fromCluster = after.RemoteHits - before.RemoteHits;
            if (after.Encoded != 0 || fromCluster != (ulong)items || items != train.Length)
                throw new InvalidOperationException(
                    $"node B was to serve fortunes/train ({train.Length} items) from the cluster alone, but it streamed {items} items, encoded {after.Encoded} rows and read {fromCluster} from the cluster (remote tier: {await b.RemoteAsync(token)})");
            Log($"node B streamed fortunes/train: {items:N0} items in {served:0.000} s, {fromCluster:N0} rows from the cluster, 0 encoded; A's prewarm took {t:0.0} s");

            // Two decimals, three when that would leave S one significant digit (a 1,565-item split is two batches).
            var s2 = served.ToString(served < 0.1 ? "0.000" : "0.00", CultureInfo.InvariantCulture);
            report.RemoteHeadline = FormattableString.Invariant(
                $"remote tier: node B serves a split prewarmed by node A in {s2} s; re-encoding it takes {t:0.0} s");
            var ratio = t / served;
            report.RemoteExtra.Add(FormattableString.Invariant(
                $"| node B streams fortunes train ({items:N0} sentences, 384 float32 + a group label each, StreamDataset batches of {StreamBatch}) that node A prewarmed; B's local tier cold | **{s2} s** ({items / served:N0} rows/s); B encoded 0 rows, {fromCluster:N0} rows from the cluster (B's GetStats) | A's prewarm of the split (re-encoding: all-minilm-l6-v2, batch {TextBatch}, 1 worker, after a {WarmSentences}-sentence warm-up): **{t:0.0} s** ({reencode.ItemsPerSecond:N1} sentences/s; A used {reencode.CpuSeconds:0.0} CPU-s) | **{ratio:N0}×**: B serves in 1/{ratio:N0} of the re-encoding time; target ≤ 1/5 — {(ratio >= 5 ? "met" : "NOT met")} |"));

            // --- 2. Lookups on B: cold (rows from the cluster), local, and Redis MGETs of the same values ---------
            await LookupsAsync(report, b, mux, redis, Prefix, s, token);
        }

        // --- 3. A cached epoch on a fresh node C: every row from the cluster, then local --------------------------
        await using (var c = await Start(Prefix, "C"))
            await EpochsAsync(report, c, s, token);

        // --- 4. Distributed prewarm on one node, then on two (fresh prefixes: nothing on the cluster to skip) -----
        var shardItems = Math.Max(TextBatch, (int)Math.Round(train.Length / 8.0 / TextBatch) * TextBatch);
        RemoteNode.Prewarmed one, two;
        await using (var d = await Start("bench-p1", "D", shardItems))
        {
            await d.PrewarmAsync(RemoteNode.WarmDatasets[1], "train", AllMiniLm, TextBatch, 1, token);
            one = await d.PrewarmAsync("fortunes", "train", AllMiniLm, TextBatch, 1, token, distributed: true, cpu: [d]);
            CheckFresh(one, train.Length);
        }

        var pair = await StartBothAsync(Start("bench-p2", "D", shardItems), Start("bench-p2", "E", shardItems));
        await using (pair[0])
        await using (pair[1])
        {
            await pair[0].PrewarmAsync(RemoteNode.WarmDatasets[1], "train", AllMiniLm, TextBatch, 1, token);
            await pair[1].PrewarmAsync(RemoteNode.WarmDatasets[2], "train", AllMiniLm, TextBatch, 1, token);
            var job = pair[0].PrewarmAsync("fortunes", "train", AllMiniLm, TextBatch, 1, token, distributed: true,
                timeout: TimeSpan.FromSeconds(Math.Max(120, 4 * one.Seconds)), peers: [pair[1]], cpu: pair);
            two = await job;
            CheckFresh(two, train.Length);
        }

        report.RemoteExtra.Add(FormattableString.Invariant(
            $"| distributed prewarm (`distributed = true`) of fortunes train, all-minilm-l6-v2, batch {TextBatch}, 1 worker a node: **one node** | **{one.ItemsPerSecond:N1} items/s** ({one.Seconds:0.0} s; {Shares(one)}); {one.CpuMsPerItem:0.0} CPU-ms per item | the non-distributed prewarm of part 1 (node A): {reencode.ItemsPerSecond:N1} items/s; {reencode.CpuMsPerItem:0.0} CPU-ms per item | {one.ItemsPerSecond / reencode.ItemsPerSecond:0.00}× the rate; {one.CpuMsPerItem / reencode.CpuMsPerItem:0.00}× the CPU per item |"));
        report.RemoteExtra.Add(FormattableString.Invariant(
            $"| the same on **two nodes** (started on D; E takes shards through the cluster) | **{two.ItemsPerSecond:N1} items/s** ({two.Seconds:0.0} s; {Shares(two)}); {two.CpuMsPerItem:0.0} CPU-ms per item (both nodes) | one node: {one.ItemsPerSecond:N1} items/s; {one.CpuMsPerItem:0.0} CPU-ms per item | {two.ItemsPerSecond / one.ItemsPerSecond:0.00}× the rate; {two.CpuMsPerItem / one.CpuMsPerItem:0.00}× the CPU per item |"));
        report.RemoteNotes.Add(FormattableString.Invariant(
            $"Distributed prewarm: shards of {shardItems} items (Store:Remote:ShardItems; the default 2048 would leave this split one shard), each run on fresh nodes under a key prefix of its own so that nothing is skipped; each node first encodes {WarmSentences} other sentences unmeasured. CPU-ms per item: user + system CPU time of the node processes (not the cluster's) from the request to the job's completion, over the items. Both nodes share this host's {Environment.ProcessorCount} cores with each other and the cluster (and each ONNX Runtime session sizes its threads to all of them), so two nodes cannot encode faster than one here in CPU terms: the two-node row shows what leasing and sharing shards through the cluster costs, not a speed-up — a real speed-up needs two hosts. All three prewarm rows move with whatever else the host runs meanwhile (see the load average): a rate above another row's can be a larger share of a busy host rather than less work per item, so read the CPU per item beside it, and compare these rows across runs with care."));

        report.RemoteIntro = FormattableString.Invariant(
            $"Remote tier (`RemoteTierScenario`, {scenario.Elapsed.TotalSeconds:0} s): EmbedCache nodes are child-process services (own SaveDir and local Cpu tier each, the same data root) sharing a Redis Cluster of 3 primaries, no replicas (redis-server {version}, child processes on loopback) — every node, the cluster and the bench on this one {Environment.ProcessorCount}-core host, sharing its cores.");
        Log($"remote tier scenario: {scenario.Elapsed.TotalSeconds:0} s");
    }

    /// <summary>
    /// Warm-up rounds of nodes B and C before they are measured, each over rows of another dataset that they read from
    /// the cluster, with a pause after each. The runtime compiles a method at tier 1 only after counting its calls,
    /// and counts them only once no new method has been compiled for a moment: in one round of a fresh node, a third
    /// of its CPU went to those compiles, and B's rate rose round by round (19,013 / 36,341 / 51,498 / 60,179 rows/s
    /// in one run) — with one round, the measurement itself ran while the runtime was tiering the path up.
    /// </summary>
    public const int WarmRounds = 4;

    /// <summary>Pause after each warm-up round, for the runtime's background compiles.</summary>
    private static readonly TimeSpan TierUpPause = TimeSpan.FromSeconds(1);

    /// <summary>Rows of each warm-up round (the vecw files, under a dataset name per round: other keys, the same vectors).</summary>
    private static int WarmRows(Settings s) => s.Items / WarmRounds;

    /// <summary>The dataset of warm-up round <paramref name="round"/>.</summary>
    public static string WarmVectors(int round) => "vecw" + round.ToString(CultureInfo.InvariantCulture);

    private static ulong[] Shuffled(int n, int seed)
    {
        var order = new ulong[n];
        for (var i = 0; i < n; i++)
            order[i] = (ulong)i;
        new Random(seed).Shuffle(order);
        return order;
    }

    /// <summary>
    /// Part 2: keys-only GetEmbeddings (one pooled stream) on node B. Cold: one pass over distinct keys in shuffled
    /// order, half of the vector dataset at 256 keys a request and the other half at 1024, every row read from the
    /// cluster (checked in B's stats) — after an unmeasured pass of the same kind over another namespace (e16), so
    /// that B's code is warm but these rows are not. Then, with every row local, GetEmbeddings on B and
    /// StackExchange.Redis MGETs of the same values, against the cluster (one MGET per hash slot, pipelined) and a
    /// standalone redis-server, interleaved as <see cref="MeasureAsync"/> does.
    /// </summary>
    private static async Task LookupsAsync(CompareReport report, RemoteNode b, ConnectionMultiplexer mux, Processes.Started redis, string prefix, Settings s, CancellationToken token)
    {
        var n = s.Items;
        var order = Shuffled(n, 42);
        var half = n / 2;

        var before = await b.NamespaceAsync("e32", token);
        var cpu = RemoteNode.CpuSeconds([b]);
        var cold256 = await ColdPassAsync(b.Client, "vec", order, 0, half, [256], token);
        var cold1024 = await ColdPassAsync(b.Client, "vec", order, half, n, [1024], token);
        cpu = RemoteNode.CpuSeconds([b]) - cpu;
        var cold = await b.NamespaceAsync("e32", token);
        if (cold.RemoteHits - before.RemoteHits != (ulong)n || cold.Encoded != 0)
            throw new InvalidOperationException($"node B's cold lookups were to read all {n} rows from the cluster: it read {cold.RemoteHits - before.RemoteHits} there and encoded {cold.Encoded}");
        Log($"node B, cold: {cold256:N0} rows/s at 256, {cold1024:N0} rows/s at 1024");

        var fingerprint = await b.FingerprintAsync("e32", token);
        var reads = await ClusterReads.CreateAsync(mux, prefix, fingerprint, "vec", n, RowBytes);
        using var standalone = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{redis.Port},abortConnect=false,syncTimeout=30000,asyncTimeout=30000");
        var clusterDb = mux.GetDatabase();
        var standaloneDb = standalone.GetDatabase();
        var standaloneKeys = await reads.CopyToAsync(clusterDb, standaloneDb);

        await using var local256 = b.Client.OpenPooledLookupStream(token);
        await using var local1024 = b.Client.OpenPooledLookupStream(token);
        var (r1, r2, r3, r4, r5, r6) = (new Random(1), new Random(2), new Random(3), new Random(4), new Random(5), new Random(6));
        var rates = await MeasureAsync(s with { Warm = s.RemoteWarm, Seconds = s.RemoteSeconds },
        [
            new("B GetEmbeddings 256, local", 1, async _ => Found(await local256.LookupAsync(RandomLookup("e32", n, 256, r1), token), 256)),
            new("B GetEmbeddings 1024, local", 1, async _ => Found(await local1024.LookupAsync(RandomLookup("e32", n, 1024, r2), token), 1024)),
            new("cluster MGET per slot 256", 1, _ => reads.ClusterBatchAsync(clusterDb, 256, r3)),
            new("cluster MGET per slot 1024", 1, _ => reads.ClusterBatchAsync(clusterDb, 1024, r4)),
            new("standalone MGET 256", 1, _ => reads.StandaloneBatchAsync(standaloneDb, standaloneKeys, 256, r5)),
            new("standalone MGET 1024", 1, _ => reads.StandaloneBatchAsync(standaloneDb, standaloneKeys, 1024, r6)),
        ], token);
        var local = await b.NamespaceAsync("e32", token);
        if (local.RemoteHits != cold.RemoteHits)
            throw new InvalidOperationException($"node B's local lookups read {local.RemoteHits - cold.RemoteHits} rows from the cluster: its local tier did not keep what the cold pass read");

        var measured = FormattableString.Invariant($"random keys, interleaved with the other five after {s.RemoteWarm:0.#} s warm-up each, {s.RemoteSeconds:0.#} s measured each");
        void Row(string path, int batch, double rate, string note) =>
            report.RemoteRows.Add(new(path, batch.ToString(CultureInfo.InvariantCulture), rate, rate * RowBytes / 1e6, note));
        Row("GetEmbeddings on node B, local tier cold: every row from the cluster", 256, cold256, FormattableString.Invariant($"keys only, one pass over {half:N0} distinct shuffled keys (one pooled stream), each batch read from the cluster (MGET per hash slot) and written into B's local tier; B warmed up first on {WarmRounds} rounds of {WarmRows(s):N0} rows of other datasets read from the cluster the same way"));
        Row("GetEmbeddings on node B, local tier cold: every row from the cluster", 1024, cold1024, FormattableString.Invariant($"the same over the other {n - half:N0} keys; B used {1e6 * cpu / n:0.0} CPU-µs per row over both passes"));
        Row("GetEmbeddings on node B, rows local (Cpu tier)", 256, rates[0], measured);
        Row("GetEmbeddings on node B, rows local (Cpu tier)", 1024, rates[1], measured + "; B read 0 rows from the cluster meanwhile");
        Row("StackExchange.Redis MGET per hash slot, the cluster", 256, rates[2], "the remote tier's own keys and values (384 float32 + a 4-byte checksum), pipelined MGETs grouped by slot as the remote tier sends them; " + measured);
        Row("StackExchange.Redis MGET per hash slot, the cluster", 1024, rates[3], measured);
        Row("StackExchange.Redis MGET, one standalone redis-server", 256, rates[4], "the same values (1,540 B each), one MGET; " + measured);
        Row("StackExchange.Redis MGET, one standalone redis-server", 1024, rates[5], measured);
        report.RemoteNotes.Add(FormattableString.Invariant(
            $"Rows/s and MB/s: MB/s counts a row's 1,536 embedding bytes (384 float32) on every path; the values on the cluster and in redis-server carry a 4-byte checksum besides. The cold passes cannot be repeated or interleaved (a row read once is local), so each is one pass of {half:N0} keys; the key set is the vector dataset's {n:N0} rows, prewarmed by node A."));
    }

    /// <summary>
    /// One pass of keys-only e32 lookups (a pooled GetEmbeddings stream) over order[from..to) of a dataset's train
    /// split, in batches of the given sizes taken in turn; rows/s. Every key must be found. The requests are built
    /// before the clock starts.
    /// </summary>
    private static async Task<double> ColdPassAsync(EmbedCacheClient client, string dataset, ulong[] order, int from, int to, int[] batches, CancellationToken token)
    {
        var requests = new List<LookupRequest>();
        for (int first = from, k = 0; first < to; k++)
        {
            var n = Math.Min(batches[k % batches.Length], to - first);
            var keys = new PositionalKeys { Dataset = dataset, Split = "train" };
            keys.Indices.Add(order.AsSpan(first, n).ToArray());
            var request = new LookupRequest { Keys = new KeyBatch { Positional = keys } };
            request.Encoders.Add("e32");
            requests.Add(request);
            first += n;
        }

        await using var stream = client.OpenPooledLookupStream(token);
        var clock = Stopwatch.StartNew();
        long rows = 0;
        foreach (var request in requests)
            rows += Found(await stream.LookupAsync(request, token), request.Keys.Positional.Indices.Count);
        return rows / clock.Elapsed.TotalSeconds;
    }

    private static long Found(LookupResponse response, int n)
    {
        if (Engine.FoundMask.Count(response.Results[0].Found.Span, n) != n)
            throw new InvalidOperationException($"a lookup of {n} stored keys found {Engine.FoundMask.Count(response.Results[0].Found.Span, n)}");
        return n;
    }

    /// <summary>Part 3: StreamDataset epochs of e32 on fresh node C — the first with every row from the cluster, then local.</summary>
    private static async Task EpochsAsync(CompareReport report, RemoteNode c, Settings s, CancellationToken token)
    {
        // C's code warms up on epochs of other datasets (their rows come from the cluster too), unmeasured.
        for (var round = 0; round < WarmRounds; round++)
        {
            await c.StreamSplitAsync(WarmVectors(round), "train", "e32", RowBytes, 0, token);
            await Task.Delay(TierUpPause, token);
        }
        var before = await c.NamespaceAsync("e32", token);
        var epochs = new double[3];
        var hits = new ulong[3];
        for (var e = 0; e < epochs.Length; e++)
        {
            var clock = Stopwatch.StartNew();
            var bytes = await StreamEpochAsync(c.Client, "e32", (uint)e, token);
            epochs[e] = bytes / RowBytes / clock.Elapsed.TotalSeconds;
            if (bytes != (long)s.Items * RowBytes)
                throw new InvalidOperationException($"node C streamed {bytes / RowBytes} rows of e32, not {s.Items}");
            var now = await c.NamespaceAsync("e32", token);
            hits[e] = now.RemoteHits - before.RemoteHits;
            before = now;
            if (now.Encoded != 0)
                throw new InvalidOperationException($"node C encoded {now.Encoded} rows of e32");
        }

        if (hits[0] != (ulong)s.Items || hits[1] != 0 || hits[2] != 0)
            throw new InvalidOperationException($"node C read {string.Join(" / ", hits)} rows from the cluster in its three epochs: expected all {s.Items} in the first and none after");
        Log($"node C: epochs {string.Join(" / ", epochs.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} rows/s");
        report.RemoteRows.Add(new("StreamDataset epoch on a fresh node C, local tier cold: every row from the cluster", StreamBatch.ToString(CultureInfo.InvariantCulture), epochs[0], epochs[0] * RowBytes / 1e6,
            FormattableString.Invariant($"float32, {s.Items:N0} rows shuffled, pooled client stream; the rows go into C's local tier as they pass; C warmed up first on {WarmRounds} epochs of {WarmRows(s):N0} rows of other datasets read from the cluster the same way")));
        report.RemoteRows.Add(new("the second epoch on node C (rows local)", StreamBatch.ToString(CultureInfo.InvariantCulture), epochs[1], epochs[1] * RowBytes / 1e6,
            FormattableString.Invariant($"one epoch, as the cold one; the third ran at {epochs[2]:N0} rows/s; {epochs[1] / epochs[0]:0.0}× the cold epoch")));
    }

    /// <summary>Two nodes started at once; if either fails, the other is stopped.</summary>
    private static async Task<RemoteNode[]> StartBothAsync(Task<RemoteNode> first, Task<RemoteNode> second)
    {
        try
        {
            return await Task.WhenAll(first, second);
        }
        catch
        {
            foreach (var t in new[] { first, second })
            {
                if (t.IsCompletedSuccessfully)
                    await t.Result.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>A distributed prewarm on fresh nodes and a fresh prefix: every item encoded, none skipped.</summary>
    private static void CheckFresh(RemoteNode.Prewarmed run, int items)
    {
        if (run.Last.Processed != (ulong)items || run.Last.Encoded != (ulong)items || run.Last.Skipped != 0)
            throw new InvalidOperationException($"a distributed prewarm of {items} fresh items processed {run.Last.Processed}, encoded {run.Last.Encoded}, skipped {run.Last.Skipped}");
    }

    private static string Shares(RemoteNode.Prewarmed run)
    {
        var c = run.Last.Cluster;
        if (c is null)
            return "no cluster progress";
        var nodes = string.Join(", ", c.Nodes.OrderBy(x => x.Node, StringComparer.Ordinal)
            .Select(x => FormattableString.Invariant($"{x.Node} {x.ShardsDone} shards / {x.Encoded:N0} encoded")));
        return FormattableString.Invariant($"{c.Shards} shards: {nodes}");
    }

    /// <summary>The first <see cref="WarmSentences"/> of fortunes' val split as a one-split dataset: what a node encodes before its timed prewarm.</summary>
    private static void WriteWarmDataset(string fortunes, string target)
    {
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "dataset.json"),
            """{ "format": "jsonl", "splits": { "train": "train.jsonl" }, "features": { "kind": "text", "field": "text" }, "labels": { "kind": "group", "field": "label" } }""");
        var lines = File.ReadLines(Path.Combine(fortunes, "val.jsonl")).Where(l => l.Length > 0).Take(WarmSentences);
        File.WriteAllLines(Path.Combine(target, "train.jsonl"), lines);
    }
}
