using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The crash harness: the built service is SIGKILLed at random points while a prewarm and read-through writes run,
/// then restarted on the same SaveDir. After every restart: everything reported durable (prewarm "committed",
/// read-through writes covered by a completed Checkpoint call) is present and bit-identical to what was recorded
/// before the kill; every stored value passes its checksum (a full StreamDataset of every filled namespace);
/// the resumed prewarm completes without re-encoding committed items. 3 rounds in CI; EMBEDCACHE_LONG=1 runs 20.
/// </summary>
public sealed class CrashHarnessTests(ITestOutputHelper output)
{
    private const string Writer = "random-mlp";
    private const int TrainItems = 1438;
    private const int PrewarmBatch = 4;
    private static readonly bool Long = Environment.GetEnvironmentVariable("EMBEDCACHE_LONG") == "1";

    [Fact]
    public async Task SigkillDuringPrewarmAndReadThrough_LosesNothingCommitted_AndResumesWithoutReencoding()
    {
        var rounds = Long ? 20 : 3;
        var seed = Environment.GetEnvironmentVariable("EMBEDCACHE_CRASH_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"crash harness: {rounds} rounds, seed {seed} (EMBEDCACHE_CRASH_SEED to replay)");
        using var dir = new TempDirectory("crash-harness");
        string[] args =
        [
            "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
            "--EmbedCache:Jobs:CheckpointIntervalSeconds=1",
            .. Enumerable.Range(0, rounds).SelectMany(r => new[] { $"--EmbedCache:Encoders:{Encoder(r)}:Kind=random-mlp", $"--EmbedCache:Encoders:{Encoder(r)}:Seed={1000 + r}" }),
        ];

        var reference = await ReferenceEmbeddingsAsync(rounds);
        var committedWrites = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var stats = new Figures();
        var child = ChildProcess.Start(ServiceDll, args);
        try
        {
            for (var round = 0; round < rounds; round++)
            {
                var encoder = Encoder(round);
                using var channel = GrpcChannel.ForAddress((await child.WaitForListeningAsync()).Grpc);
                var c = new Contract(channel);

                // Prewarm one fresh namespace per round, with read-through writes beside it; kill at a random point.
                using var writerStop = new CancellationTokenSource();
                var writes = ReadThroughAsync(c, round, random.Next(), committedWrites, stats, writerStop.Token);
                var request = new PrewarmRequest { Dataset = "digits", BatchSize = PrewarmBatch, Workers = 1, Follow = true, Splits = { "train" }, Encoders = { encoder } };
                var killAt = (ulong)(TrainItems * (0.05 + random.NextDouble() * 0.85));
                ulong committed = 0, processedAtKill = 0;
                using (var call = c.Admin.Prewarm(request))
                {
                    await Wait.UntilAsync(async () =>
                    {
                        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None), "the prewarm ended before its kill point");
                        committed = call.ResponseStream.Current.Committed;
                        // Odd rounds wait for a job checkpoint too, so the no-re-encoding check has committed items to protect.
                        var processed = processedAtKill = call.ResponseStream.Current.Processed;
                        return processed >= killAt && (round % 2 == 0 || committed > 0 || processed >= TrainItems * 9 / 10);
                    }, $"round {round}: the prewarm to reach item {killAt}");
                    child.Kill();
                    stats.Faults++;
                    await child.WaitForExitAsync("the killed service to exit");
                }

                await writerStop.CancelAsync();
                _ = await writes;
                stats.Requests += 2;

                var killedLog = child.Output;
                child.Dispose();
                child = ChildProcess.Start(ServiceDll, args);
                using var after = GrpcChannel.ForAddress((await child.WaitForListeningAsync()).Grpc);
                var a = new Contract(after);
                PrewarmProgress? resumed = null;
                try
                {
                    await Wait.UntilAsync(async () =>
                    {
                        stats.Requests++;
                        resumed = (await a.Admin.ListJobsAsync(new ListJobsRequest())).Jobs.SingleOrDefault(j => j.Encoders.Contains(encoder));
                        return resumed is { State: JobState.Completed or JobState.Failed or JobState.Cancelled };
                    }, $"round {round}: the resumed prewarm to finish", TimeSpan.FromMinutes(2));
                }
                catch (TimeoutException e)
                {
                    throw new TimeoutException($"{e.Message} Last seen: {resumed}. Log of the killed service:\n{killedLog}\nLog after the restart:\n{child.Output}", e);
                }
                var reencoded = (await a.Admin.GetStatsAsync(new GetStatsRequest())).Namespaces.Single(n => n.Encoder == encoder).Encoded;

                Assert.Equal(JobState.Completed, resumed!.State);
                Assert.True(reencoded <= TrainItems - committed,
                    $"round {round}: {reencoded} items encoded after the restart, but {committed} of {TrainItems} were committed before the kill");
                stats.CommittedAtKill += (long)committed;

                // Everything committed in this and every earlier round is there, bit-identical, and passes its checksum.
                // This round's namespace: items below the committed count were written before the kill and must be
                // bit-identical; later ones were encoded again after the restart, possibly in other batches, and the
                // encoder's float sums depend (by ~1e-6) on batch composition, so they get a tolerance and a count.
                reference[round] = await VerifyNamespaceAsync(a, encoder, reference[round], (int)committed, stats);
                for (var r = 0; r < round; r++)
                    await VerifyNamespaceAsync(a, Encoder(r), reference[r], TrainItems, stats);
                await VerifyWritesAsync(a, committedWrites, stats);
                output.WriteLine($"round {round}: killed with {processedAtKill}/{TrainItems} processed ({committed} committed), re-encoded {reencoded} after restart; read-through: {await writes} ; {committedWrites.Count} items committed so far");
            }

            child.Terminate();
            Assert.Equal(0, await child.WaitForExitAsync("the service to stop after the last round"));
        }
        finally
        {
            child.Dispose();
        }

        output.WriteLine($"FIGURES rounds={rounds} faults={stats.Faults} requests={stats.Requests} items_verified={stats.Verified} items_lost={stats.Lost} reencoded_within_1e-5={stats.ReencodedWithinTolerance} committed_at_kill={stats.CommittedAtKill} read_through_committed={committedWrites.Count}");
        Assert.Equal(0, stats.Lost);
    }

    private static string Encoder(int round) => $"m{round}";

    /// <summary>What each round's namespace must hold: the same encoders in a clean in-process service (they are deterministic).</summary>
    private static async Task<List<byte[][]>> ReferenceEmbeddingsAsync(int rounds)
    {
        var args = Enumerable.Range(0, rounds).SelectMany(r => new[] { $"--EmbedCache:Encoders:{Encoder(r)}:Kind=random-mlp", $"--EmbedCache:Encoders:{Encoder(r)}:Seed={1000 + r}" }).ToArray();
        await using var service = await InProcessService.StartAsync(null, args);
        var c = new Contract(service.Channel);
        var all = new List<byte[][]>();
        // The same batches as the harness's prewarm (PrewarmBatch items, one worker), so committed items compare bit for bit.
        var prewarm = new PrewarmRequest { Dataset = "digits", BatchSize = PrewarmBatch, Workers = 1, Splits = { "train" } };
        prewarm.Encoders.Add(Enumerable.Range(0, rounds).Select(Encoder));
        Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(c.Admin, prewarm))[^1].State);
        for (var r = 0; r < rounds; r++)
            all.Add(await ReadSplitAsync(c, Encoder(r)));
        return all;
    }

    private static async Task<byte[][]> ReadSplitAsync(Contract c, string encoder)
    {
        var rows = new byte[TrainItems][];
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 512, Encoders = { encoder } };
        using var call = c.Cache.StreamDataset(request);
        await foreach (var batch in call.ResponseStream.ReadAllAsync())
        {
            var bytes = batch.Results[0].Embeddings.Span;
            var row = bytes.Length / batch.Indices.Count;
            for (var i = 0; i < batch.Indices.Count; i++)
                rows[batch.Indices[i]] = bytes.Slice(i * row, row).ToArray();
        }

        return rows;
    }

    /// <summary>Returns what the namespace holds now: the record later restarts must match bit for bit.</summary>
    private static async Task<byte[][]> VerifyNamespaceAsync(Contract c, string encoder, byte[][] expected, int strictBelow, Figures stats)
    {
        var actual = await ReadSplitAsync(c, encoder);
        stats.Requests++;
        for (var i = 0; i < TrainItems; i++)
        {
            if (i >= strictBelow && actual[i] is not null && MaxDifference(actual[i], expected[i]) <= 1e-5f)
            {
                stats.Verified++;
                if (!actual[i].AsSpan().SequenceEqual(expected[i]))
                    stats.ReencodedWithinTolerance++;
            }
            else if (actual[i] is null || !actual[i].AsSpan().SequenceEqual(expected[i]))
            {
                stats.Lost++;
                if (actual[i] is not null)
                {
                    stats.Notes.Add($"{encoder}[{i}] differs by up to {MaxDifference(actual[i], expected[i])}");
                }
                else
                {
                    stats.Notes.Add($"{encoder}[{i}] missing");
                }
            }
            else
                stats.Verified++;
        }

        Assert.True(stats.Lost == 0, $"{encoder}: {stats.Lost} items missing or different after the restart: {string.Join("; ", stats.Notes.Take(10))}");
        return actual;
    }

    private static float MaxDifference(byte[] a, byte[] b)
    {
        var x = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(a);
        var y = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(b);
        var max = 0f;
        for (var j = 0; j < x.Length; j++)
            max = Math.Max(max, Math.Abs(x[j] - y[j]));
        return max;
    }

    private static async Task VerifyWritesAsync(Contract c, Dictionary<string, byte[]> committed, Figures stats)
    {
        foreach (var chunk in committed.Keys.Chunk(512))
        {
            var response = await c.Cache.LookupAsync(Contract.Custom(Writer, chunk));
            stats.Requests++;
            var result = response.Results[0];
            var row = result.Embeddings.Length / chunk.Length;
            for (var i = 0; i < chunk.Length; i++)
            {
                if (Contract.IsFound(result.Found, i) && result.Embeddings.Span.Slice(i * row, row).SequenceEqual(committed[chunk[i]]))
                    stats.Verified++;
                else
                    stats.Lost++;
            }
        }

        Assert.True(stats.Lost == 0, $"{stats.Lost} committed read-through items missing or different after the restart");
    }

    /// <summary>
    /// Read-through writes until the kill. A write counts as committed once a Checkpoint call that started after
    /// its response has completed: that is the durability the service promises for read-through.
    /// </summary>
    private static async Task<string> ReadThroughAsync(Contract c, int round, int seed, Dictionary<string, byte[]> committed, Figures stats, CancellationToken stop)
    {
        const int dim = 64;
        var random = new Random(seed);
        var pending = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var batches = 0;
        try
        {
            for (var batch = 0; !stop.IsCancellationRequested && batch < 10_000; batch++)
            {
                var keys = Enumerable.Range(0, 16).Select(i => $"r{round}-b{batch}-{i}").ToArray();
                var request = Contract.Custom(Writer, keys);
                request.Features = Contract.Vectors(dim, keys.Select(_ => Contract.Vector(dim, random.Next())).ToArray());
                var response = await c.Cache.LookupAsync(request, cancellationToken: stop);
                stats.Requests++;
                batches++;
                var result = response.Results[0];
                var row = result.Embeddings.Length / keys.Length;
                for (var i = 0; i < keys.Length; i++)
                    pending[keys[i]] = result.Embeddings.Span.Slice(i * row, row).ToArray();
                if (batch % 2 == 1)
                {
                    await c.Admin.CheckpointAsync(new CheckpointRequest(), cancellationToken: stop);
                    stats.Requests++;
                    foreach (var (k, v) in pending)
                        committed[k] = v;
                    pending.Clear();
                }
            }
        }
        catch (RpcException e)
        {
            // The kill (UNAVAILABLE / INTERNAL) or our own stop (CANCELLED): whatever was not checkpointed is not promised.
            return $"{batches} batches written, ended by {e.StatusCode}";
        }
        catch (OperationCanceledException)
        {
        }

        return $"{batches} batches written";
    }

    private sealed class Figures
    {
        public long Faults;
        public long Requests;
        public long Verified;
        public long Lost;
        public long CommittedAtKill;
        public long ReencodedWithinTolerance;
        public List<string> Notes { get; } = [];
    }

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

}
