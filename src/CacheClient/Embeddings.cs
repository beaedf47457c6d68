using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using EmbedCache.Contract.V1;
using Google.Protobuf;

namespace EmbedCache.CacheClient;

/// <summary>Reading the packed embedding buffers of responses.</summary>
public static class Embeddings
{
    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Float16 or DType.Bfloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Whether row <paramref name="index"/> of a found mask is set.</summary>
    public static bool IsFound(ByteString mask, int index)
    {
        ArgumentNullException.ThrowIfNull(mask);
        return FoundMask.IsSet(mask.Span, index);
    }

    /// <summary>Number of rows set in a found mask of <paramref name="count"/> rows.</summary>
    public static int CountFound(ByteString mask, int count)
    {
        ArgumentNullException.ThrowIfNull(mask);
        return FoundMask.Count(mask.Span, count);
    }

    /// <summary>
    /// Converts all rows to float32 into <paramref name="destination"/> (N × dim), whatever the stored
    /// dtype. float32 rows are copied without conversion.
    /// </summary>
    public static void ToFloat32(EncoderEmbeddings embeddings, Span<float> destination)
    {
        var source = embeddings.Embeddings.Span;
        switch (embeddings.Dtype)
        {
            case DType.Float32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DType.Float16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case DType.Bfloat16:
                var halves = MemoryMarshal.Cast<byte, ushort>(source);
                var bits = MemoryMarshal.Cast<float, uint>(destination);
                for (var i = 0; i < halves.Length; i++)
                    bits[i] = (uint)halves[i] << 16;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(embeddings), embeddings.Dtype, "unknown dtype");
        }
    }

    /// <summary>All rows as a new float32 array (N × dim).</summary>
    public static float[] ToFloat32(EncoderEmbeddings embeddings)
    {
        var result = new float[embeddings.Embeddings.Length / ElementSize(embeddings.Dtype)];
        ToFloat32(embeddings, result);
        return result;
    }
}
