using EmbedCache.Engine.Remote;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Records (the caching layer's labels and index → key maps) on the shared cluster: every record written here is
/// queued for it too, and a record this store lacks is read from it, verified, and kept here. Named metadata (job
/// state, the split index) stays on the node; split manifests are shared by their owner, <c>SplitManifests</c>.
/// </summary>
public sealed partial class StoreSession
{
    private unsafe void ShareRecords<TKeys>(RemoteCluster remote, ref TKeys keys, ReadOnlySpan<byte> values, int valueBytes, ReadOnlySpan<int> offsets)
        where TKeys : IKeySource, allows ref struct
    {
        var n = valueBytes > 0 ? values.Length / valueBytes : offsets.Length - 1;
        var remoteKeys = new byte[n][];
        var remoteValues = new byte[n][];
        Span<byte> buffer = stackalloc byte[StoredKeys.MaxBytes];
        for (var i = 0; i < n; i++)
        {
            var key = buffer[..keys.Write(i, buffer)];
            var value = valueBytes > 0 ? values.Slice(i * valueBytes, valueBytes) : values[offsets[i]..offsets[i + 1]];
            var payload = new byte[Checksums.Size + value.Length];
            Checksums.Write(Checksums.Seed(key), value, payload);
            value.CopyTo(payload.AsSpan(Checksums.Size));
            remoteKeys[i] = remote.Keys.Record(key);
            remoteValues[i] = payload;
        }

        remote.Enqueue(remoteKeys, remoteValues);
    }

    /// <summary>
    /// Reads the records missing from <paramref name="mask"/> from the cluster into <paramref name="rows"/> (fixed
    /// width) or <paramref name="arrays"/>, sets their bits, and writes them to this store. A value that fails its
    /// checksum is counted and left missing.
    /// </summary>
    private unsafe void FillRecords<TKeys>(RemoteCluster remote, ref TKeys keys, int n, Span<byte> mask, int valueBytes,
        Span<byte> rows, Span<byte[]?> arrays, string what)
        where TKeys : IKeySource, allows ref struct
    {
        var missing = new List<int>();
        for (var i = 0; i < n; i++)
        {
            if (!FoundMask.IsSet(mask, i))
                missing.Add(i);
        }

        var remoteKeys = new byte[missing.Count][];
        var seeds = new ulong[missing.Count];
        Span<byte> buffer = stackalloc byte[StoredKeys.MaxBytes];
        for (var j = 0; j < missing.Count; j++)
        {
            var key = buffer[..keys.Write(missing[j], buffer)];
            seeds[j] = Checksums.Seed(key);
            remoteKeys[j] = remote.Keys.Record(key);
        }

        var payloads = new byte[]?[missing.Count];
        if (!remote.TryGetMany(remoteKeys, payloads))
            return;
        var filled = new List<int>(missing.Count);
        var filledValues = new List<byte[]>(missing.Count);
        int corrupt = 0, firstCorrupt = -1;
        var bad = new List<byte[]>();
        for (var j = 0; j < missing.Count; j++)
        {
            if (payloads[j] is not { } payload)
                continue;
            var i = missing[j];
            if (!Checksums.Verify(seeds[j], payload) || (valueBytes > 0 && payload.Length != Checksums.Size + valueBytes))
            {
                if (corrupt++ == 0)
                    firstCorrupt = i;
                bad.Add(remoteKeys[j]);
                continue;
            }

            var value = payload[Checksums.Size..];
            if (valueBytes > 0)
                value.CopyTo(rows.Slice(i * valueBytes, valueBytes));
            else
                arrays[i] = value;
            FoundMask.Set(mask, i);
            filled.Add(i);
            filledValues.Add(value);
        }

        if (corrupt > 0)
        {
            remote.ReportCorrupt(corrupt);
            RemoteLog.Corrupt(_store.Logger, corrupt, what, $"entry {firstCorrupt}");
            remote.TryDelete(bad);
        }

        if (filled.Count == 0)
            return;
        // Keep what the cluster had, so the next read of these records is local.
        var offsets = new int[filled.Count + 1];
        for (var j = 0; j < filled.Count; j++)
            offsets[j + 1] = offsets[j] + filledValues[j].Length;
        var data = new byte[offsets[^1]];
        for (var j = 0; j < filled.Count; j++)
            filledValues[j].CopyTo(data, offsets[j]);
        var subset = new SubsetKeys<TKeys>(keys, filled.ToArray());
        fixed (byte* d = data)
        fixed (int* o = offsets)
            WriteMeta(ref subset, d, 0, o, filled.Count, counted: false);
    }
}
