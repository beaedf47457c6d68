using System.Runtime.InteropServices;
using System.Text;

namespace EmbedCache.Engine.Encoders;

/// <summary>The features of a batch of items, of one input kind.</summary>
public abstract class FeatureBatch
{
    private protected FeatureBatch()
    {
    }

    /// <summary>Number of items.</summary>
    public abstract int Count { get; }
}

/// <summary>Text items (InputKind.Text).</summary>
public sealed class TextFeatureBatch : FeatureBatch
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public TextFeatureBatch(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        Texts = texts;
    }

    public IReadOnlyList<string> Texts { get; }

    public override int Count => Texts.Count;

    /// <summary>
    /// Decodes UTF-8 items as they come off the wire. Invalid UTF-8 throws
    /// <see cref="InvalidFeaturesException"/> naming the item and the byte offset.
    /// </summary>
    public static TextFeatureBatch FromUtf8(IReadOnlyList<ReadOnlyMemory<byte>> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var texts = new string[items.Count];
        for (var i = 0; i < texts.Length; i++)
        {
            try
            {
                texts[i] = StrictUtf8.GetString(items[i].Span);
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidFeaturesException(i, $"text is not valid UTF-8 (bad byte at offset {e.Index})", e);
            }
        }

        return new TextFeatureBatch(texts);
    }
}

/// <summary>
/// Encoded images (PNG or JPEG), one byte buffer per item, for encoders whose input kind is Image: the
/// encoder decodes, resizes and normalises them itself (see <see cref="ImagePreprocessing"/>).
/// </summary>
public sealed class ImageFeatureBatch : FeatureBatch
{
    public ImageFeatureBatch(IReadOnlyList<ReadOnlyMemory<byte>> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        Images = images;
    }

    /// <summary>The encoded bytes of each item, as received (no copy).</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Images { get; }

    public override int Count => Images.Count;
}

/// <summary>
/// Float32 items of one shape (InputKind.FloatVector or FloatTensor), stored contiguously, row-major,
/// item after item.
/// </summary>
public sealed class TensorFeatureBatch : FeatureBatch
{
    private readonly ReadOnlyMemory<float> _floats;
    private readonly ReadOnlyMemory<byte> _bytes;
    private readonly bool _fromBytes;

    /// <summary>
    /// <paramref name="data"/> holds <c>Count × prod(itemShape)</c> floats. A length that is not a whole number
    /// of items throws <see cref="InvalidFeaturesException"/> naming the incomplete item.
    /// </summary>
    public TensorFeatureBatch(ReadOnlyMemory<float> data, IReadOnlyList<long> itemShape)
    {
        var shape = CheckShape(itemShape);
        ItemShape = shape;
        ItemLength = ShapeLength(shape);
        Count = CountItems(data.Length, ItemLength);
        _floats = data;
    }

    private TensorFeatureBatch(ReadOnlyMemory<byte> littleEndianFloats, long[] itemShape, int itemLength)
    {
        ItemShape = itemShape;
        ItemLength = itemLength;
        if (littleEndianFloats.Length % sizeof(float) != 0)
            throw new InvalidFeaturesException(InvalidFeaturesException.WholeBatch,
                $"{littleEndianFloats.Length} bytes is not a whole number of float32 values");
        Count = CountItems(littleEndianFloats.Length / sizeof(float), ItemLength);
        _bytes = littleEndianFloats;
        _fromBytes = true;
    }

    /// <summary>Items as little-endian float32 bytes, back to back (no copy).</summary>
    public static TensorFeatureBatch FromLittleEndianBytes(ReadOnlyMemory<byte> data, IReadOnlyList<long> itemShape)
    {
        var shape = CheckShape(itemShape);
        return new TensorFeatureBatch(data, shape, ShapeLength(shape));
    }

    /// <summary>
    /// One little-endian float32 buffer per item, copied into one contiguous buffer. An item of the wrong
    /// length throws <see cref="InvalidFeaturesException"/> naming it.
    /// </summary>
    public static TensorFeatureBatch FromItems(IReadOnlyList<ReadOnlyMemory<byte>> items, IReadOnlyList<long> itemShape)
    {
        ArgumentNullException.ThrowIfNull(items);
        var shape = CheckShape(itemShape);
        var itemLength = ShapeLength(shape);
        var itemBytes = itemLength * sizeof(float);
        var all = new byte[checked(items.Count * itemBytes)];
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i].Length != itemBytes)
                throw new InvalidFeaturesException(i,
                    $"has {items[i].Length} bytes, expected {itemBytes} (float32 × {FormatShape(shape)})");
            items[i].Span.CopyTo(all.AsSpan(i * itemBytes));
        }

        return new TensorFeatureBatch(all, shape, itemLength);
    }

    /// <summary>The shape of one item.</summary>
    public IReadOnlyList<long> ItemShape { get; }

    /// <summary>Floats per item: the product of <see cref="ItemShape"/>.</summary>
    public int ItemLength { get; }

    public override int Count { get; }

    /// <summary>All items as little-endian float32 bytes (this library runs on little-endian hosts only).</summary>
    public ReadOnlySpan<byte> Bytes => _fromBytes
        ? _bytes.Span[..(Count * ItemLength * sizeof(float))]
        : MemoryMarshal.AsBytes(_floats.Span[..(Count * ItemLength)]);

    /// <summary>All items as floats (a view, no copy).</summary>
    public ReadOnlySpan<float> Values => MemoryMarshal.Cast<byte, float>(Bytes);

    /// <summary>The bytes of item <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> ItemBytes(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        var size = ItemLength * sizeof(float);
        return Bytes.Slice(index * size, size);
    }

    internal static string FormatShape(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";

    private static long[] CheckShape(IReadOnlyList<long> itemShape)
    {
        ArgumentNullException.ThrowIfNull(itemShape);
        if (itemShape.Count == 0)
            throw new ArgumentException("an item shape has at least one dimension", nameof(itemShape));
        var shape = new long[itemShape.Count];
        for (var i = 0; i < shape.Length; i++)
        {
            if (itemShape[i] <= 0)
                throw new ArgumentException($"item shape {FormatShape(itemShape)} has a dimension ≤ 0", nameof(itemShape));
            shape[i] = itemShape[i];
        }

        return shape;
    }

    private static int ShapeLength(long[] shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            n *= d;
            if (n > int.MaxValue / sizeof(float))
                throw new ArgumentException($"item shape {FormatShape(shape)} is too large", nameof(shape));
        }

        return (int)n;
    }

    private static int CountItems(int floats, int itemLength)
    {
        var count = floats / itemLength;
        var rest = floats % itemLength;
        if (rest != 0)
            throw new InvalidFeaturesException(count, $"has {rest} of {itemLength} values (the data ends mid-item)");
        return count;
    }
}
