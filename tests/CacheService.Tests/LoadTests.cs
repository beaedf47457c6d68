using System.Diagnostics;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// 16 concurrent trainer streams (GetEmbeddings, 256 positional keys per batch) plus a prewarm, against the built
/// service as a child process: no errors, the service's RSS within its budget, latency percentiles printed.
/// 8 s in CI; EMBEDCACHE_LONG=1 runs 3 minutes. This asserts correctness and memory, never speed.
/// </summary>
public sealed class LoadTests(ITestOutputHelper output)
{
    private const int Streams = 16;
    private const int BatchKeys = 256;
    private const int TrainItems = 1438;
    /// <summary>The service's resident memory budget for this workload: three encoders loaded plus two small namespaces.</summary>
    private const long RssBudgetBytes = 1024L << 20;
    private static readonly bool Long = Environment.GetEnvironmentVariable("EMBEDCACHE_LONG") == "1";

    [Fact]
    public async Task SixteenTrainerStreamsAndAPrewarm_RunWithoutErrors_WithinTheMemoryBudget()
    {
        var duration = Long ? TimeSpan.FromMinutes(3) : TimeSpan.FromSeconds(8);
        using var dir = new TempDirectory("load");
        using var child = ChildProcess.Start(RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService"),
        [
            "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
            "--EmbedCache:Encoders:background:Kind=random-mlp", "--EmbedCache:Encoders:background:Seed=7",
        ]);
        using var channel = GrpcChannel.ForAddress((await child.WaitForListeningAsync()).Grpc);
        var c = new Contract(channel);
        var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2, Splits = { "train" }, Encoders = { "random-mlp" } };
        Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(c.Admin, fill))[^1].State);
        var expected = (await c.Cache.LookupAsync(Contract.Positional("random-mlp", "digits", "train", [.. Enumerable.Range(0, TrainItems).Select(i => (ulong)i)]))).Results[0].Embeddings.ToByteArray();
        var row = expected.Length / TrainItems;

        using var stop = new CancellationTokenSource(duration);
        var latencies = new List<double>[Streams];
        var errors = 0L;
        var mismatches = 0L;
        var notes = new List<string>();
        long peakRss = Rss(child.Id);

        // A prewarm of another namespace (train then val, again and again) runs for the whole period.
        var prewarms = 0;
        var background = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await c.Admin.DropNamespaceAsync(new DropNamespaceRequest { Encoder = "background" }).ResponseAsync.ContinueWith(_ => { }, TaskScheduler.Default);
                var p = new PrewarmRequest { Dataset = "digits", BatchSize = 32, Workers = 1, Encoders = { "background" } };
                var last = (await Contract.PrewarmToEndAsync(c.Admin, p))[^1];
                if (last.State != JobState.Completed)
                    Interlocked.Increment(ref errors);
                prewarms++;
            }
        });

        var trainers = Enumerable.Range(0, Streams).Select(t => Task.Run(async () =>
        {
            var mine = latencies[t] = [];
            var random = new Random(t);
            using var call = c.Cache.GetEmbeddings();
            ulong id = 0;
            while (!stop.IsCancellationRequested)
            {
                var indices = Enumerable.Range(0, BatchKeys).Select(_ => (ulong)random.Next(TrainItems)).ToArray();
                var request = Contract.Positional("random-mlp", "digits", "train", indices);
                request.RequestId = ++id;
                var clock = Stopwatch.GetTimestamp();
                try
                {
                    await call.RequestStream.WriteAsync(request);
                    if (!await call.ResponseStream.MoveNext(CancellationToken.None))
                        throw new InvalidOperationException("the stream ended early");
                }
                catch (Exception e) when (e is RpcException or InvalidOperationException)
                {
                    Interlocked.Increment(ref errors);
                    return;
                }

                mine.Add(Stopwatch.GetElapsedTime(clock).TotalMilliseconds);
                var response = call.ResponseStream.Current;
                var bytes = response.Results[0].Embeddings.Span;
                if (response.RequestId != id)
                {
                    Interlocked.Increment(ref mismatches);
                    lock (notes)
                        notes.Add($"stream {t}: response to request {response.RequestId} where {id} was expected");
                }

                for (var i = 0; i < indices.Length; i += 37)
                {
                    if (!bytes.Slice(i * row, row).SequenceEqual(expected.AsSpan((int)indices[i] * row, row)))
                    {
                        Interlocked.Increment(ref mismatches);
                        lock (notes)
                            notes.Add($"stream {t}, request {id}: row {i} (item {indices[i]}) differs from the stored embedding; found bit {Contract.IsFound(response.Results[0].Found, i)}");
                    }
                }
            }

            await call.RequestStream.CompleteAsync();
            Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        })).ToArray();

        // Sample the service's RSS while the load runs (a measurement, not a synchronisation).
        using var sampler = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        var all = Task.WhenAll(trainers);
        while (!all.IsCompleted && await sampler.WaitForNextTickAsync())
            peakRss = Math.Max(peakRss, Rss(child.Id));
        await all;
        await background;

        var sorted = latencies.SelectMany(l => l).Order().ToArray();
        double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
        output.WriteLine($"load: {Streams} streams x {BatchKeys} keys for {duration.TotalSeconds:0} s plus {prewarms} background prewarms");
        output.WriteLine($"  batches {sorted.Length} ({sorted.Length * BatchKeys / duration.TotalSeconds:0} keys/s), errors {errors}, mismatches {mismatches}");
        output.WriteLine($"  latency ms: p50 {P(0.50):0.00}  p95 {P(0.95):0.00}  p99 {P(0.99):0.00}  max {sorted[^1]:0.00}");
        foreach (var note in notes.Take(10))
            output.WriteLine($"  MISMATCH {note}");
        output.WriteLine($"  service peak RSS {peakRss >> 20} MiB (budget {RssBudgetBytes >> 20} MiB)");

        Assert.Equal(0, errors);
        Assert.Equal(0, mismatches);
        Assert.True(sorted.Length >= Streams, "every stream answered at least one batch");
        Assert.True(prewarms >= 1, "the background prewarm completed at least once");
        Assert.True(peakRss <= RssBudgetBytes, $"service RSS {peakRss >> 20} MiB is over its {RssBudgetBytes >> 20} MiB budget");
        child.Terminate();
        Assert.Equal(0, await child.WaitForExitAsync("the service to stop"));
    }

    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }

        return 0;
    }
}
