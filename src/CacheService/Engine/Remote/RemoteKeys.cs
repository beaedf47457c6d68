using System.IO.Hashing;
using System.Text;

namespace EmbedCache.Engine.Remote;

/// <summary>
/// How the store's keys are named on the cluster. An embedding row or a label record is
/// <c>{prefix:kind bucket} ‖ stored key</c>: the part in braces is the Redis hash tag, so the cluster places a key by
/// its tag alone. Its bucket is one of 256, taken from a hash of the stored key: rows spread over every node, while a
/// batch's keys fall into at most 256 slots, and those that share one are read with one MGET. Manifests and job
/// records are small and named: <c>{prefix:m}dataset␟split</c>, <c>{prefix:j:id}…</c>.
/// </summary>
public sealed class RemoteKeys(string prefix)
{
    private const string Hex = "0123456789abcdef";
    private readonly byte[][] _rowTags = Tags(prefix, 'e');
    private readonly byte[][] _recordTags = Tags(prefix, 'r');

    public string Prefix { get; } = prefix;

    /// <summary>The key of an embedding row; <paramref name="bucket"/> is any byte of a hash of the stored key.</summary>
    public byte[] Row(ReadOnlySpan<byte> storedKey, byte bucket) => Join(_rowTags[bucket], storedKey);

    /// <summary>The key of a label record (its bucket is hashed from the record key here).</summary>
    public byte[] Record(ReadOnlySpan<byte> recordKey) => Join(_recordTags[(byte)XxHash3.HashToUInt64(recordKey)], recordKey);

    /// <summary>The hash holding a split's manifest.</summary>
    public string Manifest(string dataset, string split) => $"{{{Prefix}:m}}{dataset}\u001f{split}";

    /// <summary>The set of cluster prewarm jobs.</summary>
    public string JobIndex => $"{{{Prefix}:jobs}}";

    /// <summary>A key of cluster job <paramref name="id"/> (every key of one job shares its hash slot).</summary>
    public string Job(string id, string part = "") => $"{{{Prefix}:j:{id}}}{part}";

    private static byte[] Join(byte[] tag, ReadOnlySpan<byte> key)
    {
        var bytes = new byte[tag.Length + key.Length];
        tag.CopyTo(bytes, 0);
        key.CopyTo(bytes.AsSpan(tag.Length));
        return bytes;
    }

    private static byte[][] Tags(string prefix, char kind)
    {
        var tags = new byte[256][];
        for (var b = 0; b < 256; b++)
            tags[b] = Encoding.ASCII.GetBytes($"{{{prefix}:{kind}{Hex[b >> 4]}{Hex[b & 15]}}}");
        return tags;
    }

    /// <summary>The first bytes of a 128-bit key hash as a bucket.</summary>
    public static byte Bucket(UInt128 hash) => (byte)hash;
}
