using System.Buffers.Binary;
using System.Text;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Keys;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The layouts of the keys FASTER stores, and their sizes. An embedding's key is
/// <c>fingerprint ‖ scheme byte ‖ item key</c> (the data stores); a record's is <c>prefix ‖ id (u64 BE)</c> and a
/// named metadata record's <c>'M' ‖ UTF-8 name</c> (the meta store). What a record prefix means is up to its writer
/// (the caching layer keeps labels under <c>kind ‖ dataset ‖ split</c> prefixes); the store only keeps them apart
/// from its named metadata.
/// </summary>
internal static class StoredKeys
{
    /// <summary>Longest stored key: fingerprint, scheme byte, item key (data); record prefix and id (meta).</summary>
    public const int MaxBytes = Fingerprint.Size + 1 + ItemKeyBatch.MaxItemKeyBytes;

    /// <summary>First byte of every named metadata record; no record prefix may start with it.</summary>
    public const byte MetadataKind = (byte)'M';
}

/// <summary>Writes the stored key of entry i of a batch.</summary>
internal interface IKeySource
{
    int Write(int index, scoped Span<byte> destination);
}

/// <summary>The stored keys of a batch of embeddings: <c>fingerprint ‖ scheme ‖ item key</c>.</summary>
internal readonly struct DataKeys(byte[] fingerprint, ItemKeyBatch keys) : IKeySource
{
    public int Write(int index, scoped Span<byte> destination)
    {
        fingerprint.CopyTo(destination);
        destination[Fingerprint.Size] = (byte)keys.Scheme;
        return Fingerprint.Size + 1 + keys.WriteItemKey(index, destination[(Fingerprint.Size + 1)..]);
    }
}

/// <summary>
/// The keys of a batch of records in the store's metadata: one prefix chosen by the writer, then each record's id as
/// a big-endian u64 (so the records of one prefix sort by id).
/// </summary>
public readonly ref struct RecordKeys : IKeySource
{
    /// <summary>Longest prefix.</summary>
    public const int MaxPrefixBytes = StoredKeys.MaxBytes - sizeof(ulong);

    private readonly ReadOnlySpan<byte> _prefix;

    /// <param name="prefix">1..<see cref="MaxPrefixBytes"/> bytes; its first byte must not be 'M' (named metadata).</param>
    /// <param name="ids">One record per id.</param>
    public RecordKeys(ReadOnlySpan<byte> prefix, ReadOnlySpan<ulong> ids)
    {
        // The prefixes come from the caching layer's own code, never from a request: a bad one is a bug here.
        if (prefix.Length is < 1 or > MaxPrefixBytes)
            throw new ArgumentException($"record prefixes have 1..{MaxPrefixBytes} bytes (was {prefix.Length})", nameof(prefix));
        if (prefix[0] == StoredKeys.MetadataKind)
            throw new ArgumentException("record prefixes must not start with 'M', the first byte of named metadata", nameof(prefix));
        _prefix = prefix;
        Ids = ids;
    }

    public ReadOnlySpan<ulong> Ids { get; }

    public int Count => Ids.Length;

    int IKeySource.Write(int index, scoped Span<byte> destination)
    {
        _prefix.CopyTo(destination);
        BinaryPrimitives.WriteUInt64BigEndian(destination[_prefix.Length..], Ids[index]);
        return _prefix.Length + sizeof(ulong);
    }
}

/// <summary>The key of a named metadata record: <c>'M' ‖ UTF-8 name</c>.</summary>
internal readonly struct MetadataKey : IKeySource
{
    /// <summary>
    /// Longest name, in UTF-8 bytes: as long as a stored key allows, so that every name the engine makes of request
    /// fields (a split manifest's, of two names of up to 255 bytes each) fits.
    /// </summary>
    public const int MaxNameBytes = StoredKeys.MaxBytes - 1;

    private readonly byte[] _key;

    public MetadataKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var length = Encoding.UTF8.GetByteCount(name);
        if (length is < 1 or > MaxNameBytes)
            throw new ArgumentException($"metadata keys have 1..{MaxNameBytes} UTF-8 bytes (was {length})", nameof(name));
        _key = new byte[1 + length];
        _key[0] = StoredKeys.MetadataKind;
        Encoding.UTF8.GetBytes(name, _key.AsSpan(1));
    }

    public int Write(int index, scoped Span<byte> destination)
    {
        _key.CopyTo(destination);
        return _key.Length;
    }
}
