using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace EmbedCache.Engine.Embeddings;

/// <summary>
/// 128-bit identity of an encoder's output space (kind, architecture, weights, preprocessing,
/// dim, dtype). Stored keys are prefixed with it, so a changed model gets a new namespace and a
/// stale embedding can never be served. Stable across processes and machines (XxHash128).
/// </summary>
public readonly record struct Fingerprint(UInt128 Value)
{
    public const int Size = 16;

    /// <summary>
    /// Hashes a canonical description (UTF-8) and extra content such as a content hash of weight
    /// or vocabulary files. Each part is length-prefixed, so parts cannot run into each other.
    /// </summary>
    public static Fingerprint Compute(string canonicalDescription, params ReadOnlyMemory<byte>[] content)
    {
        var hash = new XxHash128();
        Span<byte> len = stackalloc byte[8];
        AppendPart(hash, Encoding.UTF8.GetBytes(canonicalDescription), len);
        foreach (var part in content)
            AppendPart(hash, part.Span, len);
        return new Fingerprint(hash.GetCurrentHashAsUInt128());
    }

    private static void AppendPart(XxHash128 hash, ReadOnlySpan<byte> part, Span<byte> scratch)
    {
        BinaryPrimitives.WriteInt64LittleEndian(scratch, part.Length);
        hash.Append(scratch);
        hash.Append(part);
    }

    /// <summary>Big-endian bytes, the same order as <see cref="ToString"/>.</summary>
    public void WriteTo(Span<byte> destination) => BinaryPrimitives.WriteUInt128BigEndian(destination, Value);

    public byte[] ToBytes()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>32 lower-case hex digits.</summary>
    public override string ToString() => Value.ToString("x32", CultureInfo.InvariantCulture);

    public static bool TryParse(string? text, out Fingerprint fingerprint)
    {
        fingerprint = default;
        if (text is not { Length: 32 } || !UInt128.TryParse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var v))
            return false;
        fingerprint = new Fingerprint(v);
        return true;
    }
}
