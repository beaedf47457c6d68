using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>
/// Where a training run gets its embeddings and labels: served by the cache
/// (<see cref="CachedEmbeddingSource"/>) or computed locally with the same encoder every epoch.
/// </summary>
public interface IEmbeddingSource : IAsyncDisposable
{
    /// <summary>"cached" or "local": how the metrics name this source.</summary>
    string Kind { get; }

    /// <summary>
    /// Gets the encoder's dim and makes the splits readable (for the cache: a prewarm the caller
    /// times as the fill). Called once, before anything is read.
    /// </summary>
    Task<SourceReady> PrepareAsync(IReadOnlyList<string> splits, IProgress<FillProgress>? progress, CancellationToken cancellationToken);

    /// <summary>One pass over a split in batches; shuffled in an order fixed by (seed, epoch).</summary>
    IAsyncEnumerable<EmbeddingBatch> ReadAsync(ReadRequest request, CancellationToken cancellationToken);
}

/// <summary>What <see cref="IEmbeddingSource.PrepareAsync"/> found: the dim and what the fill cost.</summary>
/// <param name="Dim">Embedding dim of the encoder.</param>
/// <param name="Encoded">Items the fill encoded (cache misses).</param>
/// <param name="AlreadyCached">Items the fill found cached (hits).</param>
/// <param name="Fingerprint">The encoder's fingerprint: two runs compare only when theirs match.</param>
public sealed record SourceReady(int Dim, long Encoded, long AlreadyCached, string Fingerprint);

/// <summary>Fill progress: items processed of total.</summary>
public readonly record struct FillProgress(string What, long Processed, long Total);

/// <summary>One pass over a split.</summary>
public sealed record ReadRequest(string Split, int Epoch, int BatchSize, bool Shuffle, ulong Seed);

/// <summary>
/// A batch of rows with their dataset indices and labels. The rows live in a float32 CPU tensor
/// (Count × Dim) that sources write straight into through <see cref="RowSpan"/>: the served bytes
/// are converted once, into the tensor's own memory (<c>torch.tensor(float[])</c> would copy again).
/// </summary>
public sealed class EmbeddingBatch : IDisposable
{
    private readonly Tensor _rows;

    public EmbeddingBatch(int count, int dim)
    {
        Count = count;
        Dim = dim;
        // Owned by this batch, whatever dispose scope happens to be open where it is made.
        _rows = torch.empty(count, dim, dtype: ScalarType.Float32).DetachFromDisposeScope();
        Indices = new long[count];
    }

    public int Count { get; }

    public int Dim { get; }

    /// <summary>The rows, Count × Dim float32. Disposed with the batch.</summary>
    public Tensor Rows => _rows;

    /// <summary>The tensor's memory, row-major, for writing rows into.</summary>
    public Span<float> RowSpan => MemoryMarshal.Cast<byte, float>(_rows.bytes);

    /// <summary>Dataset index of each row.</summary>
    public long[] Indices { get; }

    /// <summary>Group id per row, for group datasets.</summary>
    public long[]? Groups { get; set; }

    /// <summary>Scored pairs between rows of this batch, for pair datasets.</summary>
    public PairRows? Pairs { get; set; }

    /// <summary>Position of this batch in the epoch, and the epoch's size, in the stream's units (items or pairs).</summary>
    public long Offset { get; set; }

    public long Total { get; set; }

    /// <summary>Units this batch advances the epoch by.</summary>
    public int Units => Pairs?.A.Length ?? Count;

    /// <summary>Rows served from the cache, and rows that had to be encoded for this batch.</summary>
    public int Hits { get; set; }

    public int Misses { get; set; }

    public void Dispose() => _rows.Dispose();
}

/// <summary>Pairs as row positions within a batch, with their scores (1 similar … 0 dissimilar).</summary>
public sealed record PairRows(long[] A, long[] B, float[] Scores);
