using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Caching;

/// <summary>
/// What the store knows about a dataset split, recorded by prewarm so that streaming needs no raw
/// data: item and pair counts, label kind, key scheme, and the encoders whose embeddings are
/// complete for it. Read and written only through <see cref="SplitManifests"/>.
/// </summary>
public sealed record SplitManifest
{
    public required string Dataset { get; init; }

    public required string Split { get; init; }

    public long Items { get; init; }

    /// <summary>Pair records, for pair datasets.</summary>
    public long Pairs { get; init; }

    public DatasetLabelKind Labels { get; init; }

    public DatasetKeyScheme KeyScheme { get; init; }

    /// <summary>Encoders (by fingerprint) whose embeddings cover every item. Stored as a list of 32-hex-digit strings.</summary>
    [JsonConverter(typeof(FingerprintSetConverter))]
    public IReadOnlySet<Fingerprint> CompleteFor { get; init; } = FrozenSet<Fingerprint>.Empty;

    /// <summary>Labels and the index → key map are stored for every item.</summary>
    public bool LabelsComplete { get; init; }
}

/// <summary>
/// The one owner of split manifests: it reads them from the store's metadata, changes them and writes them back,
/// one change at a time (a read-modify-write under one lock), and keeps the index of every split it has written.
/// Prewarm records a split and later marks it complete; a drop forgets an encoder; streaming reads.
/// </summary>
public sealed class SplitManifests(SessionPool sessions)
{
    private const string IndexKey = "splits";
    private readonly Lock _lock = new();

    /// <summary>The manifest of a split, or null when no prewarm of it has started.</summary>
    public SplitManifest? Get(string dataset, string split)
    {
        using var lease = sessions.Rent();
        return Load(lease.Session, MetadataKey(dataset, split));
    }

    /// <summary>
    /// Records a split as a prewarm starts it: its counts, label kind and key scheme. What an earlier prewarm
    /// completed (encoders, labels) is kept.
    /// </summary>
    public void Record(string dataset, string split, long items, long pairs, DatasetLabelKind labels, DatasetKeyScheme keyScheme) =>
        Change(dataset, split, m => (m ?? new SplitManifest { Dataset = dataset, Split = split }) with
        {
            Items = items,
            Pairs = pairs,
            Labels = labels,
            KeyScheme = keyScheme,
        });

    /// <summary>Marks a recorded split complete: its labels, and the embeddings of <paramref name="encoders"/>.</summary>
    public void MarkComplete(string dataset, string split, IEnumerable<Fingerprint> encoders) =>
        Change(dataset, split, m =>
        {
            var manifest = m ?? throw new InvalidOperationException($"split {dataset}/{split} was never recorded");
            return manifest with { CompleteFor = manifest.CompleteFor.Union(encoders).ToFrozenSet(), LabelsComplete = true };
        });

    /// <summary>No split is complete for <paramref name="fingerprint"/> any more (its namespace was dropped).</summary>
    public void Forget(Fingerprint fingerprint)
    {
        using var lease = sessions.Rent();
        lock (_lock)
        {
            foreach (var key in LoadIndex(lease.Session))
            {
                if (Load(lease.Session, key) is { } manifest && manifest.CompleteFor.Contains(fingerprint))
                    Save(lease.Session, key, manifest with { CompleteFor = manifest.CompleteFor.Where(f => f != fingerprint).ToFrozenSet() });
            }
        }
    }

    private void Change(string dataset, string split, Func<SplitManifest?, SplitManifest> change)
    {
        var key = MetadataKey(dataset, split);
        using var lease = sessions.Rent();
        lock (_lock)
        {
            Save(lease.Session, key, change(Load(lease.Session, key)));
            var index = LoadIndex(lease.Session);
            if (!index.Contains(key))
            {
                index.Add(key);
                lease.Session.PutMetadata(IndexKey, JsonSerializer.SerializeToUtf8Bytes(index));
            }
        }
    }

    private static string MetadataKey(string dataset, string split) => $"split\u001f{dataset}\u001f{split}";

    private static SplitManifest? Load(StoreSession session, string key)
    {
        var bytes = session.GetMetadata(key);
        return bytes is null ? null : JsonSerializer.Deserialize<SplitManifest>(bytes);
    }

    private static void Save(StoreSession session, string key, SplitManifest manifest) =>
        session.PutMetadata(key, JsonSerializer.SerializeToUtf8Bytes(manifest));

    private static List<string> LoadIndex(StoreSession session)
    {
        var bytes = session.GetMetadata(IndexKey);
        return bytes is null ? [] : JsonSerializer.Deserialize<List<string>>(bytes) ?? [];
    }
}

/// <summary>A set of fingerprints as the split manifests have always stored it: a JSON list of 32-hex-digit strings.</summary>
internal sealed class FingerprintSetConverter : JsonConverter<IReadOnlySet<Fingerprint>>
{
    public override IReadOnlySet<Fingerprint> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var set = new HashSet<Fingerprint>();
        foreach (var hex in JsonSerializer.Deserialize<List<string>>(ref reader, options) ?? [])
        {
            if (!Fingerprint.TryParse(hex, out var fingerprint))
                throw new JsonException($"'{hex}' is not a fingerprint (32 hex digits)");
            set.Add(fingerprint);
        }

        return set.ToFrozenSet();
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlySet<Fingerprint> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var hex in value.Select(f => f.ToString()).Order(StringComparer.Ordinal))
            writer.WriteStringValue(hex);
        writer.WriteEndArray();
    }
}
