using System.Diagnostics;
using System.Globalization;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Bench;

/// <summary>
/// The embedding store per tier: put and batch-get throughput (384-dim float32, batches of 256) and resident
/// memory per stored embedding. Each tier gets a fresh memory-only store.
/// </summary>
public sealed class StoreBench : IBench
{
    private const int Dim = 384;
    private const int Batch = 256;

    public string Name => "store";

    public string Description => "store put/get throughput and memory per tier (--items N --seconds S --tiers Gpu,Cpu,Disk --threads T)";

    public Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var items = 200_000;
        var seconds = 3.0;
        var threads = Math.Max(1, Environment.ProcessorCount);
        var tiers = new List<Tier> { Tier.Gpu, Tier.Cpu, Tier.Disk };
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--items":
                    items = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--threads":
                    threads = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--tiers":
                    tiers = [.. args[i + 1].Split(',').Select(Enum.Parse<Tier>)];
                    break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}");
                    return Task.FromResult(2);
            }
        }

        var rowBytes = EmbeddingDType.Float32.RowBytes(Dim);
        Console.WriteLine($"# store: {items} embeddings of {Dim}-dim float32 ({rowBytes} B), batches of {Batch}, reads for {seconds:0.#} s");
        Console.WriteLine($"# {MachineInfo.Describe()}");
        Console.WriteLine("| tier | put emb/s (1 thread) | get emb/s (1 thread) | get emb/s ({0} threads) | resident B/embedding | × raw | note |".Replace("{0}", threads.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---|");
        foreach (var tier in tiers)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var r = RunTier(tier, items, seconds, threads, rowBytes);
            Console.WriteLine(
                $"| {tier} | {r.Put:N0} | {r.Get1:N0} | {r.GetN:N0} | {r.BytesPerEmbedding:N0} | {r.BytesPerEmbedding / rowBytes:0.00} | {r.Note} |");
        }

        return Task.FromResult(0);
    }

    private sealed record TierResult(double Put, double Get1, double GetN, double BytesPerEmbedding, string Note);

    private static TierResult RunTier(Tier tier, int items, double seconds, int threads, int rowBytes)
    {
        var options = new StoreOptions { CheckpointInterval = TimeSpan.Zero };
        var baseline = ResidentBytes();
        using var store = EmbeddingStore.Open(options);
        var ns = store.Register(new NamespaceSpec("bench", Fingerprint.Compute("bench/" + tier), Dim, EmbeddingDType.Float32, tier));

        var rows = new byte[Batch * rowBytes];
        new Random(1).NextBytes(rows);
        var indices = new ulong[Batch];
        var clock = Stopwatch.StartNew();
        using (var session = store.NewSession())
        {
            for (var first = 0; first < items; first += Batch)
            {
                var n = Math.Min(Batch, items - first);
                for (var i = 0; i < n; i++)
                {
                    indices[i] = (ulong)(first + i);
                    BitConverter.TryWriteBytes(rows.AsSpan(i * rowBytes), first + i); // distinct rows
                }

                session.Put(ns, ItemKeyBatch.Positional("bench", "train", indices.AsSpan(0, n)), rows.AsSpan(0, n * rowBytes));
            }
        }

        var put = items / clock.Elapsed.TotalSeconds;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var resident = (double)(ResidentBytes() - baseline) / items;

        var get1 = ReadFor(store, ns, items, seconds, 1, rowBytes);
        var getN = threads > 1 ? ReadFor(store, ns, items, seconds, threads, rowBytes) : get1;
        var note = tier switch
        {
            Tier.Gpu => store.CudaAvailable
                ? $"CUDA table, {ns.GpuCount:N0} of {items:N0} rows on device"
                : $"no CUDA: host tensor table, {ns.GpuCount:N0} of {items:N0} rows in it",
            Tier.Disk => $"memory budget {options.DiskMemoryBytes >> 20} MiB, data {(long)items * rowBytes >> 20} MiB; random reads",
            _ => "random reads",
        };
        return new TierResult(put, get1, getN, resident, note);
    }

    /// <summary>Random batches of stored keys, from <paramref name="threads"/> sessions at once.</summary>
    private static double ReadFor(EmbeddingStore store, NamespaceHandle ns, int items, double seconds, int threads, int rowBytes)
    {
        long total = 0;
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var clock = Stopwatch.StartNew();
        var workers = new Thread[threads];
        for (var t = 0; t < threads; t++)
        {
            var seed = t;
            workers[t] = new Thread(() =>
            {
                var random = new Random(seed + 100);
                var destination = new byte[Batch * rowBytes];
                var mask = new byte[Batch / 8];
                var indices = new ulong[Batch];
                long read = 0;
                using var session = store.NewSession();
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    for (var i = 0; i < Batch; i++)
                        indices[i] = (ulong)random.Next(items);
                    var found = session.Get(ns, ItemKeyBatch.Positional("bench", "train", indices), destination, mask);
                    if (found != Batch)
                        throw new InvalidOperationException($"read {found} of {Batch} stored keys");
                    read += Batch;
                }

                Interlocked.Add(ref total, read);
            });
            workers[t].Start();
        }

        foreach (var w in workers)
            w.Join();
        return total / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Resident set size of this process (Linux /proc; falls back to the working set).</summary>
    private static long ResidentBytes()
    {
        try
        {
            var fields = File.ReadAllText("/proc/self/statm").Split(' ');
            return long.Parse(fields[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        }
        catch (IOException)
        {
            return Environment.WorkingSet;
        }
    }
}
