using System.Buffers.Binary;
using System.IO.Hashing;

namespace EmbedCache.Engine.Keys;

/// <summary>
/// The content key of an item: XxHash128 of its feature bytes, stable across processes and machines.
/// The 16-byte form is big-endian, the same order as the hex form of the value.
/// </summary>
public static class ContentHash
{
    public const int Size = 16;

    public static UInt128 Compute(ReadOnlySpan<byte> featureBytes) => XxHash128.HashToUInt128(featureBytes);

    public static void Compute(ReadOnlySpan<byte> featureBytes, Span<byte> destination16)
    {
        if (destination16.Length < Size)
            throw new ArgumentException($"destination holds {destination16.Length} bytes, {Size} needed", nameof(destination16));
        Write(XxHash128.HashToUInt128(featureBytes), destination16);
    }

    /// <summary>Writes a content key's 16-byte (big-endian) form.</summary>
    public static void Write(UInt128 hash, Span<byte> destination16) => BinaryPrimitives.WriteUInt128BigEndian(destination16, hash);
}
