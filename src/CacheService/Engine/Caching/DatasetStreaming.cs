using System.Buffers;
using System.Runtime.CompilerServices;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>A request to stream one cached split (the label-cache path).</summary>
public sealed record StreamRequest(
    string Dataset, string Split, IReadOnlyList<string> Encoders, int BatchSize, bool Shuffle, ulong Seed, uint Epoch,
    ulong StartOffset, bool IncludeLabels)
{
    /// <summary>Where the rows are read to: pooled arrays when null; a shared-memory ring for co-located trainers.</summary>
    public IRowDestination? Rows { get; init; }
}

/// <summary>
/// Memory a stream reads embedding rows into, straight from the store. Asked once per encoder per batch, in stream
/// order (batch by batch, encoders in request order), so a ring can hand out consecutive spans.
/// </summary>
public interface IRowDestination
{
    /// <summary>
    /// <paramref name="length"/> bytes for the next rows, and their position in the destination's running byte count.
    /// May wait for room (a ring whose reader is behind).
    /// </summary>
    (Memory<byte> Memory, long Position) Rent(int length, CancellationToken cancellationToken);
}

/// <summary>
/// One streamed batch. Embedding rows live in pooled buffers: dispose the batch once it has been
/// written out.
/// </summary>
public sealed class StreamBatch : IDisposable
{
    internal StreamBatch(ulong offset, ulong total, ulong[] indices, EncoderRows[] results)
    {
        Offset = offset;
        Total = total;
        Indices = indices;
        Results = results;
    }

    /// <summary>Position of this batch's first element in the epoch order.</summary>
    public ulong Offset { get; }

    /// <summary>Elements in the epoch: items, or pairs for pair datasets.</summary>
    public ulong Total { get; }

    /// <summary>Item indices whose embeddings are in <see cref="Results"/>, row by row.</summary>
    public ulong[] Indices { get; }

    public EncoderRows[] Results { get; }

    /// <summary>Group id per item of <see cref="Indices"/>, for group datasets.</summary>
    public long[]? Groups { get; internal init; }

    /// <summary>The pairs of this batch, for pair datasets; their A/B are item indices in <see cref="Indices"/>.</summary>
    public PairLabel[]? Pairs { get; internal init; }

    public void Dispose()
    {
        foreach (var r in Results)
            r.Dispose();
    }
}

/// <summary>
/// Rows of one encoder for a batch: <see cref="Length"/> bytes of a pooled buffer, or of an
/// <see cref="IRowDestination"/>'s memory (then <see cref="Position"/> says where).
/// </summary>
public sealed class EncoderRows : IDisposable
{
    private byte[]? _buffer;
    private Memory<byte> _rows;

    internal EncoderRows(EncoderEntry encoder, byte[] buffer, int length)
    {
        Encoder = encoder;
        _buffer = buffer;
        _rows = buffer.AsMemory(0, length);
        Length = length;
        Position = -1;
    }

    internal EncoderRows(EncoderEntry encoder, Memory<byte> rows, long position)
    {
        Encoder = encoder;
        _rows = rows;
        Length = rows.Length;
        Position = position;
    }

    public EncoderEntry Encoder { get; }

    public int Length { get; }

    /// <summary>Position of the rows in the stream's <see cref="IRowDestination"/>; -1 for a pooled buffer.</summary>
    public long Position { get; }

    public ReadOnlyMemory<byte> Rows => _rows;

    internal Span<byte> Writable => _rows.Span;

    internal Memory<byte> Memory => _rows;

    public void Dispose()
    {
        _rows = default;
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null)
            ArrayPool<byte>.Shared.Return(b);
    }
}

public sealed partial class CacheEngine
{
    public const int MaxStreamBatchSize = 8192;

    /// <summary>
    /// The split's manifest, or <see cref="NotCachedException"/> naming what is missing. A split the store knows
    /// nothing of must at least exist: an unknown dataset or split is answered as a prewarm of it would be
    /// (<see cref="DatasetNotFoundException"/>, or <see cref="InvalidRequestException"/> for the split), since
    /// "prewarm it first" would only fail. A split that is cached streams even if its dataset is no longer readable.
    /// </summary>
    public SplitManifest RequireCachedSplit(string dataset, string split, IReadOnlyList<EncoderEntry> encoders)
    {
        var manifest = Splits.Get(dataset, split);
        if (manifest is null)
        {
            var known = Datasets.Resolve(dataset);
            if (!known.HasSplit(split))
                throw new InvalidRequestException("split", $"dataset {Echo.Quote(dataset)} has no split {Echo.Quote(split)} (splits: {string.Join(", ", known.Splits.Order(StringComparer.Ordinal))})");
            throw new NotCachedException($"split {Echo.Quote(split)} of dataset {Echo.Quote(dataset)} is not cached: prewarm it first (or ask to fill missing items)");
        }

        if (!manifest.LabelsComplete)
            throw new NotCachedException($"split {Echo.Quote(split)} of dataset {Echo.Quote(dataset)} is only partly cached: its prewarm has not completed");
        foreach (var e in encoders)
        {
            if (!manifest.CompleteFor.Contains(e.Fingerprint))
                throw new NotCachedException($"split {Echo.Quote(split)} of dataset {Echo.Quote(dataset)} is not cached for encoder '{e.Name}' (fingerprint {e.Fingerprint}): prewarm it first (or ask to fill missing items)");
        }

        return manifest;
    }

    /// <summary>
    /// Positional keys must lie inside their split when the store knows its size (a prewarm of it has started):
    /// <see cref="OutOfRangeRequestException"/> names the first index past the end and the split's size. Of a split
    /// the store knows nothing about the size is unknown, so its keys are looked up like any other (not found, or
    /// encoded from the request's features).
    /// </summary>
    public void RequireInSplit(string dataset, string split, IReadOnlyList<ulong> indices, string field)
    {
        var max = 0UL;
        var at = -1;
        for (var i = 0; i < indices.Count; i++)
        {
            if (at < 0 || indices[i] > max)
            {
                max = indices[i];
                at = i;
            }
        }

        if (at < 0)
            return;
        var manifest = Splits.Get(dataset, split);
        if (manifest is not null && max >= (ulong)manifest.Items)
        {
            throw new OutOfRangeRequestException($"{field}[{at}]",
                $"index {max} is past the end of split {Echo.Quote(split)} of dataset {Echo.Quote(dataset)}, which has {manifest.Items} items");
        }
    }

    /// <summary>
    /// Streams a cached split in epoch order: (seed, epoch) fix a permutation that every caller
    /// sees identically. Each batch carries the rows of every requested encoder and the labels.
    /// </summary>
    public async IAsyncEnumerable<StreamBatch> StreamSplitAsync(StreamRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (request.Encoders.Count == 0)
            throw new InvalidRequestException("encoders", "name at least one encoder");
        if (request.BatchSize is < 1 or > MaxStreamBatchSize)
            throw new InvalidRequestException("batch_size", $"must be between 1 and {MaxStreamBatchSize} (was {request.BatchSize})");
        var encoders = request.Encoders.Select(GetEncoder).ToArray();
        var manifest = RequireCachedSplit(request.Dataset, request.Split, encoders);

        var isPairs = manifest.Labels == DatasetLabelKind.Pair;
        var total = isPairs ? manifest.Pairs : manifest.Items;
        if (request.StartOffset > (ulong)total)
        {
            throw new OutOfRangeRequestException("start_offset",
                $"{request.StartOffset} is past the end of split {Echo.Quote(request.Split)} of dataset {Echo.Quote(request.Dataset)}, which has {total} {(isPairs ? "pairs" : "items")}");
        }
        var order = EpochOrder.Permutation(total, request.Seed, request.Epoch, request.Shuffle);

        // Double buffering: batch k+1 is read from the store (on the thread pool, with its own session)
        // while the caller writes batch k to the wire, so store reads and network writes overlap.
        StreamBatch Read(long offset)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = (int)Math.Min(request.BatchSize, total - offset);
            var positions = order.AsSpan((int)offset, n);
            return isPairs
                ? ReadPairBatch(request, manifest, encoders, positions, (ulong)offset, (ulong)total, cancellationToken)
                : ReadItemBatch(request, manifest, encoders, positions.ToArray(), (ulong)offset, (ulong)total, cancellationToken);
        }

        var next = (long)request.StartOffset;
        var pending = next < total ? Task.FromResult(Read(next)) : null;
        try
        {
            while (pending is not null)
            {
                var batch = await pending.ConfigureAwait(false);
                pending = null;
                next += request.BatchSize;
                if (next < total)
                {
                    var offset = next;
                    pending = Task.Run(() => Read(offset), cancellationToken);
                }

                yield return batch;
            }
        }
        finally
        {
            // The caller stopped early (cancelled, failed, or broke out): free the prefetched batch's buffers.
            if (pending is not null)
            {
                try
                {
                    (await pending.ConfigureAwait(false)).Dispose();
                }
                catch (Exception e) when (e is OperationCanceledException or NotCachedException)
                {
                }
            }
        }
    }

    private StreamBatch ReadItemBatch(StreamRequest request, SplitManifest manifest, EncoderEntry[] encoders, ulong[] indices,
        ulong offset, ulong total, CancellationToken cancellationToken)
    {
        using var lease = Sessions.Rent();
        var session = lease.Session;
        var keys = KeysFor(session, manifest, indices);
        var results = ReadRows(session, request.Rows is null ? null : Sessions, encoders, keys, request, Store.Remote is not null, cancellationToken);
        long[]? groups = null;
        if (request.IncludeLabels && manifest.Labels == DatasetLabelKind.Group)
        {
            groups = new long[indices.Length];
            var found = DatasetLabels.GetGroups(session, manifest.Dataset, manifest.Split, indices, groups, FoundMask.New(indices.Length));
            if (found != indices.Length)
            {
                DisposeAll(results);
                throw new NotCachedException($"{indices.Length - found} labels of split {Echo.Quote(manifest.Split)} of dataset {Echo.Quote(manifest.Dataset)} are missing: prewarm it again");
            }
        }

        return new StreamBatch(offset, total, indices, results) { Groups = groups };
    }

    private StreamBatch ReadPairBatch(StreamRequest request, SplitManifest manifest, EncoderEntry[] encoders, ReadOnlySpan<ulong> pairPositions,
        ulong offset, ulong total, CancellationToken cancellationToken)
    {
        using var lease = Sessions.Rent();
        var session = lease.Session;
        var pairIndices = pairPositions.ToArray();
        var pairs = new PairLabel[pairIndices.Length];
        if (DatasetLabels.GetPairs(session, manifest.Dataset, manifest.Split, pairIndices, pairs, FoundMask.New(pairIndices.Length)) != pairIndices.Length)
            throw new NotCachedException($"pairs of split {Echo.Quote(manifest.Split)} of dataset {Echo.Quote(manifest.Dataset)} are missing: prewarm it again");

        // Each item once, in first-seen order; pairs refer to items by index.
        var seen = new HashSet<ulong>();
        var items = new List<ulong>(pairs.Length * 2);
        foreach (var p in pairs)
        {
            if (seen.Add(p.A))
                items.Add(p.A);
            if (seen.Add(p.B))
                items.Add(p.B);
        }

        var indices = items.ToArray();
        var keys = KeysFor(session, manifest, indices);
        var results = ReadRows(session, request.Rows is null ? null : Sessions, encoders, keys, request, Store.Remote is not null, cancellationToken);
        return new StreamBatch(offset, total, indices, results) { Pairs = request.IncludeLabels ? pairs : null };
    }

    private static ItemKeyBatch KeysFor(StoreSession session, SplitManifest manifest, ulong[] indices)
    {
        if (manifest.KeyScheme == DatasetKeyScheme.Positional)
            return ItemKeyBatch.Positional(manifest.Dataset, manifest.Split, indices);
        var mask = FoundMask.New(indices.Length);
        var keys = DatasetLabels.GetIndexKeys(session, manifest.Dataset, manifest.Split, indices, mask);
        if (keys is null || keys.Count != indices.Length || FoundMask.Count(mask, indices.Length) != indices.Length)
            throw new NotCachedException($"the index-to-key map of split {Echo.Quote(manifest.Split)} of dataset {Echo.Quote(manifest.Dataset)} is incomplete: prewarm it again");
        return keys;
    }

    /// <summary>Extra reads of a streamed batch that misses rows, with a remote tier.</summary>
    private const int RemoteRereads = 2;

    /// <summary>Batches at least this large are read by two threads when the rows go to a ring (see <see cref="ReadRows"/>).</summary>
    private const int ParallelReadMin = 512;

    /// <summary>
    /// Reads every encoder's rows of a batch. With <paramref name="helpers"/> (the shared-memory path, where nothing else
    /// is left to overlap with the store's reads: no wire to write) a large batch is read in two halves at once, the
    /// second on another session.
    /// </summary>
    private static EncoderRows[] ReadRows(StoreSession session, SessionPool? helpers, EncoderEntry[] encoders, ItemKeyBatch keys, StreamRequest request, bool remote, CancellationToken cancellationToken)
    {
        var parallel = helpers is not null && keys.Count >= ParallelReadMin && Environment.ProcessorCount > 1;
        var half = keys.Count / 2;
        var (firstHalf, secondHalf) = parallel
            ? (keys.Select(Enumerable.Range(0, half).ToArray()), keys.Select(Enumerable.Range(half, keys.Count - half).ToArray()))
            : (keys, keys);
        var results = new EncoderRows[encoders.Length];
        var n = keys.Count;
        var mask = FoundMask.New(n);
        try
        {
            for (var e = 0; e < encoders.Length; e++)
            {
                var encoder = encoders[e];
                var length = n * encoder.RowBytes;
                if (request.Rows is { } destination)
                {
                    var (memory, position) = destination.Rent(length, cancellationToken);
                    results[e] = new EncoderRows(encoder, memory, position);
                }
                else
                {
                    results[e] = new EncoderRows(encoder, ArrayPool<byte>.Shared.Rent(length), length);
                }

                Array.Clear(mask);
                int found;
                if (parallel)
                {
                    var rows = results[e].Memory;
                    var split = half * encoder.RowBytes;
                    int foundFirst = 0, foundSecond = 0;
                    Parallel.Invoke(
                        () => foundFirst = session.Get(encoder.Namespace, firstHalf, rows.Span[..split], FoundMask.New(half), cancellationToken),
                        () =>
                        {
                            using var lease = helpers!.Rent();
                            foundSecond = lease.Session.Get(encoder.Namespace, secondHalf, rows.Span[split..], FoundMask.New(keys.Count - half), cancellationToken);
                        });
                    found = foundFirst + foundSecond;
                }
                else
                {
                    found = session.Get(encoder.Namespace, keys, results[e].Writable, mask, cancellationToken);
                }

                // Rows a node streams from the shared cluster are missing when a remote read timed out (a busy host or
                // a failover): read the batch again, up to twice; the rows found meanwhile are local by now.
                for (var attempt = 0; remote && found != n && attempt < RemoteRereads; attempt++)
                {
                    Array.Clear(mask);
                    found = session.Get(encoder.Namespace, keys, results[e].Writable, mask, cancellationToken);
                }

                encoder.RecordLookup(found, n - found);
                if (found != n)
                    throw new NotCachedException($"{n - found} embeddings of encoder '{encoder.Name}' for split {Echo.Quote(request.Split)} of dataset {Echo.Quote(request.Dataset)} are missing (dropped or evicted?): prewarm it again");
            }
        }
        catch
        {
            DisposeAll(results);
            throw;
        }

        return results;
    }

    private static void DisposeAll(EncoderRows?[] rows)
    {
        foreach (var r in rows)
            r?.Dispose();
    }
}
