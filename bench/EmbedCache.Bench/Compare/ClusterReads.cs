using System.Globalization;
using System.IO.Hashing;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Remote;
using EmbedCache.Engine.Storage;
using StackExchange.Redis;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The remote-tier scenario's plain-Redis baselines: StackExchange.Redis reading the very keys and values the remote
/// tier holds on the cluster (one MGET per hash slot, pipelined, as <see cref="RemoteCluster.TryGetMany"/> reads
/// them), and the same values in a standalone redis-server (plain MGET). The cluster keys are derived here as the
/// remote tier derives them (<c>RemoteTier.Keys</c>: stored key <c>fingerprint ‖ scheme ‖ item key</c>, its
/// XxHash128 picking one of 256 hash-tag buckets) and each value is checked against its checksum, so a change in
/// the key layout fails this bench instead of measuring missing keys.
/// </summary>
internal sealed class ClusterReads
{
    private readonly RedisKey[] _keys;
    private readonly int[] _slots;

    private ClusterReads(RedisKey[] keys, int[] slots, int valueBytes)
    {
        _keys = keys;
        _slots = slots;
        ValueBytes = valueBytes;
    }

    /// <summary>Bytes of one value on the cluster: checksum ‖ row.</summary>
    public int ValueBytes { get; }

    public int Count => _keys.Length;

    /// <summary>
    /// The cluster keys of rows 0..<paramref name="items"/>-1 of (<paramref name="dataset"/>, train) in the namespace of
    /// <paramref name="fingerprint"/>; reads every one back and verifies its checksum.
    /// </summary>
    public static async Task<ClusterReads> CreateAsync(IConnectionMultiplexer cluster, string prefix, string fingerprint, string dataset, int items, int rowBytes)
    {
        if (!Fingerprint.TryParse(fingerprint, out var fp))
            throw new InvalidOperationException($"'{fingerprint}' is not a fingerprint");
        var indices = new ulong[items];
        for (var i = 0; i < items; i++)
            indices[i] = (ulong)i;
        var source = new DataKeys(fp.ToBytes(), ItemKeyBatch.Positional(dataset, "train", indices));
        var names = new RemoteKeys(prefix);
        var keys = new RedisKey[items];
        var slots = new int[items];
        var seeds = new ulong[items];
        var buffer = new byte[StoredKeys.MaxBytes];
        for (var i = 0; i < items; i++)
        {
            var stored = buffer.AsSpan(0, source.Write(i, buffer));
            var key = names.Row(stored, RemoteKeys.Bucket(XxHash128.HashToUInt128(stored)));
            keys[i] = key;
            slots[i] = cluster.HashSlot(key);
            seeds[i] = Checksums.Seed(stored);
        }

        var reads = new ClusterReads(keys, slots, Checksums.Size + rowBytes);
        var db = cluster.GetDatabase();
        const int Chunk = 4096;
        for (var first = 0; first < items; first += Chunk)
        {
            var n = Math.Min(Chunk, items - first);
            var values = await reads.GetAsync(db, first, n);
            for (var j = 0; j < n; j++)
            {
                var v = values[j];
                if (v.IsNull || v.Length() != reads.ValueBytes || !Checksums.Verify(seeds[first + j], (byte[])v!))
                    throw new InvalidOperationException(
                        $"row {first + j} of {dataset} ({fingerprint}) is {(v.IsNull ? "missing" : $"{v.Length()} bytes that fail their checksum")} on the cluster under the key the remote tier would use: did the remote tier's key layout change? (bench/EmbedCache.Bench/Compare/ClusterReads.cs derives it)");
            }
        }

        return reads;
    }

    /// <summary>One MGET per hash slot of keys first..first+n-1, pipelined; values in key order.</summary>
    private async Task<RedisValue[]> GetAsync(IDatabase db, int first, int n)
    {
        var picks = new int[n];
        for (var j = 0; j < n; j++)
            picks[j] = first + j;
        var values = new RedisValue[n];
        await GetAsync(db, picks, values);
        return values;
    }

    /// <summary>
    /// The keys <paramref name="picks"/>, grouped by hash slot (one MGET each, all sent before any is awaited, as the
    /// remote tier sends them), into <paramref name="values"/>.
    /// </summary>
    private async Task GetAsync(IDatabase db, int[] picks, RedisValue[] values)
    {
        var n = picks.Length;
        var slots = new int[n];
        var order = new int[n];
        for (var j = 0; j < n; j++)
        {
            slots[j] = _slots[picks[j]];
            order[j] = j;
        }

        Array.Sort(slots, order);
        var tasks = new List<(int Start, Task<RedisValue[]> Task)>();
        for (var start = 0; start < n;)
        {
            var end = start + 1;
            while (end < n && slots[end] == slots[start])
                end++;
            var group = new RedisKey[end - start];
            for (var j = 0; j < group.Length; j++)
                group[j] = _keys[picks[order[start + j]]];
            tasks.Add((start, db.StringGetAsync(group)));
            start = end;
        }

        foreach (var (start, task) in tasks)
        {
            var got = await task;
            for (var j = 0; j < got.Length; j++)
                values[order[start + j]] = got[j];
        }
    }

    /// <summary>One batch of <paramref name="batch"/> random keys from the cluster (MGET per slot); returns the rows read.</summary>
    public async Task<long> ClusterBatchAsync(IDatabase db, int batch, Random random)
    {
        var picks = new int[batch];
        for (var j = 0; j < batch; j++)
            picks[j] = random.Next(_keys.Length);
        var values = new RedisValue[batch];
        await GetAsync(db, picks, values);
        return Rows(values);
    }

    /// <summary>Copies every value into a standalone redis-server under <c>remote:i</c>; returns those keys.</summary>
    public async Task<RedisKey[]> CopyToAsync(IDatabase cluster, IDatabase standalone)
    {
        var keys = new RedisKey[_keys.Length];
        const int Chunk = 1024;
        for (var first = 0; first < keys.Length; first += Chunk)
        {
            var n = Math.Min(Chunk, keys.Length - first);
            var values = await GetAsync(cluster, first, n);
            var pairs = new KeyValuePair<RedisKey, RedisValue>[n];
            for (var j = 0; j < n; j++)
            {
                keys[first + j] = "remote:" + (first + j).ToString(CultureInfo.InvariantCulture);
                pairs[j] = new(keys[first + j], values[j]);
            }

            await standalone.StringSetAsync(pairs);
        }

        return keys;
    }

    /// <summary>One plain MGET of <paramref name="batch"/> random keys; returns the rows read.</summary>
    public async Task<long> StandaloneBatchAsync(IDatabase db, RedisKey[] keys, int batch, Random random)
    {
        var request = new RedisKey[batch];
        for (var j = 0; j < batch; j++)
            request[j] = keys[random.Next(keys.Length)];
        return Rows(await db.StringGetAsync(request));
    }

    private long Rows(RedisValue[] values)
    {
        foreach (var v in values)
        {
            if (v.IsNull || v.Length() != ValueBytes)
                throw new InvalidOperationException($"a value was {(v.IsNull ? "missing" : $"{v.Length()} bytes, not {ValueBytes}")}");
        }

        return values.Length;
    }
}
