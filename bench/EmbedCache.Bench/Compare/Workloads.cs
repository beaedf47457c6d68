using System.Diagnostics;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Google.Protobuf;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// What the benches ask of the service, shared by the scenarios: prewarm a dataset, stream an epoch, look up random
/// keys, fill and read back the memory/restart encoders' keys, wait for a restarted service to serve them (and evict
/// its SaveDir from the page cache first).
/// </summary>
internal static partial class Workloads
{
    public const int StreamBatch = 1024;

    public sealed record PrewarmResult(double Wall, double JobRate, string Message);

    public static async Task<PrewarmResult> PrewarmAsync(EmbedCacheClient client, string dataset, string encoder, int batch, CancellationToken token, int workers = 1, string? split = null)
    {
        var request = new PrewarmRequest { Dataset = dataset, BatchSize = (uint)batch, Workers = (uint)workers };
        if (split is not null)
            request.Splits.Add(split);
        request.Encoders.Add(encoder);
        var clock = Stopwatch.StartNew();
        PrewarmProgress? last = null;
        await foreach (var p in client.PrewarmAsync(request, token))
            last = p;
        clock.Stop();
        if (last is null || last.State != JobState.Completed)
            throw new InvalidOperationException($"prewarm of {dataset} for {encoder} ended {last?.State}: {last?.Message}");
        Log($"prewarm {encoder}: {last.Processed:N0} items in {clock.Elapsed.TotalSeconds:0.0} s (job rate {last.ItemsPerSecond:N0}/s; {last.Message})");
        return new PrewarmResult(last.Processed / clock.Elapsed.TotalSeconds, last.ItemsPerSecond, last.Message);
    }

    /// <summary>One epoch through StreamDataset; returns the embedding bytes received.</summary>
    public static async Task<long> StreamEpochAsync(EmbedCacheClient client, string encoder, uint epoch, CancellationToken token)
    {
        var request = new StreamDatasetRequest { Dataset = "vec", Split = "train", BatchSize = StreamBatch, Shuffle = true, Seed = 7, Epoch = epoch };
        request.Encoders.Add(encoder);
        long bytes = 0;
        await foreach (var batch in client.StreamEpochPooledAsync(request, token))
            bytes += batch.Results[0].Embeddings.Length;
        return bytes;
    }

    public static LookupRequest RandomLookup(string encoder, int items, int batch, Random random)
    {
        var keys = new PositionalKeys { Dataset = "vec", Split = "train" };
        for (var i = 0; i < batch; i++)
            keys.Indices.Add((ulong)random.Next(items));
        var request = new LookupRequest { Keys = new KeyBatch { Positional = keys } };
        request.Encoders.Add(encoder);
        return request;
    }

    /// <summary>A lookup of the train split's keys <paramref name="first"/> to first + <paramref name="n"/> - 1, for one encoder.</summary>
    public static LookupRequest KeysLookup(string dataset, string encoder, int first, int n)
    {
        var positional = new PositionalKeys { Dataset = dataset, Split = "train" };
        for (var i = 0; i < n; i++)
            positional.Indices.Add((ulong)(first + i));
        var request = new LookupRequest { Keys = new KeyBatch { Positional = positional } };
        request.Encoders.Add(encoder);
        return request;
    }

    public static async Task ReadAllAsync(EmbedCacheClient client, string encoder, int items, CancellationToken token)
    {
        const int batch = 4096;
        await using var stream = client.OpenLookupStream(token);
        for (var first = 0; first < items; first += batch)
        {
            var n = Math.Min(batch, items - first);
            var request = KeysLookup("big", encoder, first, n);
            var response = await stream.LookupAsync(request, token);
            if (response.Results[0].Found.Span.IndexOfAnyExcept((byte)0xFF) is var k && k >= 0 && k < n / 8)
                throw new InvalidOperationException($"{encoder}: stored keys missing after the restart");
        }
    }

    /// <summary>Read-through fill: GetEmbeddings with features for keys that miss (random 64-float inputs).</summary>
    public static async Task FillAsync(EmbedCacheClient client, string encoder, int items, CancellationToken token)
    {
        const int batch = 4096;
        var clock = Stopwatch.StartNew();
        var random = new Random(5);
        var floats = new float[batch * InputLength];
        for (var i = 0; i < floats.Length; i++)
            floats[i] = (float)(random.NextDouble() * 2 - 1);
        var data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
        await using var stream = client.OpenLookupStream(token);
        for (var first = 0; first < items; first += batch)
        {
            var n = Math.Min(batch, items - first);
            var request = KeysLookup("big", encoder, first, n);
            request.Features = new Contract.V1.FeatureBatch { Tensor = new TensorFeatures { ItemShape = { InputLength }, Data = UnsafeByteOperations.UnsafeWrap(data.AsMemory(0, n * InputLength * 4)) } };
            await stream.LookupAsync(request, token);
        }

        Log($"filled {items:N0} into {encoder} in {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Drops the files under <paramref name="dir"/> from the page cache (and only them).</summary>
    public static void EvictFromPageCache(string dir)
    {
        const int PosixFadvDontNeed = 4;
        foreach (var file in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (PosixFadvise(handle, 0, 0, PosixFadvDontNeed) != 0)
                throw new IOException($"posix_fadvise(DONTNEED) failed on {file}");
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "posix_fadvise")]
    public static partial int PosixFadvise(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, long length, int advice);

    public static async Task<Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus?> HealthOrNullAsync(EmbedCacheClient client, CancellationToken token)
    {
        try
        {
            return await client.CheckHealthAsync(cancellationToken: token);
        }
        catch (Grpc.Core.RpcException)
        {
            return null;
        }
    }

    /// <summary>Polls a lookup of the first and last stored key of both tiers until it finds all four; seconds on <paramref name="clock"/>.</summary>
    public static async Task<double> FirstLookupAsync(EmbedCacheClient client, int items, Stopwatch clock, CancellationToken token)
    {
        var request = new LookupRequest { Keys = new KeyBatch { Positional = new PositionalKeys { Dataset = "big", Split = "train", Indices = { 0UL, (ulong)items - 1 } } } };
        request.Encoders.Add("bigc");
        request.Encoders.Add("bigd");
        while (true)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(120))
                throw new TimeoutException("the restarted service did not serve the stored keys within 120 s");
            try
            {
                var response = await client.LookupAsync(request, token);
                if (response.Results.All(r => r.Found.Length > 0 && r.Found[0] == 0b11))
                    return clock.Elapsed.TotalSeconds;
            }
            catch (Grpc.Core.RpcException)
            {
            }

            await Task.Delay(20, token);
        }
    }
}
