using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>A pair label: items A and B, their score, and the subgroup they belong to.</summary>
public readonly record struct PairLabel(ulong A, ulong B, float Score, long Subgroup)
{
    /// <summary>Bytes of a stored pair: A, B (u64 LE), score (f32 LE), subgroup (i64 LE).</summary>
    internal const int Size = 8 + 8 + 4 + 8;

    internal void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, A);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], B);
        BinaryPrimitives.WriteSingleLittleEndian(destination[16..], Score);
        BinaryPrimitives.WriteInt64LittleEndian(destination[20..], Subgroup);
    }

    internal static PairLabel Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source),
        BinaryPrimitives.ReadUInt64LittleEndian(source[8..]),
        BinaryPrimitives.ReadSingleLittleEndian(source[16..]),
        BinaryPrimitives.ReadInt64LittleEndian(source[20..]));
}

/// <summary>
/// What the cache keeps about dataset items under <c>(dataset, split, index)</c>, Quaterion's label cache: group
/// (class) ids, pair labels, and the item key (custom or content) of each index. Kept as records in the store's
/// metadata, under <c>kind ‖ len(dataset) ‖ dataset ‖ len(split) ‖ split</c> and the index; the kinds and the value
/// encodings are those of the first stored format, so existing SaveDirs read the same.
/// </summary>
public static class DatasetLabels
{
    private const byte GroupKind = (byte)'G';
    private const byte PairKind = (byte)'P';
    private const byte IndexKeyKind = (byte)'I';

    /// <summary>Stores group (class) ids of items <c>(dataset, split, indices[i])</c>.</summary>
    public static void PutGroups(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, ReadOnlySpan<long> groupIds)
    {
        ArgumentNullException.ThrowIfNull(session);
        CheckSameLength(indices.Length, groupIds.Length, nameof(groupIds));
        session.PutRecords(Keys(GroupKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]), MemoryMarshal.AsBytes(groupIds), sizeof(long), counted: true);
    }

    /// <summary>Reads group ids; sets found bits; not-found entries are 0. Returns the number found.</summary>
    public static int GetGroups(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, Span<long> groupIds, Span<byte> foundMask)
    {
        ArgumentNullException.ThrowIfNull(session);
        return session.GetRecords(Keys(GroupKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]),
            MemoryMarshal.AsBytes(groupIds), sizeof(long), foundMask, "group label");
    }

    /// <summary>Stores pair labels of items <c>(dataset, split, indices[i])</c>.</summary>
    public static void PutPairs(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, ReadOnlySpan<PairLabel> pairs)
    {
        ArgumentNullException.ThrowIfNull(session);
        CheckSameLength(indices.Length, pairs.Length, nameof(pairs));
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, pairs.Length * PairLabel.Size));
        try
        {
            for (var i = 0; i < pairs.Length; i++)
                pairs[i].Write(buffer.AsSpan(i * PairLabel.Size, PairLabel.Size));
            session.PutRecords(Keys(PairKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]),
                buffer.AsSpan(0, pairs.Length * PairLabel.Size), PairLabel.Size, counted: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads pair labels; sets found bits; not-found entries are default. Returns the number found.</summary>
    public static int GetPairs(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, Span<PairLabel> pairs, Span<byte> foundMask)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (pairs.Length < indices.Length)
            throw new ArgumentException($"pairs holds {pairs.Length} entries; {indices.Length} needed", nameof(pairs));
        var n = indices.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, n * PairLabel.Size));
        try
        {
            var found = session.GetRecords(Keys(PairKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]),
                buffer.AsSpan(0, Math.Max(1, n * PairLabel.Size)), PairLabel.Size, foundMask, "pair label");
            for (var i = 0; i < n; i++)
                pairs[i] = FoundMask.IsSet(foundMask, i) ? PairLabel.Read(buffer.AsSpan(i * PairLabel.Size, PairLabel.Size)) : default;
            return found;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Records which item key (custom or content) belongs to <c>(dataset, split, indices[i])</c>, so labels and
    /// dataset streaming work with those schemes. Stored as <c>scheme byte ‖ item key</c>.
    /// </summary>
    public static void PutIndexKeys(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, ItemKeyBatch keys)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Scheme == KeyScheme.Positional)
            throw new ArgumentException("index keys map positions to custom or content keys; positional keys need no mapping", nameof(keys));
        CheckSameLength(indices.Length, keys.Count, nameof(keys));
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
            session.PutRecords(Keys(IndexKeyKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]),
                buffer.AsSpan(0, position), offsets.AsSpan(0, n + 1));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<int>.Shared.Return(offsets);
        }
    }

    /// <summary>
    /// Reads the item keys recorded by <see cref="PutIndexKeys"/>; null when none is found. Entries not found are empty
    /// (custom) or zero (content) and have their found bit clear.
    /// </summary>
    public static ItemKeyBatch? GetIndexKeys(StoreSession session, string dataset, string split, ReadOnlySpan<ulong> indices, Span<byte> foundMask)
    {
        ArgumentNullException.ThrowIfNull(session);
        var n = indices.Length;
        var values = new byte[]?[n];
        var found = session.GetRecords(Keys(IndexKeyKind, dataset, split, indices, stackalloc byte[RecordKeys.MaxPrefixBytes]), values, foundMask, "index key");
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

    /// <summary>The record keys of <paramref name="indices"/> of one kind of label of a split; the prefix is built in <paramref name="prefix"/>.</summary>
    private static RecordKeys Keys(byte kind, string dataset, string split, ReadOnlySpan<ulong> indices, Span<byte> prefix)
    {
        prefix[0] = kind;
        var length = ItemKeyBatch.WritePositionalPrefix(dataset, split, prefix[1..]);
        return new RecordKeys(prefix[..(1 + length)], indices);
    }

    private static void CheckSameLength(int indices, int values, string name)
    {
        if (indices != values)
            throw new ArgumentException($"{name} has {values} entries; indices has {indices}", name);
    }
}
