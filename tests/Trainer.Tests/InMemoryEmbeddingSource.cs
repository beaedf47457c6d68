using System.Runtime.CompilerServices;

namespace EmbedCache.Trainer.Tests;

/// <summary>Embeddings and group ids held in memory per split: training without a service.</summary>
public sealed class InMemoryEmbeddingSource : IEmbeddingSource
{
    private readonly int _dim;
    private readonly Dictionary<string, (float[] Rows, long[] Groups)> _splits;

    private readonly string _fingerprint;

    private readonly bool _warm;

    /// <param name="warm">The fill finds every item already cached (encodes nothing), as on a warm cache.</param>
    public InMemoryEmbeddingSource(int dim, Dictionary<string, (float[] Rows, long[] Groups)> splits, string kind = "cached", string fingerprint = "in-memory", bool warm = false)
    {
        _dim = dim;
        _splits = splits;
        Kind = kind;
        _fingerprint = fingerprint;
        _warm = warm;
    }

    /// <summary>"cached" or "local", as the run should record it.</summary>
    public string Kind { get; }

    public int Prepared { get; private set; }

    public Task<SourceReady> PrepareAsync(IReadOnlyList<string> splits, IProgress<FillProgress>? progress, CancellationToken cancellationToken)
    {
        Prepared++;
        foreach (var s in splits)
        {
            if (!_splits.ContainsKey(s))
                throw new TrainerException($"no split {s}");
        }

        var items = _splits.Values.Sum(s => s.Groups.Length);
        return Task.FromResult(_warm ? new SourceReady(_dim, 0, items, _fingerprint) : new SourceReady(_dim, items, 0, _fingerprint));
    }

    public async IAsyncEnumerable<EmbeddingBatch> ReadAsync(ReadRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var (rows, groups) = _splits[request.Split];
        var order = Enumerable.Range(0, groups.Length).ToArray();
        if (request.Shuffle)
            new Random(HashCode.Combine(request.Seed, request.Epoch)).Shuffle(order);
        for (var start = 0; start < order.Length; start += request.BatchSize)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(request.BatchSize, order.Length - start);
            var batch = new EmbeddingBatch(n, _dim) { Offset = start, Total = order.Length, Groups = new long[n], Hits = n };
            var span = batch.RowSpan;
            for (var i = 0; i < n; i++)
            {
                var item = order[start + i];
                batch.Indices[i] = item;
                batch.Groups[i] = groups[item];
                rows.AsSpan(item * _dim, _dim).CopyTo(span.Slice(i * _dim, _dim));
            }

            yield return batch;
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>
    /// Clusters that cosine similarity on the raw rows barely sees: the class signal lives in a few
    /// dimensions, the rest is loud noise a head must learn to ignore.
    /// </summary>
    public static (float[] Rows, long[] Groups) Clustered(int count, int dim, int classes, int informative, double noise, int seed, float[] centres)
    {
        var random = new Random(seed);
        var rows = new float[count * dim];
        var groups = new long[count];
        for (var i = 0; i < count; i++)
        {
            var g = i % classes;
            groups[i] = g;
            for (var d = 0; d < dim; d++)
            {
                var value = Gaussian(random) * (d < informative ? 0.3 : noise);
                if (d < informative)
                    value += centres[(g * informative) + d];
                rows[(i * dim) + d] = (float)value;
            }
        }

        return (rows, groups);
    }

    public static float[] Centres(int classes, int informative, int seed)
    {
        var random = new Random(seed);
        var centres = new float[classes * informative];
        for (var i = 0; i < centres.Length; i++)
            centres[i] = (float)(Gaussian(random) * 2);
        return centres;
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
