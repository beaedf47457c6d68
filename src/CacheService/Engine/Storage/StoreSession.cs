using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;
using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// A worker's handle on the store: batched reads straight into the caller's buffer, batched writes, labels and
/// metadata. Holds one FASTER session per FASTER store, so it must be used by one thread or task at a time
/// (concurrent use throws). Disk reads that go pending are completed once per batch.
/// </summary>
public sealed unsafe class StoreSession : IDisposable
{
    /// <summary>Longest stored key: fingerprint, scheme byte, item key (data); kind byte, positional key (labels).</summary>
    private const int MaxStoredKeyBytes = Fingerprint.Size + 1 + ItemKeyBatch.MaxItemKeyBytes;

    /// <summary>Longest metadata key, in UTF-8 bytes.</summary>
    public const int MaxMetadataKeyBytes = 512;

    /// <summary>Largest opaque label or metadata value.</summary>
    public const int MaxValueBytes = 1 << 20;

    private const byte GroupKind = (byte)'G';
    private const byte PairKind = (byte)'P';
    private const byte OpaqueKind = (byte)'O';
    private const byte IndexKeyKind = (byte)'I';
    private const byte MetadataKind = (byte)'M';

    private readonly EmbeddingStore _store;
    private Part? _cpu;
    private Part? _disk;
    private Part? _meta;
    private int _busy;
    private int _disposed;
    private UInt128[] _hashes = [];
    private ulong[] _seeds = [];
    private int[] _indices = [];
    private int[] _slots = [];

    internal StoreSession(EmbeddingStore store) => _store = store;

    /// <summary>One FASTER session and its callbacks.</summary>
    private sealed class Part(KvStore kv) : IDisposable
    {
        public readonly StoreFunctions Functions = new();
        public ClientSession<SpanByte, SpanByte, StoreInput, Empty, Empty, StoreFunctions>? Session;
        public readonly KvStore Kv = kv;

        public ClientSession<SpanByte, SpanByte, StoreInput, Empty, Empty, StoreFunctions> Get() => Session ??= Kv.NewSession(Functions);

        public void Dispose()
        {
            Session?.Dispose();
            Session = null;
        }
    }

    // ---------------------------------------------------------------- embeddings

    /// <summary>Tests: runs between a Gpu-tier Get's read from FASTER and its promotion of what it read.</summary>
    internal Action? BeforePromotion { get; set; }

    /// <summary>
    /// Reads <c>keys.Count</c> rows of <paramref name="ns"/> into <paramref name="destination"/> (row i at
    /// i × RowBytes), sets bit i of <paramref name="foundMask"/> (LSB first) for found rows and zero-fills the rest.
    /// Returns the number found.
    /// </summary>
    /// <exception cref="StoreCorruptionException">A value failed its checksum; its row is zeroed, never returned.</exception>
    public int Get(NamespaceHandle ns, ItemKeyBatch keys, Span<byte> destination, Span<byte> foundMask, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        var rowBytes = state.RowBytes;
        CheckBuffer(destination.Length, (long)n * rowBytes, nameof(destination));
        CheckMask(foundMask, n);
        cancellationToken.ThrowIfCancellationRequested();
        Enter();
        try
        {
            state.ThrowIfDropped();
            var mask = foundMask[..MaskBytes(n)];
            var part = DataPart(state);
            var source = new DataKeys(state.FingerprintBytes, keys);
            var table = state.Table;
            int gpuHits, corrupt, firstCorrupt, found;
            var compactions = _store.CompactionGeneration;
            while (true)
            {
                mask.Clear();
                gpuHits = 0;
                corrupt = 0;
                firstCorrupt = -1;
                fixed (byte* rows = destination)
                fixed (byte* maskPtr = mask)
                {
                    if (table is null)
                    {
                        (corrupt, firstCorrupt) = RunReads(part, ref source, ReadMode.Rows, rows, rowBytes, maskPtr, n, default, all: true);
                    }
                    else
                    {
                        HashKeys(ref source, n);
                        var slots = Grow(ref _slots, n);
                        var gathered = table.Gather(_hashes.AsSpan(0, n), _seeds.AsSpan(0, n), destination, mask, slots);
                        gpuHits = gathered.Hits;
                        if (gathered.CorruptCount > 0)
                        {
                            // The table is a cache: a bad row there is dropped and re-read from FASTER (verified again).
                            Interlocked.Add(ref state.GpuCorruptRows, gathered.CorruptCount);
                            _store.ReportTableCorruption(state, gathered.CorruptCount, keys.Describe(gathered.FirstCorrupt));
                        }

                        var misses = CollectUnset(mask, n);
                        if (misses.Length > 0)
                        {
                            // Taken before the read: a Put racing it marks its keys later, and their promotion is skipped.
                            var readSequence = table.WriteSequence;
                            (corrupt, firstCorrupt) = RunReads(part, ref source, ReadMode.Rows, rows, rowBytes, maskPtr, misses.Length, misses, all: false);

                            var promote = CollectSet(mask, misses);
                            BeforePromotion?.Invoke();
                            table.Promote(_hashes.AsSpan(0, n), _seeds.AsSpan(0, n), destination, promote, readSequence);
                        }
                    }
                }

                found = ZeroMissingRows(destination, mask, n, rowBytes);
                if (found == n || corrupt > 0 || !_store.CompactionOverlapped(ref compactions))
                    break;
            }

            Interlocked.Add(ref state.Hits, found);
            Interlocked.Add(ref state.Misses, n - found);
            if (gpuHits > 0)
                Interlocked.Add(ref state.GpuHits, gpuHits);
            if (corrupt > 0)
                throw Corruption(state, keys, firstCorrupt, corrupt);
            return found;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Stores <c>keys.Count</c> rows (already in the namespace's dtype, row i at i × RowBytes).</summary>
    public void Put(NamespaceHandle ns, ItemKeyBatch keys, ReadOnlySpan<byte> rows)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        var rowBytes = state.RowBytes;
        if (rows.Length != (long)n * rowBytes)
            throw new ArgumentException($"rows holds {rows.Length} bytes; {n} keys × {rowBytes} bytes = {(long)n * rowBytes} expected", nameof(rows));
        Enter();
        try
        {
            state.ThrowIfDropped();
            var part = DataPart(state);
            var source = new DataKeys(state.FingerprintBytes, keys);
            _store.Gate.Enter();
            try
            {
                state.ThrowIfDropped();
                fixed (byte* data = rows)
                    RunWrites(part, ref source, data, rowBytes, null, n);
                Interlocked.Add(ref state.Items, part.Functions.Inserted);
                Interlocked.Add(ref state.Bytes, part.Functions.InsertedBytes);
            }
            finally
            {
                _store.Gate.Exit();
            }

            if (state.Table is { } table)
            {
                HashKeys(ref source, n);
                var all = Grow(ref _indices, n);
                for (var i = 0; i < n; i++)
                    all[i] = i;
                table.Put(_hashes.AsSpan(0, n), _seeds.AsSpan(0, n), rows, all);
            }
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Sets bit i of <paramref name="foundMask"/> for each key that is stored; returns how many. No data is read out.</summary>
    public int Contains(NamespaceHandle ns, ItemKeyBatch keys, Span<byte> foundMask)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        CheckMask(foundMask, n);
        Enter();
        try
        {
            state.ThrowIfDropped();
            var mask = foundMask[..MaskBytes(n)];
            var part = DataPart(state);
            var source = new DataKeys(state.FingerprintBytes, keys);
            var compactions = _store.CompactionGeneration;
            int found;
            do
            {
                mask.Clear();
                fixed (byte* maskPtr = mask)
                {
                    if (state.Table is { } table)
                    {
                        HashKeys(ref source, n);
                        table.Contains(_hashes.AsSpan(0, n), mask);
                        var misses = CollectUnset(mask, n);
                        if (misses.Length > 0)
                            RunReads(part, ref source, ReadMode.Exists, null, 0, maskPtr, misses.Length, misses, all: false);
                    }
                    else
                    {
                        RunReads(part, ref source, ReadMode.Exists, null, 0, maskPtr, n, default, all: true);
                    }
                }

                found = CountBits(mask, n);
            }
            while (found < n && _store.CompactionOverlapped(ref compactions));

            return found;
        }
        finally
        {
            Exit();
        }
    }

    // ---------------------------------------------------------------- labels

    /// <summary>Stores group (class) ids of items <c>(dataset, split, indices[i])</c>.</summary>
    public void PutGroupLabels(string dataset, string split, ReadOnlySpan<ulong> indices, ReadOnlySpan<long> groupIds)
    {
        CheckSameLength(indices.Length, groupIds.Length, nameof(groupIds));
        Enter();
        try
        {
            var source = new LabelKeys(GroupKind, dataset, split, indices);
            fixed (long* data = groupIds)
                WriteMeta(ref source, (byte*)data, sizeof(long), null, indices.Length, labels: true);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Reads group ids; sets found bits; not-found entries are 0. Returns the number found.</summary>
    public int GetGroupLabels(string dataset, string split, ReadOnlySpan<ulong> indices, Span<long> groupIds, Span<byte> foundMask)
    {
        CheckBuffer(groupIds.Length, indices.Length, nameof(groupIds));
        CheckMask(foundMask, indices.Length);
        Enter();
        try
        {
            var source = new LabelKeys(GroupKind, dataset, split, indices);
            var n = indices.Length;
            var mask = foundMask[..MaskBytes(n)];
            mask.Clear();
            fixed (long* data = groupIds)
            fixed (byte* maskPtr = mask)
                ReadMeta(ref source, ReadMode.Rows, (byte*)data, sizeof(long), maskPtr, n, "group label");
            return ZeroMissingRows(MemoryMarshal.AsBytes(groupIds), mask, n, sizeof(long));
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Stores pair labels of items <c>(dataset, split, indices[i])</c>.</summary>
    public void PutPairLabels(string dataset, string split, ReadOnlySpan<ulong> indices, ReadOnlySpan<PairLabel> pairs)
    {
        CheckSameLength(indices.Length, pairs.Length, nameof(pairs));
        Enter();
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, pairs.Length * PairLabel.Size));
        try
        {
            for (var i = 0; i < pairs.Length; i++)
                EncodePair(pairs[i], buffer.AsSpan(i * PairLabel.Size, PairLabel.Size));
            var source = new LabelKeys(PairKind, dataset, split, indices);
            fixed (byte* data = buffer)
                WriteMeta(ref source, data, PairLabel.Size, null, indices.Length, labels: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            Exit();
        }
    }

    /// <summary>Reads pair labels; sets found bits; not-found entries are default. Returns the number found.</summary>
    public int GetPairLabels(string dataset, string split, ReadOnlySpan<ulong> indices, Span<PairLabel> pairs, Span<byte> foundMask)
    {
        CheckBuffer(pairs.Length, indices.Length, nameof(pairs));
        CheckMask(foundMask, indices.Length);
        Enter();
        var n = indices.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, n * PairLabel.Size));
        try
        {
            var source = new LabelKeys(PairKind, dataset, split, indices);
            var mask = foundMask[..MaskBytes(n)];
            mask.Clear();
            fixed (byte* data = buffer)
            fixed (byte* maskPtr = mask)
                ReadMeta(ref source, ReadMode.Rows, data, PairLabel.Size, maskPtr, n, "pair label");
            var found = 0;
            for (var i = 0; i < n; i++)
            {
                if (IsSet(mask, i))
                {
                    pairs[i] = DecodePair(buffer.AsSpan(i * PairLabel.Size, PairLabel.Size));
                    found++;
                }
                else
                {
                    pairs[i] = default;
                }
            }

            return found;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            Exit();
        }
    }

    /// <summary>Stores opaque label bytes (up to 1 MiB each) of items <c>(dataset, split, indices[i])</c>.</summary>
    public void PutOpaqueLabels(string dataset, string split, ReadOnlySpan<ulong> indices, IReadOnlyList<ReadOnlyMemory<byte>> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        CheckSameLength(indices.Length, labels.Count, nameof(labels));
        Enter();
        try
        {
            var source = new LabelKeys(OpaqueKind, dataset, split, indices);
            WriteVariable(ref source, labels, nameof(labels), countsLabels: true);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Reads opaque labels into <paramref name="labels"/> (null when not found); returns the number found.</summary>
    public int GetOpaqueLabels(string dataset, string split, ReadOnlySpan<ulong> indices, Span<byte[]?> labels, Span<byte> foundMask)
    {
        CheckBuffer(labels.Length, indices.Length, nameof(labels));
        CheckMask(foundMask, indices.Length);
        Enter();
        try
        {
            var source = new LabelKeys(OpaqueKind, dataset, split, indices);
            return ReadVariable(ref source, labels, foundMask, indices.Length, "opaque label");
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// Records which item key (custom or content) belongs to <c>(dataset, split, indices[i])</c>, so labels and
    /// dataset streaming work with those schemes.
    /// </summary>
    public void PutIndexKeys(string dataset, string split, ReadOnlySpan<ulong> indices, ItemKeyBatch keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Scheme == KeyScheme.Positional)
            throw new ArgumentException("index keys map positions to custom or content keys; positional keys need no mapping", nameof(keys));
        CheckSameLength(indices.Length, keys.Count, nameof(keys));
        Enter();
        var n = keys.Count;
        var offsets = ArrayPool<int>.Shared.Rent(n + 1);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, n * (1 + ItemKeyBatch.MaxCustomKeyBytes)));
        try
        {
            var position = 0;
            for (var i = 0; i < n; i++)
            {
                offsets[i] = position;
                buffer[position] = (byte)keys.Scheme;
                position += 1 + keys.WriteItemKey(i, buffer.AsSpan(position + 1));
            }

            offsets[n] = position;
            var source = new LabelKeys(IndexKeyKind, dataset, split, indices);
            fixed (byte* data = buffer)
            fixed (int* offsetPtr = offsets)
                WriteMeta(ref source, data, 0, offsetPtr, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<int>.Shared.Return(offsets);
            Exit();
        }
    }

    /// <summary>
    /// Reads the item keys recorded by <see cref="PutIndexKeys"/>; null when none is found. Entries not found are empty
    /// (custom) or zero (content) and have their found bit clear.
    /// </summary>
    public ItemKeyBatch? GetIndexKeys(string dataset, string split, ReadOnlySpan<ulong> indices, Span<byte> foundMask)
    {
        CheckMask(foundMask, indices.Length);
        var n = indices.Length;
        var values = new byte[]?[n];
        int found;
        Enter();
        try
        {
            var source = new LabelKeys(IndexKeyKind, dataset, split, indices);
            found = ReadVariable(ref source, values, foundMask, n, "index key");
        }
        finally
        {
            Exit();
        }

        if (found == 0)
            return null;
        KeyScheme? scheme = null;
        for (var i = 0; i < n; i++)
        {
            if (values[i] is not { Length: > 1 } v)
                continue;
            var s = (KeyScheme)v[0];
            if (scheme is not null && scheme != s)
                throw new InvalidDataException($"index keys of {dataset}/{split} mix {scheme} and {s} keys");
            scheme = s;
        }

        if (scheme == KeyScheme.Content)
        {
            var hashes = new byte[n * ContentHash.Size];
            for (var i = 0; i < n; i++)
                values[i]?.AsSpan(1).CopyTo(hashes.AsSpan(i * ContentHash.Size, ContentHash.Size));
            return ItemKeyBatch.ContentUnchecked(hashes);
        }

        var custom = new ReadOnlyMemory<byte>[n];
        for (var i = 0; i < n; i++)
            custom[i] = values[i] is { } v ? v.AsMemory(1) : ReadOnlyMemory<byte>.Empty;
        return ItemKeyBatch.CustomUnchecked(custom);
    }

    // ---------------------------------------------------------------- metadata

    /// <summary>Stores a small record (manifest, job state; up to 1 MiB) covered by checkpoints.</summary>
    public void PutMetadata(string key, ReadOnlySpan<byte> value)
    {
        if (value.Length > MaxValueBytes)
            throw new ArgumentException($"metadata values hold up to {MaxValueBytes} bytes (was {value.Length})", nameof(value));
        Enter();
        try
        {
            var source = new MetadataKey(key);
            var offsets = stackalloc int[2] { 0, value.Length };
            fixed (byte* data = value)
                WriteMeta(ref source, data, 0, offsets, 1);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>The metadata record, or null when there is none.</summary>
    /// <exception cref="StoreCorruptionException">The record failed its checksum.</exception>
    public byte[]? GetMetadata(string key)
    {
        Enter();
        try
        {
            var source = new MetadataKey(key);
            var values = new byte[]?[1];
            Span<byte> mask = stackalloc byte[1];
            ReadVariable(ref source, values, mask, 1, $"metadata '{key}'");
            return values[0];
        }
        finally
        {
            Exit();
        }
    }

    public void DeleteMetadata(string key)
    {
        Enter();
        try
        {
            var source = new MetadataKey(key);
            var part = _meta ??= new Part(_store.MetaStore);
            Span<byte> keyBuffer = stackalloc byte[MaxStoredKeyBytes];
            var length = source.Write(0, keyBuffer);
            _store.Gate.Enter();
            try
            {
                var uc = part.Get().UnsafeContext;
                uc.BeginUnsafe();
                try
                {
                    fixed (byte* k = keyBuffer)
                    {
                        var spanKey = SpanByte.FromPointer(k, length);
                        if (uc.Delete(ref spanKey).IsPending)
                            uc.CompletePending(wait: true);
                    }
                }
                finally
                {
                    uc.EndUnsafe();
                }
            }
            finally
            {
                _store.Gate.Exit();
            }
        }
        finally
        {
            Exit();
        }
    }

    // ---------------------------------------------------------------- batch engine

    /// <summary>Writes the stored key of entry i.</summary>
    private interface IKeySource
    {
        int Write(int index, scoped Span<byte> destination);
    }

    private readonly struct DataKeys(byte[] fingerprint, ItemKeyBatch keys) : IKeySource
    {
        public int Write(int index, scoped Span<byte> destination)
        {
            fingerprint.CopyTo(destination);
            destination[Fingerprint.Size] = (byte)keys.Scheme;
            return Fingerprint.Size + 1 + keys.WriteItemKey(index, destination[(Fingerprint.Size + 1)..]);
        }
    }

    /// <summary><c>kind ‖ len(dataset) ‖ dataset ‖ len(split) ‖ split ‖ index (u64 BE)</c>.</summary>
    private ref struct LabelKeys : IKeySource
    {
        private readonly ReadOnlySpan<ulong> _indices;
        private readonly Span<byte> _prefix;

        public LabelKeys(byte kind, string dataset, string split, ReadOnlySpan<ulong> indices)
        {
            _indices = indices;
            var prefix = new byte[1 + ItemKeyBatch.MaxPositionalPrefixBytes];
            prefix[0] = kind;
            var length = ItemKeyBatch.WritePositionalPrefix(dataset, split, prefix.AsSpan(1));
            _prefix = prefix.AsSpan(0, 1 + length);
        }

        public readonly int Write(int index, scoped Span<byte> destination)
        {
            _prefix.CopyTo(destination);
            BinaryPrimitives.WriteUInt64BigEndian(destination[_prefix.Length..], _indices[index]);
            return _prefix.Length + sizeof(ulong);
        }
    }

    private readonly struct MetadataKey : IKeySource
    {
        private readonly byte[] _key;

        public MetadataKey(string key)
        {
            ArgumentNullException.ThrowIfNull(key);
            var length = Encoding.UTF8.GetByteCount(key);
            if (length is < 1 or > MaxMetadataKeyBytes)
                throw new ArgumentException($"metadata keys have 1..{MaxMetadataKeyBytes} UTF-8 bytes (was {length})", nameof(key));
            _key = new byte[1 + length];
            _key[0] = MetadataKind;
            Encoding.UTF8.GetBytes(key, _key.AsSpan(1));
        }

        public int Write(int index, scoped Span<byte> destination)
        {
            _key.CopyTo(destination);
            return _key.Length;
        }
    }

    /// <summary>
    /// Reads entries (all of 0..count-1, or those in <paramref name="only"/>) and completes pending disk reads once.
    /// Returns (corrupt count, first corrupt entry).
    /// </summary>
    private static (int Corrupt, int First) RunReads<TKeys>(Part part, ref TKeys keys, ReadMode mode, byte* rows, int rowBytes, byte* mask, int count, ReadOnlySpan<int> only, bool all)
        where TKeys : IKeySource, allows ref struct
    {
        var session = part.Get();
        var functions = part.Functions;
        functions.BeginRead(mode, rows, rowBytes, mask, mode == ReadMode.Arrays ? count : 0);
        Span<byte> keyBuffer = stackalloc byte[MaxStoredKeyBytes];
        var input = default(StoreInput);
        var output = default(Empty);
        var uc = session.UnsafeContext;
        uc.BeginUnsafe();
        try
        {
            var pending = 0;
            fixed (byte* k = keyBuffer)
            {
                for (var j = 0; j < count; j++)
                {
                    var i = all ? j : only[j];
                    var key = SpanByte.FromPointer(k, keys.Write(i, keyBuffer));
                    input.Index = i;
                    if (uc.Read(ref key, ref input, ref output).IsPending)
                        pending++;
                }
            }

            // Pending reads write into the pinned caller buffer: always complete them before leaving.
            if (pending > 0)
                uc.CompletePending(wait: true);
        }
        finally
        {
            uc.EndUnsafe();
            functions.EndRead();
        }

        return (functions.CorruptCount, functions.FirstCorrupt);
    }

    /// <summary>Writes entries 0..count-1 (RMW: counts new keys). Data of entry i: fixed stride, or offsets[i]..offsets[i+1].</summary>
    private static void RunWrites<TKeys>(Part part, ref TKeys keys, byte* data, int stride, int* offsets, int count)
        where TKeys : IKeySource, allows ref struct
    {
        var session = part.Get();
        part.Functions.BeginWrite();
        Span<byte> keyBuffer = stackalloc byte[MaxStoredKeyBytes];
        var input = default(StoreInput);
        var output = default(Empty);
        var uc = session.UnsafeContext;
        uc.BeginUnsafe();
        try
        {
            var pending = 0;
            fixed (byte* k = keyBuffer)
            {
                for (var i = 0; i < count; i++)
                {
                    var key = SpanByte.FromPointer(k, keys.Write(i, keyBuffer));
                    if (offsets is null)
                    {
                        input.Source = data + ((long)i * stride);
                        input.Length = stride;
                    }
                    else
                    {
                        input.Source = data + offsets[i];
                        input.Length = offsets[i + 1] - offsets[i];
                    }

                    input.Index = i;
                    if (uc.RMW(ref key, ref input, ref output).IsPending)
                        pending++;
                }
            }

            if (pending > 0)
                uc.CompletePending(wait: true);
        }
        finally
        {
            uc.EndUnsafe();
        }
    }

    private void WriteMeta<TKeys>(ref TKeys keys, byte* data, int stride, int* offsets, int count, bool labels = false)
        where TKeys : IKeySource, allows ref struct
    {
        var part = _meta ??= new Part(_store.MetaStore);
        _store.Gate.Enter();
        try
        {
            RunWrites(part, ref keys, data, stride, offsets, count);
            if (labels)
                _store.AddLabelItems(part.Functions.Inserted);
        }
        finally
        {
            _store.Gate.Exit();
        }
    }

    private void ReadMeta<TKeys>(ref TKeys keys, ReadMode mode, byte* rows, int rowBytes, byte* mask, int count, string what)
        where TKeys : IKeySource, allows ref struct
    {
        var part = _meta ??= new Part(_store.MetaStore);
        var (corrupt, first) = RunReads(part, ref keys, mode, rows, rowBytes, mask, count, default, all: true);
        if (corrupt > 0)
        {
            throw new StoreCorruptionException($"{corrupt} stored {what}(s) failed their checksum (first: entry {first}); no data was returned for them")
            {
                ItemIndex = first,
                CorruptCount = corrupt,
            };
        }
    }

    private void WriteVariable<TKeys>(ref TKeys keys, IReadOnlyList<ReadOnlyMemory<byte>> values, string parameter, bool countsLabels)
        where TKeys : IKeySource, allows ref struct
    {
        var n = values.Count;
        long total = 0;
        for (var i = 0; i < n; i++)
        {
            var length = values[i].Length;
            if (length > MaxValueBytes)
                throw new ArgumentException($"entry {i} has {length} bytes; values hold up to {MaxValueBytes} bytes", parameter);
            total += length;
        }

        if (total > int.MaxValue / 2)
            throw new ArgumentException($"batch holds {total} bytes; split it", parameter);
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(1, total));
        var offsets = ArrayPool<int>.Shared.Rent(n + 1);
        try
        {
            var position = 0;
            for (var i = 0; i < n; i++)
            {
                offsets[i] = position;
                values[i].Span.CopyTo(buffer.AsSpan(position));
                position += values[i].Length;
            }

            offsets[n] = position;
            fixed (byte* data = buffer)
            fixed (int* offsetPtr = offsets)
                WriteMeta(ref keys, data, 0, offsetPtr, n, countsLabels);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<int>.Shared.Return(offsets);
        }
    }

    private int ReadVariable<TKeys>(ref TKeys keys, Span<byte[]?> values, Span<byte> foundMask, int n, string what)
        where TKeys : IKeySource, allows ref struct
    {
        var mask = foundMask[..MaskBytes(n)];
        mask.Clear();
        fixed (byte* maskPtr = mask)
            ReadMeta(ref keys, ReadMode.Arrays, null, 0, maskPtr, n, what);
        var arrays = _meta!.Functions.Arrays;
        for (var i = 0; i < n; i++)
        {
            values[i] = arrays[i];
            arrays[i] = null;
        }

        return CountBits(mask, n);
    }

    // ---------------------------------------------------------------- helpers

    private Part DataPart(NamespaceState state) =>
        state.StorageTier == Tier.Disk
            ? _disk ??= new Part(_store.DiskStore)
            : _cpu ??= new Part(_store.CpuStore);

    /// <summary>Slot-map hash and checksum seed of each stored key (Gpu tier).</summary>
    private void HashKeys(ref DataKeys source, int n)
    {
        Grow(ref _hashes, n);
        Grow(ref _seeds, n);
        Span<byte> keyBuffer = stackalloc byte[MaxStoredKeyBytes];
        for (var i = 0; i < n; i++)
        {
            var key = keyBuffer[..source.Write(i, keyBuffer)];
            _hashes[i] = XxHash128.HashToUInt128(key);
            _seeds[i] = Checksums.Seed(key);
        }
    }

    private Span<int> CollectUnset(ReadOnlySpan<byte> mask, int n)
    {
        var list = Grow(ref _indices, n);
        var count = 0;
        for (var i = 0; i < n; i++)
        {
            if (!IsSet(mask, i))
                list[count++] = i;
        }

        return list[..count];
    }

    /// <summary>Filters <paramref name="candidates"/> (a prefix of <see cref="_indices"/>) in place to those now found.</summary>
    private static Span<int> CollectSet(ReadOnlySpan<byte> mask, Span<int> candidates)
    {
        var count = 0;
        for (var j = 0; j < candidates.Length; j++)
        {
            if (IsSet(mask, candidates[j]))
                candidates[count++] = candidates[j];
        }

        return candidates[..count];
    }

    private static Span<T> Grow<T>(ref T[] array, int n)
    {
        if (array.Length < n)
            array = new T[Math.Max(n, Math.Max(256, array.Length * 2))];
        return array.AsSpan(0, n);
    }

    private static int ZeroMissingRows(Span<byte> rows, ReadOnlySpan<byte> mask, int n, int rowBytes)
    {
        var found = 0;
        for (var i = 0; i < n; i++)
        {
            if (IsSet(mask, i))
                found++;
            else
                rows.Slice(i * rowBytes, rowBytes).Clear();
        }

        return found;
    }

    private static bool IsSet(ReadOnlySpan<byte> mask, int i) => (mask[i >> 3] & (1 << (i & 7))) != 0;

    private static int CountBits(ReadOnlySpan<byte> mask, int n)
    {
        var count = 0;
        for (var i = 0; i < n; i++)
        {
            if (IsSet(mask, i))
                count++;
        }

        return count;
    }

    private static int MaskBytes(int n) => (n + 7) >> 3;

    private static void CheckMask(Span<byte> mask, int n)
    {
        if (mask.Length < MaskBytes(n))
            throw new ArgumentException($"foundMask holds {mask.Length} bytes; {MaskBytes(n)} needed for {n} keys", nameof(mask));
    }

    private static void CheckBuffer(long actual, long needed, string name)
    {
        if (actual < needed)
            throw new ArgumentException($"{name} holds {actual} elements; {needed} needed", name);
    }

    private static void CheckSameLength(int indices, int values, string name)
    {
        if (indices != values)
            throw new ArgumentException($"{name} has {values} entries; indices has {indices}", name);
    }

    private static void EncodePair(PairLabel pair, Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, pair.A);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], pair.B);
        BinaryPrimitives.WriteSingleLittleEndian(destination[16..], pair.Score);
        BinaryPrimitives.WriteInt64LittleEndian(destination[20..], pair.Subgroup);
    }

    private static PairLabel DecodePair(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source),
        BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
        BinaryPrimitives.ReadSingleLittleEndian(source[16..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[20..]));

    private static StoreCorruptionException Corruption(NamespaceState state, ItemKeyBatch keys, int first, int count) =>
        new($"{count} stored embedding(s) of namespace {state.Spec.Encoder} ({state.Spec.Fingerprint}) failed their checksum; " +
            $"first: entry {first}, {keys.Describe(first)}. No data was returned for them; re-encode or drop the namespace.")
        {
            ItemIndex = first,
            CorruptCount = count,
        };

    private void Enter()
    {
        _store.ThrowIfDisposed();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("a StoreSession is used by one thread at a time; create one session per worker");
    }

    private void Exit() => Volatile.Write(ref _busy, 0);

    internal void DisposeFasterSessions()
    {
        _cpu?.Dispose();
        _disk?.Dispose();
        _meta?.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _store.Forget(this);
        DisposeFasterSessions();
    }
}
