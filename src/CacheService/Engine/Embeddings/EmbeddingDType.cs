using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace EmbedCache.Engine.Embeddings;

/// <summary>Element type of stored and transmitted embeddings (per encoder).</summary>
public enum EmbeddingDType
{
    Float32 = 1,
    /// <summary>IEEE 754 binary16.</summary>
    Float16 = 2,
    /// <summary>The upper 16 bits of a float32, rounded to nearest even.</summary>
    BFloat16 = 3,
}

/// <summary>Conversions between float32 (what encoders produce) and the stored element types.</summary>
public static class EmbeddingDTypes
{
    public static int ElementSize(this EmbeddingDType dtype) => dtype switch
    {
        EmbeddingDType.Float32 => 4,
        EmbeddingDType.Float16 or EmbeddingDType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Bytes of one stored row of <paramref name="dim"/> elements.</summary>
    public static int RowBytes(this EmbeddingDType dtype, int dim) => checked(dim * dtype.ElementSize());

    /// <summary>Writes <paramref name="source"/> as little-endian elements of <paramref name="dtype"/>.</summary>
    public static void FromFloat32(ReadOnlySpan<float> source, EmbeddingDType dtype, Span<byte> destination)
    {
        var needed = source.Length * dtype.ElementSize();
        if (destination.Length < needed)
            throw new ArgumentException($"destination holds {destination.Length} bytes, {needed} needed", nameof(destination));

        switch (dtype)
        {
            case EmbeddingDType.Float32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                if (!BitConverter.IsLittleEndian)
                    ReverseEndianness32(destination[..needed]);
                break;
            case EmbeddingDType.Float16:
                TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<byte, Half>(destination[..needed]));
                break;
            case EmbeddingDType.BFloat16:
                var dst = MemoryMarshal.Cast<byte, ushort>(destination[..needed]);
                for (var i = 0; i < source.Length; i++)
                    dst[i] = ToBFloat16(source[i]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }

    /// <summary>Reads little-endian elements of <paramref name="dtype"/> into float32.</summary>
    public static void ToFloat32(ReadOnlySpan<byte> source, EmbeddingDType dtype, Span<float> destination)
    {
        var count = source.Length / dtype.ElementSize();
        if (destination.Length < count)
            throw new ArgumentException($"destination holds {destination.Length} floats, {count} needed", nameof(destination));

        switch (dtype)
        {
            case EmbeddingDType.Float32:
                source[..(count * 4)].CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case EmbeddingDType.Float16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source[..(count * 2)]), destination);
                break;
            case EmbeddingDType.BFloat16:
                var src = MemoryMarshal.Cast<byte, ushort>(source[..(count * 2)]);
                var bits = MemoryMarshal.Cast<float, uint>(destination);
                for (var i = 0; i < count; i++)
                    bits[i] = (uint)src[i] << 16;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype");
        }
    }

    /// <summary>float32 → bfloat16 with round-to-nearest-even; NaN stays NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7fffffff) > 0x7f800000)
            return (ushort)((bits >> 16) | 0x40); // quiet NaN
        var rounding = 0x7fffu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    private static void ReverseEndianness32(Span<byte> bytes)
    {
        var words = MemoryMarshal.Cast<byte, uint>(bytes);
        BinaryPrimitives.ReverseEndianness(words, words);
    }
}
