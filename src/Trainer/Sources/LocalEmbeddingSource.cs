using System.Runtime.CompilerServices;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Encoders;

namespace EmbedCache.Trainer;

/// <summary>
/// <c>--no-cache</c>: the raw split is read and every item encoded with the same built-in encoder the
/// service runs, every epoch — what training without the cache costs, for the side-by-side speedup.
/// </summary>
public sealed class LocalEmbeddingSource : IEmbeddingSource
{
    private readonly string _dataRoot;
    private readonly string _datasetName;
    private readonly string _encoderName;
    private Dataset? _dataset;
    private IEncoder? _encoder;

    public LocalEmbeddingSource(string dataRoot, string dataset, string encoder)
    {
        _dataRoot = dataRoot;
        _datasetName = dataset;
        _encoderName = encoder;
    }

    public string Kind => "local";

    public Task<SourceReady> PrepareAsync(IReadOnlyList<string> splits, IProgress<FillProgress>? progress, CancellationToken cancellationToken)
    {
        try
        {
            _dataset = new DatasetCatalog(new Dictionary<string, string>(), _dataRoot).Resolve(_datasetName);
        }
        catch (Exception e) when (e is DatasetNotFoundException or DatasetPathException or DatasetException)
        {
            throw new TrainerException($"--no-cache: {e.Message} (data root {_dataRoot})");
        }

        foreach (var split in splits)
        {
            if (!_dataset.HasSplit(split))
                throw new TrainerException($"dataset '{_datasetName}' has no split '{split}' (splits: {string.Join(", ", _dataset.Splits)})");
        }

        var defaults = EncoderRegistry.Defaults();
        if (!defaults.TryGetValue(_encoderName, out var options))
            throw new TrainerException($"--no-cache runs the built-in encoders only: {string.Join(", ", defaults.Keys)} (not '{_encoderName}')");
        try
        {
            _encoder = EncoderRegistry.CreateEncoder(_encoderName, options);
        }
        catch (EncoderLoadException e)
        {
            throw new TrainerException(e.Message);
        }

        return Task.FromResult(new SourceReady(_encoder.Dim, 0, 0, _encoder.Fingerprint.ToString()));
    }

    public async IAsyncEnumerable<EmbeddingBatch> ReadAsync(ReadRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var dataset = _dataset ?? throw new InvalidOperationException("PrepareAsync first");
        var encoder = _encoder!;
        // Every epoch reads the raw split again, as a trainer without a cache does.
        var items = SplitItems.Read(dataset, request.Split, cancellationToken);
        var pairs = dataset.Manifest.Labels.Kind == DatasetLabelKind.Pair ? dataset.ReadPairs(request.Split, cancellationToken) : null;
        var units = pairs?.Count ?? items.Count;
        // The service's own epoch order, so a --no-cache run visits items exactly as a cached one does.
        var order = Array.ConvertAll(EmbedCache.Engine.Caching.EpochOrder.Permutation(units, request.Seed, (uint)request.Epoch, request.Shuffle), i => (int)i);

        for (var start = 0; start < units; start += request.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(request.BatchSize, units - start);
            var slice = order.AsSpan(start, n);
            EmbeddingBatch batch;
            if (pairs is null)
            {
                batch = Encode(encoder, items, slice.ToArray(), cancellationToken);
            }
            else
            {
                // The batch holds the distinct items its pairs name, as the service's pair batches do.
                var rowOf = new Dictionary<int, long>();
                var rows = new List<int>();
                var a = new long[n];
                var b = new long[n];
                var scores = new float[n];
                for (var i = 0; i < n; i++)
                {
                    var p = pairs[slice[i]];
                    a[i] = Row((int)p.A);
                    b[i] = Row((int)p.B);
                    scores[i] = p.Score;
                }

                batch = Encode(encoder, items, [.. rows], cancellationToken);
                batch.Pairs = new PairRows(a, b, scores);

                long Row(int item)
                {
                    if (!rowOf.TryGetValue(item, out var row))
                    {
                        rowOf[item] = row = rows.Count;
                        rows.Add(item);
                    }

                    return row;
                }
            }

            batch.Offset = start;
            batch.Total = units;
            await Task.Yield();
            yield return batch;
        }
    }

    private static EmbeddingBatch Encode(IEncoder encoder, SplitItems items, int[] which, CancellationToken cancellationToken)
    {
        var batch = new EmbeddingBatch(which.Length, encoder.Dim) { Misses = which.Length };
        try
        {
            for (var i = 0; i < which.Length; i++)
                batch.Indices[i] = which[i];
            if (items.Groups is { } groups)
                batch.Groups = Array.ConvertAll(which, i => groups[i]);
            encoder.Encode(items.Features(which, encoder), batch.RowSpan, cancellationToken);
            return batch;
        }
        catch (InvalidFeaturesException e)
        {
            batch.Dispose();
            throw new TrainerException($"{(e.ItemIndex >= 0 ? $"item {which[e.ItemIndex]}" : "a batch")} of the raw split: {e.Message}");
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }

    public ValueTask DisposeAsync()
    {
        _encoder?.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>A split's raw items in memory: float features (N × length) or texts, and group ids.</summary>
    private sealed class SplitItems
    {
        private float[] _values = [];
        private readonly List<string> _texts = [];

        public int Count { get; private set; }

        public int ItemLength { get; private set; }

        public long[]? Groups { get; private set; }

        public static SplitItems Read(Dataset dataset, string split, CancellationToken cancellationToken)
        {
            var result = new SplitItems();
            var values = new List<float>();
            var groups = new List<long>();
            foreach (var chunk in dataset.OpenSplit(split).ReadChunks(4096, cancellationToken: cancellationToken))
            {
                result.Count += chunk.Count;
                if (chunk.Values is { } v)
                {
                    result.ItemLength = chunk.ItemLength;
                    values.AddRange(v.AsSpan(0, chunk.Count * chunk.ItemLength));
                }

                if (chunk.Texts is { } t)
                    result._texts.AddRange(t);
                if (chunk.Groups is { } g)
                    groups.AddRange(g);
            }

            result._values = [.. values];
            result.Groups = groups.Count == result.Count && result.Count > 0 ? [.. groups] : null;
            return result;
        }

        public FeatureBatch Features(int[] which, IEncoder encoder)
        {
            if (_texts.Count > 0)
                return new TextFeatureBatch(Array.ConvertAll(which, i => _texts[i]));
            var length = ItemLength;
            var gathered = new float[which.Length * length];
            for (var i = 0; i < which.Length; i++)
                _values.AsSpan(which[i] * length, length).CopyTo(gathered.AsSpan(i * length, length));
            return new TensorFeatureBatch(gathered, encoder.InputShape);
        }
    }
}
