namespace EmbedCache.Engine.Datasets;

/// <summary>
/// Consecutive items of a split, columnar: features as one text list or one flat float array,
/// plus group ids and custom keys when the dataset has them.
/// </summary>
public sealed class DatasetChunk
{
    /// <summary>Index of the first item in the split.</summary>
    public required long StartIndex { get; init; }

    public required int Count { get; init; }

    /// <summary>Text features, when the dataset's features are text.</summary>
    public IReadOnlyList<string>? Texts { get; init; }

    /// <summary>Image features: each item's file bytes, as read from the dataset directory.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>>? Images { get; init; }

    /// <summary>Vector/tensor features: <see cref="Count"/> × <see cref="ItemLength"/> floats.</summary>
    public float[]? Values { get; init; }

    public int ItemLength { get; init; }

    /// <summary>Group ids, for group datasets.</summary>
    public long[]? Groups { get; init; }

    /// <summary>Custom keys (UTF-8), for the custom key scheme.</summary>
    public byte[][]? Keys { get; init; }
}
