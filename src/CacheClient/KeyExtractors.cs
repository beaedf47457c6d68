using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using EmbedCache.Contract.V1;
using Google.Protobuf;

namespace EmbedCache.CacheClient;

/// <summary>
/// Turns a batch of items into the keys the cache stores them under (Quaterion's key
/// extractors): positional (dataset, split, index), a custom key per item, or a content hash.
/// </summary>
public static class KeyExtractors
{
    /// <summary>Keys (dataset, split, index) for consecutive or arbitrary indices.</summary>
    public static KeyBatch Positional(string dataset, string split, IEnumerable<ulong> indices)
    {
        var keys = new PositionalKeys { Dataset = dataset, Split = split };
        keys.Indices.Add(indices);
        return new KeyBatch { Positional = keys };
    }

    /// <summary>Keys chosen by <paramref name="extractor"/> (a file name, a row id), 1..256 bytes each.</summary>
    public static KeyBatch Custom<T>(IEnumerable<T> items, Func<T, string> extractor)
    {
        var keys = new CustomKeys();
        foreach (var item in items)
            keys.Keys.Add(ByteString.CopyFromUtf8(extractor(item)));
        return new KeyBatch { Custom = keys };
    }

    /// <summary>Keys chosen as raw bytes.</summary>
    public static KeyBatch Custom<T>(IEnumerable<T> items, Func<T, byte[]> extractor)
    {
        var keys = new CustomKeys();
        foreach (var item in items)
            keys.Keys.Add(ByteString.CopyFrom(extractor(item)));
        return new KeyBatch { Custom = keys };
    }

    /// <summary>
    /// Content keys computed locally: the service computes the same XxHash128 of each item's
    /// feature bytes (UTF-8 text; little-endian float32 data), so hashes match across machines.
    /// </summary>
    public static KeyBatch Content(FeatureBatch features)
    {
        var count = FeatureCount(features);
        var hashes = new byte[count * 16];
        for (var i = 0; i < count; i++)
            XxHash128.Hash(FeatureBytes(features, i), hashes.AsSpan(i * 16, 16));
        return new KeyBatch { Content = new ContentKeys { Hashes = UnsafeByteOperations.UnsafeWrap(hashes) } };
    }

    /// <summary>Content keys to be computed by the service from the features sent alongside.</summary>
    public static KeyBatch ContentFromFeatures() => new() { Content = new ContentKeys() };

    /// <summary>Text features.</summary>
    public static FeatureBatch Texts(IEnumerable<string> texts)
    {
        var t = new TextFeatures();
        t.Texts.Add(texts);
        return new FeatureBatch { Text = t };
    }

    /// <summary>Float tensor features: <paramref name="data"/> holds N items of <paramref name="itemShape"/>.</summary>
    public static FeatureBatch Tensors(ReadOnlySpan<float> data, params long[] itemShape)
    {
        var t = new TensorFeatures { Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        t.ItemShape.Add(itemShape);
        return new FeatureBatch { Tensor = t };
    }

    /// <summary>
    /// Encoded image features (PNG, JPEG, ... file bytes, one per key) for image encoders such as <c>resnet18</c>:
    /// the service decodes and resizes them. The buffers are wrapped, not copied: do not change them until the call returns.
    /// </summary>
    public static FeatureBatch Images(params ReadOnlyMemory<byte>[] images)
    {
        var t = new ImageFeatures();
        foreach (var image in images)
            t.Items.Add(UnsafeByteOperations.UnsafeWrap(image));
        return new FeatureBatch { Images = t };
    }

    /// <summary>Items in a feature batch.</summary>
    public static int FeatureCount(FeatureBatch features) => features.KindCase switch
    {
        FeatureBatch.KindOneofCase.Text => features.Text.Texts.Count,
        FeatureBatch.KindOneofCase.Tensor => (int)(features.Tensor.Data.Length / 4 / Math.Max(1, features.Tensor.ItemShape.Aggregate(1L, (a, b) => a * b))),
        FeatureBatch.KindOneofCase.Images => features.Images.Items.Count,
        _ => 0,
    };

    private static ReadOnlySpan<byte> FeatureBytes(FeatureBatch features, int index)
    {
        if (features.KindCase == FeatureBatch.KindOneofCase.Text)
            return Encoding.UTF8.GetBytes(features.Text.Texts[index]);
        if (features.KindCase == FeatureBatch.KindOneofCase.Images)
            return features.Images.Items[index].Span;
        var itemBytes = (int)(features.Tensor.ItemShape.Aggregate(1L, (a, b) => a * b) * 4);
        return features.Tensor.Data.Span.Slice(index * itemBytes, itemBytes);
    }
}
