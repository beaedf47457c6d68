using System.Text.Json;
using System.Text.Json.Serialization;

namespace EmbedCache.Engine.Datasets;

/// <summary>How items are keyed in the store.</summary>
public enum DatasetKeyScheme
{
    /// <summary>(dataset, split, index): Quaterion's default.</summary>
    Positional,
    /// <summary>A field of the record (a file name, a row id), as UTF-8 bytes.</summary>
    Custom,
    /// <summary>A 128-bit hash of the item's feature bytes, shared across datasets.</summary>
    Content,
}

/// <summary>What a dataset's labels are.</summary>
public enum DatasetLabelKind
{
    None,
    /// <summary>An integer group (class) id per item.</summary>
    Group,
    /// <summary>Pair records (a, b, score, subgroup) in a separate file per split.</summary>
    Pair,
}

/// <summary>What a dataset's features are.</summary>
public enum DatasetFeatureKind
{
    Text,
    /// <summary>A float vector (JSON array, or CSV columns).</summary>
    Vector,
    /// <summary>A float tensor of a declared shape, stored flat (JSON array, or CSV columns).</summary>
    Tensor,
    /// <summary>An image file (PNG, JPEG, ...) under the dataset directory, named by a field or column; image encoders decode it.</summary>
    Image,
}

/// <summary>
/// <c>dataset.json</c>: describes a dataset directory. Example (the shipped digits dataset):
/// <code>
/// { "format": "csv", "splits": { "train": "train.csv", "val": "val.csv" },
///   "features": { "kind": "vector", "columns": "*" }, "labels": { "kind": "group", "field": "label" } }
/// </code>
/// </summary>
public sealed class DatasetManifest
{
    public const string FileName = "dataset.json";

    /// <summary>"jsonl" or "csv"; when empty, inferred from each split file's extension.</summary>
    public string? Format { get; set; }

    /// <summary>Split name → file, relative to the dataset directory.</summary>
    public Dictionary<string, string> Splits { get; set; } = new(StringComparer.Ordinal);

    public FeatureSpec Features { get; set; } = new();

    public LabelSpec Labels { get; set; } = new();

    public KeySpec Key { get; set; } = new();

    public sealed class FeatureSpec
    {
        public DatasetFeatureKind Kind { get; set; } = DatasetFeatureKind.Text;

        /// <summary>JSONL: the field holding the text, the number array or the image path. CSV text and images: the column.</summary>
        public string Field { get; set; } = "text";

        /// <summary>CSV vectors/tensors: comma-separated column names, or "*" for every column that is not a label or key.</summary>
        public string Columns { get; set; } = "*";

        /// <summary>Tensor item shape, e.g. [1, 8, 8]. Vectors: optional [length], checked when given.</summary>
        public long[]? Shape { get; set; }
    }

    public sealed class LabelSpec
    {
        public DatasetLabelKind Kind { get; set; } = DatasetLabelKind.None;

        /// <summary>Group datasets: the field/column with the integer group id.</summary>
        public string Field { get; set; } = "label";

        /// <summary>Pair datasets: split name → pairs file (JSONL {"a","b","score","subgroup"} or CSV a,b,score,subgroup).</summary>
        public Dictionary<string, string> Pairs { get; set; } = new(StringComparer.Ordinal);
    }

    public sealed class KeySpec
    {
        public DatasetKeyScheme Scheme { get; set; } = DatasetKeyScheme.Positional;

        /// <summary>Custom keys: the field/column holding the key.</summary>
        public string Field { get; set; } = "id";
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>
    /// Reads and validates <c>dataset.json</c> in <paramref name="directory"/>. Messages name files relative to the
    /// dataset's directory, never the server's absolute paths: they reach clients.
    /// </summary>
    public static DatasetManifest Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new DatasetException($"its directory has no {FileName}");
        DatasetManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<DatasetManifest>(File.ReadAllBytes(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new DatasetException($"{FileName}: {e.Message}");
        }

        if (manifest is null)
            throw new DatasetException($"{FileName} is empty");
        var errors = manifest.Validate(directory).ToList();
        if (errors.Count > 0)
            throw new DatasetException($"{FileName}: {string.Join("; ", errors)}");
        return manifest;
    }

    public IEnumerable<string> Validate(string directory)
    {
        if (Format is not (null or "" or "jsonl" or "csv"))
            yield return $"format must be 'jsonl' or 'csv' (was '{Format}')";
        if (Splits.Count == 0)
            yield return "splits must name at least one split file";
        foreach (var (split, file) in Splits)
        {
            if (!IsValidName(split))
                yield return $"split name '{split}' must be 1-64 letters, digits, '-', '_' or '.'";
            if (!IsInside(directory, file))
                yield return $"splits.{split}: '{file}' must be a file inside the dataset directory";
            else if (!File.Exists(Path.Combine(directory, file)))
                yield return $"splits.{split}: file '{file}' not found";
            else if (FormatOf(file) is null)
                yield return $"splits.{split}: cannot tell the format of '{file}' (set format: jsonl or csv)";
        }

        if (Features.Kind == DatasetFeatureKind.Tensor && (Features.Shape is not { Length: > 0 } || Features.Shape.Any(d => d <= 0)))
            yield return "features.shape must list the tensor's positive dimensions, e.g. [1, 8, 8]";
        if (Labels.Kind == DatasetLabelKind.Pair)
        {
            foreach (var (split, file) in Labels.Pairs)
            {
                if (!Splits.ContainsKey(split))
                    yield return $"labels.pairs.{split}: no such split";
                if (!IsInside(directory, file) || !File.Exists(Path.Combine(directory, file)))
                    yield return $"labels.pairs.{split}: file '{file}' not found inside the dataset directory";
            }
        }
    }

    /// <summary>The format of a split file: the manifest's, else from the extension.</summary>
    public string? FormatOf(string file)
    {
        if (!string.IsNullOrEmpty(Format))
            return Format;
        var ext = Path.GetExtension(file).ToLowerInvariant();
        return ext switch
        {
            ".jsonl" or ".ndjson" => "jsonl",
            ".csv" => "csv",
            _ => null,
        };
    }

    internal static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && name != "." && name != "..";

    internal static bool IsInside(string directory, string relative)
    {
        if (string.IsNullOrWhiteSpace(relative) || Path.IsPathRooted(relative))
            return false;
        var root = Path.GetFullPath(directory);
        var full = Path.GetFullPath(Path.Combine(root, relative));
        return full.StartsWith(root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }
}

/// <summary>A dataset that cannot be used, with a message naming the file and the problem.</summary>
public sealed class DatasetException(string message) : EngineException(ErrorKind.FailedPrecondition, message);
