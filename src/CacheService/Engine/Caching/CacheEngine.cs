using System.Buffers;
using System.Runtime.InteropServices;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Caching;

/// <summary>
/// The cache as a whole: encoders, their store namespaces and the dataset catalog, with the
/// operations the service exposes (read-through lookups, dataset streaming, prewarm jobs).
/// Host-independent: tests and benchmarks create it directly.
/// </summary>
public sealed partial class CacheEngine : IDisposable
{
    private readonly Dictionary<string, EncoderEntry> _encoders = new(StringComparer.Ordinal);
    private readonly ILogger _logger;

    /// <param name="tiers">Tier per encoder name (Quaterion's mapping); encoders not named get the store's default tier.</param>
    public CacheEngine(EmbeddingStore store, EncoderRegistry encoders, DatasetCatalog datasets,
        IReadOnlyDictionary<string, Tier>? tiers = null, ILoggerFactory? loggerFactory = null)
    {
        Store = store;
        Encoders = encoders;
        Datasets = datasets;
        LoggerFactory = loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        _logger = LoggerFactory.CreateLogger<CacheEngine>();
        Sessions = new SessionPool(store);
        Splits = new SplitManifests(Sessions, store.Remote);
        foreach (var encoder in encoders.All)
        {
            var tier = tiers is not null && tiers.TryGetValue(encoder.Name, out var t) ? t : Tier.Auto;
            var ns = store.Register(new NamespaceSpec(encoder.Name, encoder.Fingerprint, encoder.Dim, encoder.DType, tier));
            _encoders[encoder.Name] = new EncoderEntry(encoder, ns);
        }
    }

    public EmbeddingStore Store { get; }

    public EncoderRegistry Encoders { get; }

    public DatasetCatalog Datasets { get; }

    public SessionPool Sessions { get; }

    /// <summary>What the store knows about each prewarmed dataset split.</summary>
    public SplitManifests Splits { get; }

    internal ILoggerFactory LoggerFactory { get; }

    public IReadOnlyCollection<EncoderEntry> Entries => _encoders.Values;

    /// <summary>The encoder named <paramref name="name"/>, or <see cref="UnknownEncoderException"/>.</summary>
    public EncoderEntry GetEncoder(string name) =>
        _encoders.TryGetValue(name, out var entry) ? entry : throw new UnknownEncoderException(name, _encoders.Keys);

    /// <summary>
    /// Looks up <paramref name="keys"/> in one encoder's namespace, writing rows of the stored dtype
    /// into <paramref name="destination"/> and setting found bits. With <paramref name="features"/>,
    /// missing keys are encoded, stored and returned (read-through); a key that several requests
    /// miss at once is encoded once. Returns how many rows this call encoded.
    /// </summary>
    public async ValueTask<int> LookupAsync(EncoderEntry encoder, ItemKeyBatch keys, FeatureBatch? features,
        Memory<byte> destination, Memory<byte> foundMask, CancellationToken cancellationToken)
    {
        var count = keys.Count;
        if (features is not null && features.Count != count)
            throw new InvalidRequestException("features", $"{features.Count} items of features for {count} keys");
        if (features is not null)
            CheckFeatureKind(encoder, features);

        int found;
        using (var lease = Sessions.Rent())
            found = lease.Session.Get(encoder.Namespace, keys, destination.Span, foundMask.Span, cancellationToken);
        encoder.RecordLookup(found, count - found);
        if (found == count || features is null)
            return 0;

        var missing = FoundMask.Unset(foundMask.Span, count);
        return await FillMissingAsync(encoder, keys, features, missing, destination, foundMask, cancellationToken);
    }

    /// <summary>
    /// Features of the wrong kind or item size are a bad request even when every key hits and the features
    /// would go unused: a client must not learn that it sends garbage only on its first cache miss.
    /// </summary>
    private static void CheckFeatureKind(EncoderEntry encoder, FeatureBatch features)
    {
        var e = encoder.Encoder;
        if (e.InputKind == Embeddings.InputKind.Text)
        {
            if (features is not TextFeatureBatch)
                throw new InvalidRequestException("features", $"encoder '{encoder.Name}' takes text; send features.text");
            return;
        }

        if (e.InputKind == Embeddings.InputKind.Image && features is ImageFeatureBatch)
            return;
        if (features is not TensorFeatureBatch tensor)
            throw new InvalidRequestException("features", e.InputKind == Embeddings.InputKind.Image
                ? $"encoder '{encoder.Name}' takes images; send features.images (or features.tensor of shape {string.Join('x', e.InputShape)})"
                : $"encoder '{encoder.Name}' takes float32 items of shape {string.Join('x', e.InputShape)}; send features.tensor");
        long expected = 1;
        foreach (var d in e.InputShape)
            expected *= d;
        if (tensor.ItemLength != expected)
            throw new InvalidRequestException("features.tensor.item_shape", $"encoder '{encoder.Name}' takes items of shape {string.Join('x', e.InputShape)} ({expected} values); got {Echo.Shape(tensor.ItemShape)}");
    }

    private async ValueTask<int> FillMissingAsync(EncoderEntry encoder, ItemKeyBatch keys, FeatureBatch features,
        int[] missing, Memory<byte> destination, Memory<byte> foundMask, CancellationToken cancellationToken)
    {
        var owned = new List<int>(missing.Length);
        var ownedIds = new List<ByteKey>(missing.Length);
        var ownedTasks = new List<TaskCompletionSource<byte[]>>(missing.Length);
        var awaited = new List<(int Position, Task<byte[]> Row)>();
        foreach (var position in missing)
        {
            var id = new ByteKey(keys.ItemKey(position));
            while (true)
            {
                var tcs = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
                if (encoder.InFlight.TryAdd(id, tcs.Task))
                {
                    owned.Add(position);
                    ownedIds.Add(id);
                    ownedTasks.Add(tcs);
                    break;
                }

                if (encoder.InFlight.TryGetValue(id, out var running))
                {
                    awaited.Add((position, running));
                    break;
                }
            }
        }

        var encoded = 0;
        if (owned.Count > 0)
        {
            try
            {
                encoded = EncodeOwned(encoder, keys, features, owned, ownedTasks, destination.Span, foundMask.Span, cancellationToken);
            }
            catch (Exception e)
            {
                foreach (var t in ownedTasks)
                    t.TrySetException(e);
                throw;
            }
            finally
            {
                foreach (var id in ownedIds)
                    encoder.InFlight.TryRemove(id, out _);
            }
        }

        foreach (var (position, row) in awaited)
        {
            byte[] bytes;
            try
            {
                bytes = await row.WaitAsync(cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The request that owned this key failed (its other items were bad, or it was
                // cancelled): encode it here rather than fail a request that did nothing wrong.
                encoded += await FillMissingAsync(encoder, keys, features, [position], destination, foundMask, cancellationToken);
                continue;
            }

            bytes.CopyTo(destination.Span.Slice(position * encoder.RowBytes, encoder.RowBytes));
            FoundMask.Set(foundMask.Span, position);
        }

        return encoded;
    }

    private int EncodeOwned(EncoderEntry encoder, ItemKeyBatch keys, FeatureBatch features, List<int> owned,
        List<TaskCompletionSource<byte[]>> ownedTasks, Span<byte> destination, Span<byte> foundMask, CancellationToken cancellationToken)
    {
        var rowBytes = encoder.RowBytes;
        var positions = owned.ToArray();

        // Another request may have stored some of these between our read and our claim.
        var ownedKeys = keys.Select(positions);
        var recheck = new byte[positions.Length * rowBytes];
        var recheckMask = FoundMask.New(positions.Length);
        using (var lease = Sessions.Rent())
            lease.Session.Get(encoder.Namespace, ownedKeys, recheck, recheckMask, cancellationToken);

        var toEncode = new List<int>(positions.Length);
        for (var k = 0; k < positions.Length; k++)
        {
            if (FoundMask.IsSet(recheckMask, k))
            {
                var row = recheck.AsSpan(k * rowBytes, rowBytes);
                row.CopyTo(destination.Slice(positions[k] * rowBytes, rowBytes));
                FoundMask.Set(foundMask, positions[k]);
                ownedTasks[k].TrySetResult(row.ToArray());
            }
            else
            {
                toEncode.Add(k);
            }
        }

        if (toEncode.Count == 0)
            return 0;

        var encodePositions = new int[toEncode.Count];
        for (var i = 0; i < toEncode.Count; i++)
            encodePositions[i] = positions[toEncode[i]];
        var rows = EncodeRows(encoder, FeatureSlicing.Select(features, encodePositions), cancellationToken);
        using (var lease = Sessions.Rent())
            lease.Session.Put(encoder.Namespace, keys.Select(encodePositions), rows);
        encoder.RecordEncoded(encodePositions.Length);

        for (var i = 0; i < encodePositions.Length; i++)
        {
            var row = rows.AsSpan(i * rowBytes, rowBytes);
            row.CopyTo(destination.Slice(encodePositions[i] * rowBytes, rowBytes));
            FoundMask.Set(foundMask, encodePositions[i]);
            ownedTasks[toEncode[i]].TrySetResult(row.ToArray());
        }

        return encodePositions.Length;
    }

    /// <summary>Encodes a batch (split into the encoder's batch size) into rows of its stored dtype.</summary>
    public static byte[] EncodeRows(EncoderEntry encoder, FeatureBatch features, CancellationToken cancellationToken)
    {
        var rows = new byte[features.Count * encoder.RowBytes];
        EncodeRows(encoder, features, rows, cancellationToken);
        return rows;
    }

    /// <summary>
    /// Encodes a batch into <paramref name="rows"/> (count × RowBytes) in the stored dtype: float32 rows are written by
    /// the encoder in place, other dtypes go through one pooled float buffer.
    /// </summary>
    public static void EncodeRows(EncoderEntry encoder, FeatureBatch features, Span<byte> rows, CancellationToken cancellationToken)
    {
        var count = features.Count;
        if (encoder.DType == EmbeddingDType.Float32)
        {
            encoder.Encoder.Encode(features, MemoryMarshal.Cast<byte, float>(rows[..(count * encoder.RowBytes)]), cancellationToken);
            return;
        }

        var floats = ArrayPool<float>.Shared.Rent(count * encoder.Dim);
        try
        {
            encoder.Encoder.Encode(features, floats.AsSpan(0, count * encoder.Dim), cancellationToken);
            EmbeddingDTypes.FromFloat32(floats.AsSpan(0, count * encoder.Dim), encoder.DType, rows);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(floats);
        }
    }

    /// <summary>
    /// Drops a namespace and reclaims its space. Encoders that use it get a fresh, empty one, and
    /// splits recorded as complete for it are no longer, so streaming says "not cached".
    /// </summary>
    public async Task<DropResult> DropNamespaceAsync(Fingerprint fingerprint, CancellationToken cancellationToken = default)
    {
        var result = await Store.DropAsync(fingerprint, cancellationToken);
        foreach (var entry in _encoders.Values)
        {
            if (entry.Fingerprint == fingerprint)
                entry.Rebind(Store.Register(entry.Namespace.Spec));
        }

        Splits.Forget(fingerprint);
        return result;
    }

    public void Dispose()
    {
        Sessions.Dispose();
    }
}
