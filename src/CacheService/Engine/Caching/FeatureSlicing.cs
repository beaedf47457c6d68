using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Keys;

namespace EmbedCache.Engine.Caching;

/// <summary>Subsets of feature batches (the items that missed) and content keys computed from features.</summary>
public static class FeatureSlicing
{
    /// <summary>The items at <paramref name="positions"/>, in that order.</summary>
    public static FeatureBatch Select(FeatureBatch features, ReadOnlySpan<int> positions)
    {
        switch (features)
        {
            case TextFeatureBatch text:
            {
                var texts = new string[positions.Length];
                for (var i = 0; i < positions.Length; i++)
                    texts[i] = text.Texts[positions[i]];
                return new TextFeatureBatch(texts);
            }

            case TensorFeatureBatch tensor:
            {
                var itemBytes = tensor.ItemLength * sizeof(float);
                var source = tensor.Bytes;
                var data = new byte[positions.Length * itemBytes];
                for (var i = 0; i < positions.Length; i++)
                    source.Slice(positions[i] * itemBytes, itemBytes).CopyTo(data.AsSpan(i * itemBytes, itemBytes));
                return TensorFeatureBatch.FromLittleEndianBytes(data, tensor.ItemShape);
            }

            case ImageFeatureBatch image:
            {
                var images = new ReadOnlyMemory<byte>[positions.Length];
                for (var i = 0; i < positions.Length; i++)
                    images[i] = image.Images[positions[i]];
                return new ImageFeatureBatch(images);
            }

            default:
                throw new ArgumentException($"unsupported feature batch {features.GetType().Name}", nameof(features));
        }
    }

    /// <summary>Content keys: a 128-bit hash of each item's canonical feature bytes.</summary>
    public static ItemKeyBatch ContentKeys(FeatureBatch features)
    {
        var hashes = new byte[features.Count * ContentHash.Size];
        for (var i = 0; i < features.Count; i++)
            ContentHash.Write(FeatureBytes.ContentHash(features, i), hashes.AsSpan(i * ContentHash.Size, ContentHash.Size));
        return ItemKeyBatch.Content(hashes);
    }

    public static int ItemLength(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (var d in shape)
            n *= d;
        return checked((int)n);
    }
}
