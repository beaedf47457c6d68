namespace EmbedCache.Engine.Datasets;

/// <summary>A dataset directory with its manifest. Cheap to create; files are read on demand.</summary>
public sealed class Dataset
{
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);

    public Dataset(string name, string directory, DatasetManifest manifest)
    {
        Name = name;
        Directory = directory;
        Manifest = manifest;
    }

    /// <summary>The name used in keys and requests: the registered name or the path under the data root.</summary>
    public string Name { get; }

    public string Directory { get; }

    public DatasetManifest Manifest { get; }

    public IReadOnlyCollection<string> Splits => Manifest.Splits.Keys;

    public bool HasSplit(string split) => Manifest.Splits.ContainsKey(split);

    /// <summary>Opens a reader over one split's items.</summary>
    public DatasetSplitReader OpenSplit(string split)
    {
        if (!Manifest.Splits.TryGetValue(split, out var file))
            throw new DatasetException($"dataset {Echo.Quote(Name)} has no split {Echo.Quote(split)} (splits: {string.Join(", ", Manifest.Splits.Keys)})");
        var path = Path.Combine(Directory, file);
        return new DatasetSplitReader(this, split, path, Manifest.FormatOf(file)!);
    }

    /// <summary>Number of items in a split (one counting pass, remembered).</summary>
    public long CountItems(string split, CancellationToken cancellationToken = default)
    {
        lock (_counts)
        {
            if (_counts.TryGetValue(split, out var known))
                return known;
        }

        // Counting needs records, not values: no JSON or number parsing (the fill pass validates).
        var count = OpenSplit(split).CountRecords(cancellationToken);

        lock (_counts)
            _counts[split] = count;
        return count;
    }

    /// <summary>The pair records of a pair dataset's split, in file order.</summary>
    public IReadOnlyList<PairRecord> ReadPairs(string split, CancellationToken cancellationToken = default)
    {
        if (Manifest.Labels.Kind != DatasetLabelKind.Pair)
            throw new DatasetException($"dataset {Echo.Quote(Name)} is not a pair dataset");
        if (!Manifest.Labels.Pairs.TryGetValue(split, out var file))
            throw new DatasetException($"dataset {Echo.Quote(Name)} has no pairs for split {Echo.Quote(split)}");
        var items = CountItems(split, cancellationToken);
        return PairFileReader.Read(Path.Combine(Directory, file), items, cancellationToken);
    }
}

/// <summary>One pair of a pair dataset: items <see cref="A"/> and <see cref="B"/> of the same split.</summary>
public readonly record struct PairRecord(ulong A, ulong B, float Score, long Subgroup);
