using System.Buffers;
using System.IO.Hashing;
using System.Text;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// Canonical bytes of one item, for content keys: UTF-8 for text, little-endian float32 for tensors, the
/// encoded file bytes for images.
/// The same item gives the same bytes in every process and on every machine.
/// </summary>
public static class FeatureBytes
{
    /// <summary>Length of <see cref="Write"/>'s output for item <paramref name="index"/>.</summary>
    public static int GetByteCount(FeatureBatch batch, int index) => batch switch
    {
        TextFeatureBatch text => Encoding.UTF8.GetByteCount(text.Texts[index]),
        TensorFeatureBatch tensor => tensor.ItemBytes(index).Length,
        ImageFeatureBatch image => image.Images[index].Length,
        _ => throw new ArgumentException($"unknown feature batch type {batch.GetType().Name}", nameof(batch)),
    };

    /// <summary>Writes the canonical bytes of item <paramref name="index"/>; returns the number written.</summary>
    public static int Write(FeatureBatch batch, int index, Span<byte> destination)
    {
        switch (batch)
        {
            case TextFeatureBatch text:
                return Encoding.UTF8.GetBytes(text.Texts[index], destination);
            case TensorFeatureBatch tensor:
                var bytes = tensor.ItemBytes(index);
                bytes.CopyTo(destination);
                return bytes.Length;
            case ImageFeatureBatch image:
                image.Images[index].Span.CopyTo(destination);
                return image.Images[index].Length;
            default:
                throw new ArgumentException($"unknown feature batch type {batch.GetType().Name}", nameof(batch));
        }
    }

    /// <summary>The canonical bytes of item <paramref name="index"/> as a new array.</summary>
    public static byte[] ToArray(FeatureBatch batch, int index)
    {
        var bytes = new byte[GetByteCount(batch, index)];
        Write(batch, index, bytes);
        return bytes;
    }

    /// <summary>XxHash128 of the canonical bytes: the content key of an item.</summary>
    public static UInt128 ContentHash(FeatureBatch batch, int index)
    {
        if (batch is TensorFeatureBatch tensor)
            return XxHash128.HashToUInt128(tensor.ItemBytes(index));
        if (batch is ImageFeatureBatch image)
            return XxHash128.HashToUInt128(image.Images[index].Span);

        // Text: its UTF-8 bytes in a pooled buffer, not a new array per item.
        var buffer = ArrayPool<byte>.Shared.Rent(GetByteCount(batch, index));
        try
        {
            return XxHash128.HashToUInt128(buffer.AsSpan(0, Write(batch, index, buffer)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
