using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Measurement;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>The row "in-process store reads": a shuffled epoch read from a FASTER store in this process, no network.</summary>
internal static class StoreReadsScenario
{
    public static double Run(int items, Settings s, CancellationToken token)
    {
        using var store = EmbeddingStore.Open(new StoreOptions { CheckpointInterval = TimeSpan.Zero });
        var ns = store.Register(new NamespaceSpec("bench", Fingerprint.Compute("bench/compare"), Dim, EmbeddingDType.Float32, EmbedCache.Engine.Embeddings.Tier.Cpu));
        var rows = new byte[StreamBatch * RowBytes];
        new Random(1).NextBytes(rows);
        var indices = new ulong[StreamBatch];
        using var session = store.NewSession();
        for (var first = 0; first < items; first += StreamBatch)
        {
            var n = Math.Min(StreamBatch, items - first);
            for (var i = 0; i < n; i++)
                indices[i] = (ulong)(first + i);
            session.Put(ns, ItemKeyBatch.Positional("vec", "train", indices.AsSpan(0, n)), rows.AsSpan(0, n * RowBytes));
        }

        var mask = new byte[StreamBatch / 8];
        var order = Enumerable.Range(0, items).Select(i => (ulong)i).ToArray();
        return MeasureAsync(s, [new("in-process store reads", 1, r =>
        {
            new Random(r).Shuffle(order);
            for (var first = 0; first < items; first += StreamBatch)
            {
                token.ThrowIfCancellationRequested();
                var n = Math.Min(StreamBatch, items - first);
                Array.Clear(mask);
                var found = session.Get(ns, ItemKeyBatch.Positional("vec", "train", order.AsSpan(first, n)), rows.AsSpan(0, n * RowBytes), mask, token);
                if (found != n)
                    throw new InvalidOperationException($"in-process store read {found} of {n}");
            }

            return Task.FromResult((long)items);
        })], token).GetAwaiter().GetResult()[0];
    }
}
