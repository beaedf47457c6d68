using System.Text.Json;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>
/// What the store knows about a dataset split, recorded by prewarm so that streaming needs no raw
/// data: item and pair counts, label kind, key scheme, and the encoders whose embeddings are
/// complete for it. Kept in the store's metadata, covered by its checkpoints.
/// </summary>
public sealed class SplitManifest
{
    public required string Dataset { get; init; }

    public required string Split { get; init; }

    public long Items { get; set; }

    /// <summary>Pair records, for pair datasets.</summary>
    public long Pairs { get; set; }

    public DatasetLabelKind Labels { get; set; }

    public DatasetKeyScheme KeyScheme { get; set; }

    /// <summary>Fingerprints (hex) of encoders whose embeddings cover every item.</summary>
    public List<string> CompleteFor { get; set; } = [];

    /// <summary>Labels and the index → key map are stored for every item.</summary>
    public bool LabelsComplete { get; set; }

    internal static string MetadataKey(string dataset, string split) => $"split\u001f{dataset}\u001f{split}";

    public static SplitManifest? Load(StoreSession session, string dataset, string split)
    {
        var bytes = session.GetMetadata(MetadataKey(dataset, split));
        return bytes is null ? null : JsonSerializer.Deserialize<SplitManifest>(bytes);
    }

    private const string IndexKey = "splits";

    public void Save(StoreSession session)
    {
        var key = MetadataKey(Dataset, Split);
        session.PutMetadata(key, JsonSerializer.SerializeToUtf8Bytes(this));
        var index = LoadIndex(session);
        if (!index.Contains(key))
        {
            index.Add(key);
            session.PutMetadata(IndexKey, JsonSerializer.SerializeToUtf8Bytes(index));
        }
    }

    /// <summary>Every split manifest the store holds.</summary>
    public static IEnumerable<SplitManifest> LoadAll(StoreSession session)
    {
        foreach (var key in LoadIndex(session))
        {
            var bytes = session.GetMetadata(key);
            if (bytes is not null && JsonSerializer.Deserialize<SplitManifest>(bytes) is { } manifest)
                yield return manifest;
        }
    }

    private static List<string> LoadIndex(StoreSession session)
    {
        var bytes = session.GetMetadata(IndexKey);
        return bytes is null ? [] : JsonSerializer.Deserialize<List<string>>(bytes) ?? [];
    }
}
