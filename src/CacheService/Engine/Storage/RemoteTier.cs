using EmbedCache.Engine.Remote;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The shared cluster as a namespace's bottom tier, under its FASTER store: rows the local tiers miss are read from
/// the cluster in one batch (grouped by hash slot, pipelined), and those it has fill the local tiers on their way up.
/// Writes go behind (queued, never waited for). Values on the cluster are <c>checksum ‖ row</c> with the same checksum,
/// bound to the stored key, as FASTER's; a value that fails it (or has another length) is counted, logged, deleted from
/// the cluster and treated as a miss, never served. A cluster that does not answer in time is a miss too: the caller encodes, or reports
/// "not cached", exactly as without a remote tier.
/// </summary>
internal sealed class RemoteTier(RemoteCluster remote, ILogger logger) : IEmbeddingTier
{
    public RemoteCluster Cluster { get; } = remote;

    public TierRead Read(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> rows, Span<byte> mask)
    {
        var n = wanted.Length;
        var keys = Keys(batch, wanted);
        var values = new byte[]?[n];
        if (!Cluster.TryGetMany(keys, values))
            return new TierRead(0);

        var state = batch.Namespace;
        var rowBytes = state.RowBytes;
        var seeds = batch.Seeds;
        int found = 0, corrupt = 0, firstCorrupt = -1;
        List<byte[]>? bad = null;
        for (var j = 0; j < n; j++)
        {
            if (values[j] is not { } value)
                continue;
            var i = wanted[j];
            if (value.Length != Checksums.Size + rowBytes || !Checksums.Verify(seeds[i], value))
            {
                if (corrupt++ == 0)
                    firstCorrupt = i;
                (bad ??= []).Add(keys[j]);
                continue;
            }

            value.AsSpan(Checksums.Size).CopyTo(rows.Slice(i * rowBytes, rowBytes));
            FoundMask.Set(mask, i);
            found++;
        }

        Cluster.ReportRead(found, n - found - corrupt);
        Interlocked.Add(ref state.RemoteHits, found);
        if (corrupt > 0)
        {
            Cluster.ReportCorrupt(corrupt);
            Interlocked.Add(ref state.RemoteCorruptRows, corrupt);
            RemoteLog.Corrupt(logger, corrupt, $"namespace {state.Spec.Encoder} ({state.Spec.Fingerprint})", batch.Keys.Describe(firstCorrupt));
            // Taken off the cluster, so no node reads them again; the caller's re-encode writes good ones back.
            Cluster.TryDelete(bad!);
        }

        return new TierRead(found);
    }

    public void Contains(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> mask)
    {
        var keys = Keys(batch, wanted);
        var exists = new bool[wanted.Length];
        if (!Cluster.TryExistsMany(keys, exists))
            return;
        for (var j = 0; j < wanted.Length; j++)
        {
            if (exists[j])
                FoundMask.Set(mask, wanted[j]);
        }
    }

    public void Write(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which)
    {
        var rowBytes = batch.Namespace.RowBytes;
        var keys = Keys(batch, which);
        var values = new byte[which.Length][];
        var seeds = batch.Seeds;
        for (var j = 0; j < which.Length; j++)
        {
            var i = which[j];
            var value = new byte[Checksums.Size + rowBytes];
            var row = rows.Slice(i * rowBytes, rowBytes);
            Checksums.Write(seeds[i], row, value);
            row.CopyTo(value.AsSpan(Checksums.Size));
            values[j] = value;
        }

        Cluster.Enqueue(keys, values);
    }

    /// <summary>Nothing lies below the cluster.</summary>
    public long FillMark => 0;

    public void Fill(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long mark)
    {
    }

    private byte[][] Keys(TierBatch batch, ReadOnlySpan<int> entries)
    {
        var source = batch.StoredKeys;
        var hashes = batch.Hashes;
        var keys = new byte[entries.Length][];
        Span<byte> buffer = stackalloc byte[StoredKeys.MaxBytes];
        for (var j = 0; j < entries.Length; j++)
        {
            var i = entries[j];
            keys[j] = Cluster.Keys.Row(buffer[..source.Write(i, buffer)], RemoteKeys.Bucket(hashes[i]));
        }

        return keys;
    }
}
