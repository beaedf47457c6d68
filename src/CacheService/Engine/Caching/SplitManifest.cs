using System.Collections.Frozen;
using System.Text.Json;
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

    /// <summary>Encoders (by fingerprint) whose embeddings cover every item.</summary>
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
        if (bytes is null || JsonSerializer.Deserialize<Stored>(bytes) is not { } stored)
            return null;
        var complete = new HashSet<Fingerprint>();
        foreach (var hex in stored.CompleteFor)
        {
            if (!Fingerprint.TryParse(hex, out var fingerprint))
                throw new InvalidDataException($"split manifest {key} names a malformed fingerprint '{hex}'");
            complete.Add(fingerprint);
        }

        return new SplitManifest
        {
            Dataset = stored.Dataset,
            Split = stored.Split,
            Items = stored.Items,
            Pairs = stored.Pairs,
            Labels = stored.Labels,
            KeyScheme = stored.KeyScheme,
            CompleteFor = complete.ToFrozenSet(),
            LabelsComplete = stored.LabelsComplete,
        };
    }

    private static void Save(StoreSession session, string key, SplitManifest manifest)
    {
        var stored = new Stored
        {
            Dataset = manifest.Dataset,
            Split = manifest.Split,
            Items = manifest.Items,
            Pairs = manifest.Pairs,
            Labels = manifest.Labels,
            KeyScheme = manifest.KeyScheme,
            CompleteFor = [.. manifest.CompleteFor.Select(f => f.ToString()).Order(StringComparer.Ordinal)],
            LabelsComplete = manifest.LabelsComplete,
        };
        session.PutMetadata(key, JsonSerializer.SerializeToUtf8Bytes(stored));
    }

    private static List<string> LoadIndex(StoreSession session)
    {
        var bytes = session.GetMetadata(IndexKey);
        return bytes is null ? [] : JsonSerializer.Deserialize<List<string>>(bytes) ?? [];
    }

    /// <summary>The stored JSON, as it has always been (fingerprints as 32 hex digits).</summary>
    private sealed class Stored
    {
        public required string Dataset { get; init; }

        public required string Split { get; init; }

        public long Items { get; init; }

        public long Pairs { get; init; }

        public DatasetLabelKind Labels { get; init; }

        public DatasetKeyScheme KeyScheme { get; init; }

        public List<string> CompleteFor { get; init; } = [];

        public bool LabelsComplete { get; init; }
    }
}
