using System.Buffers.Binary;
using System.Text;

namespace EmbedCache.Engine.Keys;

/// <summary>
/// A batch of item keys of one scheme. Built once per request from protobuf fields; the store writes
/// each key straight into a stack buffer, so there is no allocation per key.
/// </summary>
/// <remarks>
/// Encodings (the part after the encoder fingerprint and the scheme byte in a stored key):
/// positional = <c>len(dataset) ‖ dataset ‖ len(split) ‖ split ‖ index (u64 big-endian)</c> (UTF-8, 1..255 and
/// 0..255 bytes); custom = the bytes as given; content = the 16 hash bytes.
/// </remarks>
public sealed class ItemKeyBatch
{
    /// <summary>Longest accepted custom key, in bytes.</summary>
    public const int MaxCustomKeyBytes = 256;

    /// <summary>Longest accepted dataset or split name, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>Upper bound of <see cref="WriteItemKey"/>'s output for any batch.</summary>
    internal const int MaxItemKeyBytes = 2 + (2 * MaxNameBytes) + sizeof(ulong);

    /// <summary>Upper bound of a positional prefix (<c>len ‖ dataset ‖ len ‖ split</c>).</summary>
    internal const int MaxPositionalPrefixBytes = 2 + (2 * MaxNameBytes);

    private readonly byte[]? _positionalPrefix;
    private readonly ulong[]? _indices;
    private readonly IReadOnlyList<ReadOnlyMemory<byte>>? _custom;
    private readonly byte[]? _hashes;

    private ItemKeyBatch(KeyScheme scheme, int count, byte[]? positionalPrefix, ulong[]? indices,
        IReadOnlyList<ReadOnlyMemory<byte>>? custom, byte[]? hashes)
    {
        Scheme = scheme;
        Count = count;
        _positionalPrefix = positionalPrefix;
        _indices = indices;
        _custom = custom;
        _hashes = hashes;
    }

    public int Count { get; }

    public KeyScheme Scheme { get; }

    /// <summary>Keys <c>(dataset, split, indices[i])</c>. Names are UTF-8, dataset 1..255 bytes, split 0..255 bytes.</summary>
    public static ItemKeyBatch Positional(string dataset, string split, ReadOnlySpan<ulong> indices)
    {
        Span<byte> prefix = stackalloc byte[MaxPositionalPrefixBytes];
        var length = WritePositionalPrefix(dataset, split, prefix);
        return new ItemKeyBatch(KeyScheme.Positional, indices.Length, prefix[..length].ToArray(), indices.ToArray(), null, null);
    }

    /// <summary>
    /// Keys chosen by the client, 1..256 bytes each. The list is kept, not copied: do not change it while the
    /// batch is in use.
    /// </summary>
    /// <exception cref="ArgumentException">A key is empty or longer than 256 bytes; the message names its index.</exception>
    public static ItemKeyBatch Custom(IReadOnlyList<ReadOnlyMemory<byte>> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        for (var i = 0; i < keys.Count; i++)
        {
            var length = keys[i].Length;
            if (length is < 1 or > MaxCustomKeyBytes)
                throw new ArgumentException($"custom key {i} has {length} bytes; keys must have 1..{MaxCustomKeyBytes} bytes", nameof(keys));
        }

        return new ItemKeyBatch(KeyScheme.Custom, keys.Count, null, null, keys, null);
    }

    /// <summary>Content keys: <paramref name="hashes"/> holds N × 16 bytes (see <see cref="ContentHash"/>).</summary>
    public static ItemKeyBatch Content(ReadOnlySpan<byte> hashes)
    {
        if (hashes.Length % ContentHash.Size != 0)
            throw new ArgumentException($"content hashes must be a multiple of {ContentHash.Size} bytes (was {hashes.Length})", nameof(hashes));
        return new ItemKeyBatch(KeyScheme.Content, hashes.Length / ContentHash.Size, null, null, null, hashes.ToArray());
    }

    /// <summary>Custom keys read back from the store; entries that were not found are empty.</summary>
    internal static ItemKeyBatch CustomUnchecked(ReadOnlyMemory<byte>[] keys) =>
        new(KeyScheme.Custom, keys.Length, null, null, keys, null);

    /// <summary>Content keys read back from the store; entries that were not found are zero.</summary>
    internal static ItemKeyBatch ContentUnchecked(byte[] hashes) =>
        new(KeyScheme.Content, hashes.Length / ContentHash.Size, null, null, null, hashes);

    /// <summary>The custom key bytes of entry <paramref name="index"/> (custom batches only).</summary>
    public ReadOnlyMemory<byte> CustomKey(int index) =>
        _custom is not null ? _custom[index] : throw new InvalidOperationException($"a {Scheme} batch has no custom keys");

    /// <summary>The 16 hash bytes of entry <paramref name="index"/> (content batches only).</summary>
    public ReadOnlySpan<byte> ContentKey(int index) =>
        _hashes is not null
            ? _hashes.AsSpan(index * ContentHash.Size, ContentHash.Size)
            : throw new InvalidOperationException($"a {Scheme} batch has no content keys");

    /// <summary>Writes the encoded item key of entry <paramref name="index"/>; returns its length.</summary>
    internal int WriteItemKey(int index, Span<byte> destination)
    {
        switch (Scheme)
        {
            case KeyScheme.Positional:
                var prefix = _positionalPrefix!;
                prefix.CopyTo(destination);
                BinaryPrimitives.WriteUInt64BigEndian(destination[prefix.Length..], _indices![index]);
                return prefix.Length + sizeof(ulong);
            case KeyScheme.Custom:
                var key = _custom![index].Span;
                key.CopyTo(destination);
                return key.Length;
            default:
                _hashes.AsSpan(index * ContentHash.Size, ContentHash.Size).CopyTo(destination);
                return ContentHash.Size;
        }
    }

    /// <summary>A short human-readable form of entry <paramref name="index"/>, for error messages.</summary>
    public string Describe(int index)
    {
        switch (Scheme)
        {
            case KeyScheme.Positional:
                var prefix = _positionalPrefix!;
                var datasetLength = prefix[0];
                var dataset = Encoding.UTF8.GetString(prefix, 1, datasetLength);
                var split = Encoding.UTF8.GetString(prefix, 2 + datasetLength, prefix[1 + datasetLength]);
                return $"positional ({dataset}, {split}, {_indices![index]})";
            case KeyScheme.Custom:
                var key = _custom![index].Span;
                var shown = key.Length > 32 ? key[..32] : key;
                return $"custom 0x{Convert.ToHexStringLower(shown)}{(key.Length > 32 ? "…" : "")} ({key.Length} bytes)";
            default:
                return $"content {Convert.ToHexStringLower(_hashes.AsSpan(index * ContentHash.Size, ContentHash.Size))}";
        }
    }

    /// <summary>Writes <c>len(dataset) ‖ dataset ‖ len(split) ‖ split</c>; returns its length.</summary>
    internal static int WritePositionalPrefix(string dataset, string split, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(split);
        var datasetLength = Encoding.UTF8.GetByteCount(dataset);
        if (datasetLength is < 1 or > MaxNameBytes)
            throw new ArgumentException($"dataset name must have 1..{MaxNameBytes} UTF-8 bytes (was {datasetLength})", nameof(dataset));
        var splitLength = Encoding.UTF8.GetByteCount(split);
        if (splitLength > MaxNameBytes)
            throw new ArgumentException($"split name must have 0..{MaxNameBytes} UTF-8 bytes (was {splitLength})", nameof(split));

        destination[0] = (byte)datasetLength;
        Encoding.UTF8.GetBytes(dataset, destination[1..]);
        destination[1 + datasetLength] = (byte)splitLength;
        Encoding.UTF8.GetBytes(split, destination[(2 + datasetLength)..]);
        return 2 + datasetLength + splitLength;
    }
}
