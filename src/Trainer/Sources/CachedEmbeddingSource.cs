using System.Runtime.CompilerServices;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Grpc.Core;

namespace EmbedCache.Trainer;

/// <summary>
/// Embeddings and labels served by an EmbedCache service: a prewarm fills the cache once, then
/// every epoch is a StreamDataset over the cached split (the trainer reads no raw data at all).
/// </summary>
public sealed class CachedEmbeddingSource : IEmbeddingSource
{
    private readonly EmbedCacheClient _client;
    private readonly string _dataset;
    private readonly string _encoder;
    private int _dim;
    private bool _fillOnRead;

    public CachedEmbeddingSource(EmbedCacheClient client, string dataset, string encoder)
    {
        _client = client;
        _dataset = dataset;
        _encoder = encoder;
    }

    public string Kind => "cached";

    /// <summary>Set when the prewarm call was refused (no admin credential): reads then ask the service to fill.</summary>
    public string? FillNote { get; private set; }

    public async Task<SourceReady> PrepareAsync(IReadOnlyList<string> splits, IProgress<FillProgress>? progress, CancellationToken cancellationToken)
    {
        var encoders = await _client.ListEncodersAsync(cancellationToken);
        var info = encoders.FirstOrDefault(e => e.Name == _encoder)
            ?? throw new TrainerException($"the service has no encoder '{_encoder}' (it has: {string.Join(", ", encoders.Select(e => e.Name))})");
        _dim = checked((int)info.Dim);

        var request = new PrewarmRequest { Dataset = _dataset, Encoders = { _encoder } };
        request.Splits.Add(splits);
        PrewarmProgress? last = null;
        try
        {
            await foreach (var p in _client.PrewarmAsync(request, cancellationToken))
            {
                last = p;
                progress?.Report(new FillProgress("fill", (long)p.Processed, (long)p.Total));
            }
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.PermissionDenied or StatusCode.Unauthenticated or StatusCode.Unimplemented)
        {
            // Prewarm is an admin call; without that credential the first epoch's stream fills instead.
            _fillOnRead = true;
            FillNote = $"prewarm refused ({e.StatusCode}); the first epoch asks the stream to fill missing items";
            return new SourceReady(_dim, 0, 0, info.Fingerprint);
        }

        if (last is null)
            throw new TrainerException($"prewarm of '{_dataset}' for '{_encoder}' returned no progress");
        if (last.State != JobState.Completed)
            throw new TrainerException($"prewarm of '{_dataset}' for '{_encoder}' ended {last.State}: {last.Message}");
        return new SourceReady(_dim, (long)last.Encoded, (long)last.Skipped, info.Fingerprint);
    }

    public async IAsyncEnumerable<EmbeddingBatch> ReadAsync(ReadRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var stream = new StreamDatasetRequest
        {
            Dataset = _dataset,
            Split = request.Split,
            Encoders = { _encoder },
            BatchSize = (uint)request.BatchSize,
            Shuffle = request.Shuffle,
            Seed = request.Seed,
            Epoch = (uint)request.Epoch,
            IncludeLabels = true,
            FillMissing = _fillOnRead,
        };
        // Pooled: each served batch is converted to float32 (ToBatch) before the next one is read.
        await foreach (var served in _client.StreamEpochPooledAsync(stream, cancellationToken))
            yield return ToBatch(served, _encoder, _dim);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>One served batch as float32 rows (one conversion into a pooled array) and labels.</summary>
    public static EmbeddingBatch ToBatch(DatasetBatch served, string encoder, int dim)
    {
        var embeddings = served.Results.FirstOrDefault(r => r.Encoder == encoder)
            ?? throw new TrainerException($"a batch at offset {served.Offset} has no embeddings of '{encoder}'");
        var n = served.Indices.Count;
        if (embeddings.Dim != dim || embeddings.Embeddings.Length != n * dim * Embeddings.ElementSize(embeddings.Dtype))
            throw new TrainerException($"a batch at offset {served.Offset} has {embeddings.Embeddings.Length} bytes of dim {embeddings.Dim} {embeddings.Dtype} for {n} items; expected dim {dim}");
        var found = Embeddings.CountFound(embeddings.Found, n);
        if (found != n)
            throw new TrainerException($"a batch at offset {served.Offset} lacks {n - found} of {n} embeddings");

        var batch = new EmbeddingBatch(n, dim)
        {
            Offset = (long)served.Offset,
            Total = (long)served.Total,
            Hits = n - (int)embeddings.Encoded,
            Misses = (int)embeddings.Encoded,
        };
        try
        {
            Embeddings.ToFloat32(embeddings, batch.RowSpan);
            for (var i = 0; i < n; i++)
                batch.Indices[i] = (long)served.Indices[i];
            AttachLabels(served, batch);
            return batch;
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }

    private static void AttachLabels(DatasetBatch served, EmbeddingBatch batch)
    {
        var labels = served.Labels ?? throw new TrainerException($"a batch at offset {served.Offset} has no labels");
        switch (labels.KindCase)
        {
            case LabelBatch.KindOneofCase.Groups:
                if (labels.Groups.GroupIds.Count != batch.Count)
                    throw new TrainerException($"a batch at offset {served.Offset} has {labels.Groups.GroupIds.Count} group ids for {batch.Count} items");
                batch.Groups = [.. labels.Groups.GroupIds];
                break;
            case LabelBatch.KindOneofCase.Pairs:
                var pairs = labels.Pairs;
                var row = new Dictionary<ulong, long>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                    row[(ulong)batch.Indices[i]] = i;
                var a = new long[pairs.AIndex.Count];
                var b = new long[a.Length];
                for (var i = 0; i < a.Length; i++)
                {
                    if (!row.TryGetValue(pairs.AIndex[i], out a[i]) || !row.TryGetValue(pairs.BIndex[i], out b[i]))
                        throw new TrainerException($"pair ({pairs.AIndex[i]}, {pairs.BIndex[i]}) at offset {served.Offset} names an item not in its batch");
                }

                batch.Pairs = new PairRows(a, b, [.. pairs.Score]);
                break;
            default:
                throw new TrainerException($"dataset labels are {labels.KindCase}; training needs group ids or scored pairs");
        }
    }
}

/// <summary>A failure the trainer reports as one line and exit code 1.</summary>
public sealed class TrainerException(string message) : Exception(message);
