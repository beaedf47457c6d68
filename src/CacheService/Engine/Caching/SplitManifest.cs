using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Remote;
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
/// <remarks>
/// With a remote tier the manifests are shared too, as one cluster hash per split whose fields only ever grow
/// (<c>complete:&lt;fingerprint&gt;</c>, <c>labelsComplete</c>), so nodes that record and complete parts of a split at
/// once never overwrite each other. A split this node lacks, or has not seen complete, is looked up there (at most
/// once a second per split), and what the cluster knows is kept here. A drop
/// forgets an encoder on this node only: the cluster's values stay right (they are content-addressed).
/// </remarks>
public sealed class SplitManifests(SessionPool sessions, RemoteCluster? remote = null)
{
    private const string IndexKey = "splits";
    private const string CompletePrefix = "complete:";
    private static readonly TimeSpan RemoteRecheck = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private readonly ConcurrentDictionary<string, long> _remoteChecked = new(StringComparer.Ordinal);

    /// <summary>The manifest of a split, or null when no prewarm of it has started (here or, with a remote tier, on the cluster).</summary>
    public SplitManifest? Get(string dataset, string split)
    {
        var key = MetadataKey(dataset, split);
        SplitManifest? local;
        using (var lease = sessions.Rent())
            local = Load(lease.Session, key);
        if (remote is null || !Recheck(key))
            return local;
        _remoteChecked[key] = Stopwatch.GetTimestamp();
        var shared = FromCluster(dataset, split);
        if (shared is null)
            return local;
        var merged = Merge(local, shared);
        if (merged != local)
            Change(dataset, split, m => Merge(m, shared));
        return merged;
    }

    /// <summary>
    /// Records a split as a prewarm starts it: its counts, label kind and key scheme. What an earlier prewarm
    /// completed (encoders, labels) is kept.
    /// </summary>
    public void Record(string dataset, string split, long items, long pairs, DatasetLabelKind labels, DatasetKeyScheme keyScheme)
    {
        Change(dataset, split, m => (m ?? new SplitManifest { Dataset = dataset, Split = split }) with
        {
            Items = items,
            Pairs = pairs,
            Labels = labels,
            KeyScheme = keyScheme,
        });
        remote?.TryHashSet(remote.Keys.Manifest(dataset, split), new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["items"] = items.ToString(CultureInfo.InvariantCulture),
            ["pairs"] = pairs.ToString(CultureInfo.InvariantCulture),
            ["labels"] = labels.ToString(),
            ["keyScheme"] = keyScheme.ToString(),
        });
    }

    /// <summary>
    /// Marks a recorded split complete: its labels, and the embeddings of <paramref name="encoders"/>; on the cluster too
    /// when <paramref name="share"/> (every row and label of it reached the cluster). False when the cluster was to be
    /// told and did not take it.
    /// </summary>
    public bool MarkComplete(string dataset, string split, IEnumerable<Fingerprint> encoders, bool share = true)
    {
        var fingerprints = encoders.ToArray();
        Change(dataset, split, m =>
        {
            // A node that finishes another node's distributed prewarm has the split only on the cluster.
            var manifest = m ?? (remote is null ? null : FromCluster(dataset, split))
                ?? throw new InvalidOperationException($"split {dataset}/{split} was never recorded");
            return manifest with { CompleteFor = manifest.CompleteFor.Union(fingerprints).ToFrozenSet(), LabelsComplete = true };
        });
        if (remote is null || !share)
            return remote is null;
        var fields = new Dictionary<string, string>(StringComparer.Ordinal) { ["labelsComplete"] = "1" };
        foreach (var f in fingerprints)
            fields[CompletePrefix + f] = "1";
        return remote.TryHashSet(remote.Keys.Manifest(dataset, split), fields);
    }

    /// <summary>No split is complete for <paramref name="fingerprint"/> any more on this node (its namespace was dropped).</summary>
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

    private bool Recheck(string key) =>
        !_remoteChecked.TryGetValue(key, out var at) || Stopwatch.GetElapsedTime(at) >= RemoteRecheck;

    /// <summary>The split as the cluster knows it; null when it knows nothing of it or did not answer.</summary>
    private SplitManifest? FromCluster(string dataset, string split)
    {
        var fields = remote!.TryHashGetAll(remote.Keys.Manifest(dataset, split));
        if (fields is null || !fields.TryGetValue("items", out var items))
            return null;
        var complete = new HashSet<Fingerprint>();
        foreach (var name in fields.Keys)
        {
            if (name.StartsWith(CompletePrefix, StringComparison.Ordinal) && Fingerprint.TryParse(name[CompletePrefix.Length..], out var f))
                complete.Add(f);
        }

        return new SplitManifest
        {
            Dataset = dataset,
            Split = split,
            Items = long.Parse(items, CultureInfo.InvariantCulture),
            Pairs = fields.TryGetValue("pairs", out var pairs) ? long.Parse(pairs, CultureInfo.InvariantCulture) : 0,
            Labels = fields.TryGetValue("labels", out var labels) && Enum.TryParse<DatasetLabelKind>(labels, out var l) ? l : default,
            KeyScheme = fields.TryGetValue("keyScheme", out var scheme) && Enum.TryParse<DatasetKeyScheme>(scheme, out var k) ? k : default,
            CompleteFor = complete.ToFrozenSet(),
            LabelsComplete = fields.ContainsKey("labelsComplete"),
        };
    }

    private static SplitManifest Merge(SplitManifest? local, SplitManifest shared) =>
        local is null ? shared : local with
        {
            CompleteFor = local.CompleteFor.Union(shared.CompleteFor).ToFrozenSet(),
            LabelsComplete = local.LabelsComplete || shared.LabelsComplete,
        };

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
