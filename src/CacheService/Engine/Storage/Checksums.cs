using System.Buffers.Binary;
using System.IO.Hashing;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Every stored value is <c>[u32 checksum][data]</c>; the checksum is XxHash3 of the data seeded with XxHash3 of the
/// full stored key, so it covers the bytes and binds them to their key: a value moved under another key fails too.
/// </summary>
internal static class Checksums
{
    public const int Size = sizeof(uint);

    public static ulong Seed(ReadOnlySpan<byte> storedKey) => XxHash3.HashToUInt64(storedKey);

    public static uint Compute(ulong seed, ReadOnlySpan<byte> data) => (uint)XxHash3.HashToUInt64(data, unchecked((long)seed));

    public static uint Compute(ReadOnlySpan<byte> storedKey, ReadOnlySpan<byte> data) => Compute(Seed(storedKey), data);

    /// <summary>True when <paramref name="payload"/> (<c>[checksum][data]</c>) is intact for <paramref name="storedKey"/>.</summary>
    public static bool Verify(ReadOnlySpan<byte> storedKey, ReadOnlySpan<byte> payload) =>
        payload.Length >= Size && BinaryPrimitives.ReadUInt32LittleEndian(payload) == Compute(storedKey, payload[Size..]);

    /// <summary>True when <paramref name="payload"/> (<c>[checksum][data]</c>) is intact for the key of <paramref name="seed"/>.</summary>
    public static bool Verify(ulong seed, ReadOnlySpan<byte> payload) =>
        payload.Length >= Size && BinaryPrimitives.ReadUInt32LittleEndian(payload) == Compute(seed, payload[Size..]);

    /// <summary>Writes the checksum of <paramref name="data"/> for the key of <paramref name="seed"/> to the start of <paramref name="destination"/>.</summary>
    public static void Write(ulong seed, ReadOnlySpan<byte> data, Span<byte> destination) =>
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Compute(seed, data));
}
