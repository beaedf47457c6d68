using System.Runtime.CompilerServices;
using EmbedCache.Contract.V1;
using Grpc.Core;

namespace EmbedCache.CacheClient;

/// <summary>
/// A data loader over the trainer's own items that fills the cache as it goes: a batch carries
/// features only while some of its keys may miss (the first epoch, or after a key went missing),
/// and keys alone once they are known to be cached. Misses are encoded by the service
/// (read-through), so the first epoch fills the cache and later epochs cost only lookups.
/// </summary>
/// <typeparam name="T">The trainer's item type.</typeparam>
public sealed class CachedDataLoader<T>
{
    private readonly EmbedCacheClient _client;
    private readonly IReadOnlyList<T> _items;
    private readonly IReadOnlyList<string> _encoders;
    private readonly Func<IReadOnlyList<T>, IReadOnlyList<int>, KeyBatch> _keys;
    private readonly Func<IReadOnlyList<T>, IReadOnlyList<int>, FeatureBatch> _features;
    private readonly bool[] _cached;
    private long _featureRequests;
    private long _keyOnlyRequests;

    /// <param name="client">The client to call.</param>
    /// <param name="items">All items, addressed by position.</param>
    /// <param name="encoders">Encoders to fetch for every item.</param>
    /// <param name="keys">Key extractor: the keys of the items at the given positions (see <see cref="KeyExtractors"/>).</param>
    /// <param name="features">The features of the items at the given positions, for read-through.</param>
    /// <param name="batchSize">Items per request.</param>
    public CachedDataLoader(EmbedCacheClient client, IReadOnlyList<T> items, IReadOnlyList<string> encoders,
        Func<IReadOnlyList<T>, IReadOnlyList<int>, KeyBatch> keys, Func<IReadOnlyList<T>, IReadOnlyList<int>, FeatureBatch> features,
        int batchSize = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (encoders.Count == 0)
            throw new ArgumentException("name at least one encoder", nameof(encoders));
        _client = client;
        _items = items;
        _encoders = encoders;
        _keys = keys;
        _features = features;
        BatchSize = batchSize;
        _cached = new bool[items.Count];
    }

    /// <summary>Items per request.</summary>
    public int BatchSize { get; }

    /// <summary>Requests that carried features (some keys were not known to be cached).</summary>
    public long FeatureRequests => Interlocked.Read(ref _featureRequests);

    /// <summary>Requests that carried keys only.</summary>
    public long KeyOnlyRequests => Interlocked.Read(ref _keyOnlyRequests);

    /// <summary>
    /// One epoch: batches of the items in an order fixed by <paramref name="seed"/> and
    /// <paramref name="epoch"/> (or in item order when <paramref name="shuffle"/> is false),
    /// each with every encoder's embeddings, all found.
    /// </summary>
    public async IAsyncEnumerable<LoadedBatch> EpochAsync(int epoch, ulong seed = 0, bool shuffle = true,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var order = Order(_items.Count, seed, epoch, shuffle);
        await using var stream = _client.OpenLookupStream(cancellationToken);
        for (var start = 0; start < order.Length; start += BatchSize)
        {
            var positions = order[start..Math.Min(order.Length, start + BatchSize)];
            var response = await LookupAsync(stream, positions, cancellationToken).ConfigureAwait(false);
            yield return new LoadedBatch(positions, response);
        }
    }

    private async Task<LookupResponse> LookupAsync(LookupStream stream, int[] positions, CancellationToken cancellationToken)
    {
        var allKnown = true;
        foreach (var p in positions)
            allKnown &= _cached[p];

        var request = new LookupRequest { Keys = _keys(_items, positions) };
        request.Encoders.Add(_encoders);
        if (!allKnown)
            request.Features = _features(_items, positions);
        Interlocked.Increment(ref allKnown ? ref _keyOnlyRequests : ref _featureRequests);
        var response = await stream.LookupAsync(request, cancellationToken).ConfigureAwait(false);

        if (allKnown && !AllFound(response, positions.Length))
        {
            // Something known to be cached is gone (dropped, evicted): send the features this time.
            foreach (var p in positions)
                _cached[p] = false;
            return await LookupAsync(stream, positions, cancellationToken).ConfigureAwait(false);
        }

        if (!AllFound(response, positions.Length))
            throw new RpcException(new Status(StatusCode.Internal, "the service answered a read-through lookup with rows missing"));
        foreach (var p in positions)
            _cached[p] = true;
        return response;
    }

    private static bool AllFound(LookupResponse response, int count) =>
        response.Results.All(r => Embeddings.CountFound(r.Found, count) == count);

    private static int[] Order(int count, ulong seed, int epoch, bool shuffle)
    {
        var order = Enumerable.Range(0, count).ToArray();
        if (shuffle)
            new Random(unchecked((int)(seed ^ (seed >> 32)) ^ (epoch * 486187739))).Shuffle(order);
        return order;
    }
}

/// <summary>One batch of a <see cref="CachedDataLoader{T}"/>: item positions and the service's answer.</summary>
/// <param name="Positions">Positions of the batch's items in the loader's item list.</param>
/// <param name="Response">Embeddings of every encoder for those items, in the same order.</param>
public sealed record LoadedBatch(int[] Positions, LookupResponse Response);
