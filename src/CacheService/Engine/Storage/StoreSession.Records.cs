namespace EmbedCache.Engine.Storage;

/// <summary>
/// The store's metadata, as bytes: batches of records under a writer's prefix (<see cref="RecordKeys"/>), fixed or
/// variable width, and named records (manifests, job state). All of it is checksummed and covered by checkpoints;
/// what the bytes mean is the writer's business (labels: <c>Caching/DatasetLabels.cs</c>).
/// </summary>
public sealed partial class StoreSession
{
    /// <summary>Largest record or named metadata value.</summary>
    public const int MaxValueBytes = 1 << 20;

    /// <summary>Stores records of <paramref name="valueBytes"/> bytes each (record i at i × valueBytes of <paramref name="values"/>).</summary>
    /// <param name="counted">Count the records this creates in <see cref="EmbeddingStore.LabelItems"/> (exactly, across checkpoints).</param>
    public unsafe void PutRecords(RecordKeys keys, ReadOnlySpan<byte> values, int valueBytes, bool counted = false)
    {
        if (valueBytes is < 1 or > MaxValueBytes || values.Length != (long)keys.Count * valueBytes)
            throw new ArgumentException($"values holds {values.Length} bytes for {keys.Count} records of {valueBytes} bytes", nameof(values));
        Enter();
        try
        {
            fixed (byte* data = values)
                WriteMeta(ref keys, data, valueBytes, null, keys.Count, counted);
            if (_store.Remote is { } remote)
                ShareRecords(remote, ref keys, values, valueBytes, default);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Stores records of any length: record i is <c>values[offsets[i]..offsets[i + 1]]</c>.</summary>
    /// <inheritdoc cref="PutRecords(RecordKeys, ReadOnlySpan{byte}, int, bool)"/>
    public unsafe void PutRecords(RecordKeys keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> offsets, bool counted = false)
    {
        var n = keys.Count;
        if (offsets.Length != n + 1 || offsets[0] != 0 || offsets[n] > values.Length)
            throw new ArgumentException($"offsets must hold {n + 1} positions into values, the first 0", nameof(offsets));
        for (var i = 0; i < n; i++)
        {
            if (offsets[i + 1] - offsets[i] is < 0 or > MaxValueBytes)
                throw new ArgumentException($"record {i} has {offsets[i + 1] - offsets[i]} bytes; records hold 0..{MaxValueBytes} bytes", nameof(offsets));
        }

        Enter();
        try
        {
            fixed (byte* data = values)
            fixed (int* offsetPtr = offsets)
                WriteMeta(ref keys, data, 0, offsetPtr, n, counted);
            if (_store.Remote is { } remote)
                ShareRecords(remote, ref keys, values, 0, offsets);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// Reads records of <paramref name="valueBytes"/> bytes each into <paramref name="values"/>; sets found bits;
    /// records not found are zero. Returns the number found.
    /// </summary>
    /// <param name="what">What the records are, for the message of a <see cref="StoreCorruptionException"/>.</param>
    /// <exception cref="StoreCorruptionException">A record failed its checksum (or has another width).</exception>
    public unsafe int GetRecords(RecordKeys keys, Span<byte> values, int valueBytes, Span<byte> foundMask, string what)
    {
        var n = keys.Count;
        if (valueBytes < 1 || values.Length < (long)n * valueBytes)
            throw new ArgumentException($"values holds {values.Length} bytes; {n} records of {valueBytes} bytes need {(long)n * valueBytes}", nameof(values));
        CheckMask(foundMask, n);
        Enter();
        try
        {
            var mask = foundMask[..FoundMask.Bytes(n)];
            mask.Clear();
            fixed (byte* data = values)
            fixed (byte* maskPtr = mask)
                ReadMeta(ref keys, ReadMode.Rows, data, valueBytes, maskPtr, n, what);
            if (_store.Remote is { } remote && FoundMask.Count(mask, n) < n)
                FillRecords(remote, ref keys, n, mask, valueBytes, values, default, what);
            var found = 0;
            for (var i = 0; i < n; i++)
            {
                if (FoundMask.IsSet(mask, i))
                    found++;
                else
                    values.Slice(i * valueBytes, valueBytes).Clear();
            }

            return found;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Reads records of any length into <paramref name="values"/> (null when not found); returns the number found.</summary>
    /// <inheritdoc cref="GetRecords(RecordKeys, Span{byte}, int, Span{byte}, string)"/>
    public int GetRecords(RecordKeys keys, Span<byte[]?> values, Span<byte> foundMask, string what)
    {
        var n = keys.Count;
        if (values.Length < n)
            throw new ArgumentException($"values holds {values.Length} entries; {n} needed", nameof(values));
        CheckMask(foundMask, n);
        Enter();
        try
        {
            return ReadVariable(ref keys, values, foundMask, n, what);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Stores a named record (manifest, job state; up to 1 MiB) covered by checkpoints.</summary>
    public unsafe void PutMetadata(string key, ReadOnlySpan<byte> value)
    {
        if (value.Length > MaxValueBytes)
            throw new ArgumentException($"metadata values hold up to {MaxValueBytes} bytes (was {value.Length})", nameof(value));
        var source = new MetadataKey(key);
        Enter();
        try
        {
            var offsets = stackalloc int[2] { 0, value.Length };
            fixed (byte* data = value)
                WriteMeta(ref source, data, 0, offsets, 1, counted: false);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>The named record, or null when there is none.</summary>
    /// <exception cref="StoreCorruptionException">The record failed its checksum.</exception>
    public byte[]? GetMetadata(string key)
    {
        var source = new MetadataKey(key);
        Enter();
        try
        {
            var values = new byte[]?[1];
            Span<byte> mask = stackalloc byte[1];
            ReadVariable(ref source, values, mask, 1, $"metadata '{key}'", shared: false);
            return values[0];
        }
        finally
        {
            Exit();
        }
    }

    private unsafe void WriteMeta<TKeys>(ref TKeys keys, byte* data, int stride, int* offsets, int count, bool counted)
        where TKeys : IKeySource, allows ref struct
    {
        var faster = FasterOf(_store.MetaStore);
        _store.Gate.Enter();
        try
        {
            faster.Write(ref keys, data, stride, offsets, count);
            if (counted)
                _store.AddLabelItems(faster.Functions.Inserted);
        }
        finally
        {
            _store.Gate.Exit();
        }
    }

    private unsafe void ReadMeta<TKeys>(ref TKeys keys, ReadMode mode, byte* rows, int rowBytes, byte* mask, int count, string what)
        where TKeys : IKeySource, allows ref struct
    {
        var (corrupt, first) = FasterOf(_store.MetaStore).Read(ref keys, mode, rows, rowBytes, mask, count, default, all: true);
        if (corrupt > 0)
        {
            throw new StoreCorruptionException($"{corrupt} stored {what}(s) failed their checksum (first: entry {first}); no data was returned for them")
            {
                ItemIndex = first,
                CorruptCount = corrupt,
            };
        }
    }

    private unsafe int ReadVariable<TKeys>(ref TKeys keys, Span<byte[]?> values, Span<byte> foundMask, int n, string what, bool shared = true)
        where TKeys : IKeySource, allows ref struct
    {
        var mask = foundMask[..FoundMask.Bytes(n)];
        mask.Clear();
        fixed (byte* maskPtr = mask)
            ReadMeta(ref keys, ReadMode.Arrays, null, 0, maskPtr, n, what);
        var arrays = FasterOf(_store.MetaStore).Functions.Arrays;
        for (var i = 0; i < n; i++)
        {
            values[i] = arrays[i];
            arrays[i] = null;
        }

        if (shared && _store.Remote is { } remote && FoundMask.Count(mask, n) < n)
            FillRecords(remote, ref keys, n, mask, 0, default, values, what);

        return FoundMask.Count(mask, n);
    }
}
