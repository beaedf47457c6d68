using System.Globalization;
using System.Text;
using System.Text.Json;

namespace EmbedCache.Engine.Datasets;

/// <summary>Reads one split file (JSONL or CSV) sequentially in columnar chunks; each enumeration opens the file anew.</summary>
public sealed class DatasetSplitReader
{
    private readonly Dataset _dataset;
    private readonly string _split;
    private readonly string _path;
    private readonly string _format;
    private readonly string _fileName;

    internal DatasetSplitReader(Dataset dataset, string split, string path, string format)
    {
        _dataset = dataset;
        _split = split;
        _path = path;
        _format = format;
        _fileName = Path.GetFileName(path);
    }

    private DatasetManifest Manifest => _dataset.Manifest;

    /// <summary>Yields chunks of up to <paramref name="chunkSize"/> items, starting at item <paramref name="startIndex"/>.</summary>
    public IEnumerable<DatasetChunk> ReadChunks(int chunkSize, long startIndex = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        var builder = new ChunkBuilder(Manifest, chunkSize);
        long index = 0;
        foreach (var record in _format == "csv" ? CsvRecords() : JsonRecords())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (index++ < startIndex)
                continue;
            builder.Add(record, this);
            if (builder.Count == chunkSize)
                yield return builder.Build(index - builder.Count);
        }

        if (builder.Count > 0)
            yield return builder.Build(index - builder.Count);
    }

    /// <summary>Number of records in the file: non-blank JSONL lines, or CSV records after the header.</summary>
    internal long CountRecords(CancellationToken cancellationToken)
    {
        long count = 0;
        if (_format == "csv")
        {
            using var csv = new CsvReader(new StreamReader(_path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16));
            var fields = new List<string>();
            try
            {
                while (csv.ReadRecord(fields))
                {
                    if ((++count & 4095) == 0)
                        cancellationToken.ThrowIfCancellationRequested();
                }
            }
            catch (DatasetException e)
            {
                throw Error(csv.Line, e.Message);
            }

            return Math.Max(0, count - 1);
        }

        using var reader = new StreamReader(_path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        while (reader.ReadLine() is { } line)
        {
            if (!string.IsNullOrWhiteSpace(line) && (++count & 4095) == 0)
                cancellationToken.ThrowIfCancellationRequested();
        }

        return count;
    }

    /// <summary>Largest image file a dataset may name.</summary>
    public const long MaxImageBytes = 64L << 20;

    /// <summary>The bytes of the image file a record names, relative to the dataset directory (never outside it).</summary>
    internal ReadOnlyMemory<byte> ReadImage(Record record, string field)
    {
        var relative = record.GetString(field);
        if (string.IsNullOrWhiteSpace(relative))
            throw Error(record.Line, $"missing image path field '{field}'");
        if (!DatasetManifest.IsInside(_dataset.Directory, relative))
            throw Error(record.Line, $"image path {Echo.Quote(relative)} must be a file inside the dataset directory");
        var path = Path.Combine(_dataset.Directory, relative);
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            if (file.Length > MaxImageBytes)
                throw Error(record.Line, $"image {Echo.Quote(relative)} is {file.Length} bytes; at most {MaxImageBytes}");
            var bytes = new byte[file.Length];
            file.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw Error(record.Line, $"image {Echo.Quote(relative)} not found in the dataset directory");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Error(record.Line, $"image {Echo.Quote(relative)} cannot be read: {e.Message.Replace(_dataset.Directory, "<dataset>", StringComparison.Ordinal)}");
        }
    }

    internal DatasetException Error(long line, string problem) =>
        new($"dataset '{_dataset.Name}' split '{_split}' ({_fileName} line {line}): {problem}");

    private IEnumerable<Record> JsonRecords()
    {
        using var reader = new StreamReader(_path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        long line = 0;
        while (reader.ReadLine() is { } text)
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
                continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(text);
            }
            catch (JsonException e)
            {
                throw Error(line, $"not valid JSON: {e.Message}");
            }

            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw Error(line, "each line must be a JSON object");
                yield return new Record(line, doc.RootElement, null, null);
            }
        }
    }

    private IEnumerable<Record> CsvRecords()
    {
        using var csv = new CsvReader(new StreamReader(_path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16));
        var header = new List<string>();
        try
        {
            if (!csv.ReadRecord(header))
                yield break;
        }
        catch (DatasetException e)
        {
            throw Error(csv.Line, e.Message);
        }

        var columns = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < header.Count; i++)
            columns[header[i].Trim()] = i;
        var fields = new List<string>();
        while (true)
        {
            bool more;
            try
            {
                more = csv.ReadRecord(fields);
            }
            catch (DatasetException e)
            {
                throw Error(csv.Line, e.Message);
            }

            if (!more)
                yield break;
            if (fields.Count != header.Count)
                throw Error(csv.Line, $"{fields.Count} fields, the header has {header.Count}");
            yield return new Record(csv.Line, default, fields, columns);
        }
    }

    /// <summary>One source record: a JSON object or a CSV row with its header map.</summary>
    internal readonly record struct Record(long Line, JsonElement Json, List<string>? Fields, Dictionary<string, int>? Columns)
    {
        public bool IsCsv => Fields is not null;

        public string? GetString(string name)
        {
            if (IsCsv)
                return Columns!.TryGetValue(name, out var i) ? Fields![i] : null;
            if (!Json.TryGetProperty(name, out var v))
                return null;
            return v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Number => v.GetRawText(),
                _ => null,
            };
        }
    }

    private sealed class ChunkBuilder(DatasetManifest manifest, int capacity)
    {
        private List<string>? _texts;
        private List<ReadOnlyMemory<byte>>? _images;
        private float[]? _values;
        private long[]? _groups;
        private byte[][]? _keys;
        private int[]? _csvColumns;
        private int _itemLength = -1;

        public int Count { get; private set; }

        public void Add(Record record, DatasetSplitReader owner)
        {
            AddFeatures(record, owner);
            if (manifest.Labels.Kind == DatasetLabelKind.Group)
            {
                var text = record.GetString(manifest.Labels.Field)
                    ?? throw owner.Error(record.Line, $"missing label field '{manifest.Labels.Field}'");
                if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var group))
                    throw owner.Error(record.Line, $"label '{text}' is not an integer group id");
                (_groups ??= new long[capacity])[Count] = group;
            }

            if (manifest.Key.Scheme == DatasetKeyScheme.Custom)
            {
                var key = record.GetString(manifest.Key.Field);
                if (string.IsNullOrEmpty(key))
                    throw owner.Error(record.Line, $"missing key field '{manifest.Key.Field}'");
                var bytes = Encoding.UTF8.GetBytes(key);
                if (bytes.Length > 256)
                    throw owner.Error(record.Line, $"key is {bytes.Length} bytes; at most 256");
                (_keys ??= new byte[capacity][])[Count] = bytes;
            }

            Count++;
        }

        private void AddFeatures(Record record, DatasetSplitReader owner)
        {
            var features = manifest.Features;
            if (features.Kind == DatasetFeatureKind.Text)
            {
                var text = record.GetString(features.Field)
                    ?? throw owner.Error(record.Line, $"missing text field '{features.Field}'");
                (_texts ??= new List<string>(capacity)).Add(text);
                return;
            }

            if (features.Kind == DatasetFeatureKind.Image)
            {
                (_images ??= new List<ReadOnlyMemory<byte>>(capacity)).Add(owner.ReadImage(record, features.Field));
                return;
            }

            if (record.IsCsv)
            {
                _csvColumns ??= ResolveColumns(record, owner);
                EnsureItemLength(_csvColumns.Length, record, owner);
                var row = _values.AsSpan(Count * _itemLength, _itemLength);
                for (var i = 0; i < _csvColumns.Length; i++)
                {
                    var cell = record.Fields![_csvColumns[i]];
                    if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out row[i]))
                        throw owner.Error(record.Line, $"'{cell}' in column '{ColumnName(record, _csvColumns[i])}' is not a number");
                }

                return;
            }

            if (!record.Json.TryGetProperty(features.Field, out var array) || array.ValueKind != JsonValueKind.Array)
                throw owner.Error(record.Line, $"field '{features.Field}' must be an array of numbers");
            EnsureItemLength(array.GetArrayLength(), record, owner);
            var dst = _values.AsSpan(Count * _itemLength, _itemLength);
            var k = 0;
            foreach (var element in array.EnumerateArray())
            {
                if (element.ValueKind != JsonValueKind.Number || !element.TryGetSingle(out dst[k]))
                    throw owner.Error(record.Line, $"element {k} of '{features.Field}' is not a number");
                k++;
            }
        }

        private void EnsureItemLength(int length, Record record, DatasetSplitReader owner)
        {
            if (_itemLength < 0)
            {
                var expected = ExpectedLength();
                if (expected is { } e && e != length)
                    throw owner.Error(record.Line, $"{length} feature values, the manifest's shape needs {e}");
                if (length == 0)
                    throw owner.Error(record.Line, "no feature values");
                _itemLength = length;
                _values = new float[capacity * length];
            }
            else if (length != _itemLength)
            {
                throw owner.Error(record.Line, $"{length} feature values, earlier items have {_itemLength}");
            }
        }

        private long? ExpectedLength()
        {
            var shape = manifest.Features.Shape;
            if (shape is not { Length: > 0 })
                return null;
            long n = 1;
            foreach (var d in shape)
                n *= d;
            return n;
        }

        private int[] ResolveColumns(Record record, DatasetSplitReader owner)
        {
            var columns = record.Columns!;
            var spec = manifest.Features.Columns;
            if (spec.Trim() == "*")
            {
                var excluded = new HashSet<string>(StringComparer.Ordinal);
                if (manifest.Labels.Kind == DatasetLabelKind.Group)
                    excluded.Add(manifest.Labels.Field);
                if (manifest.Key.Scheme == DatasetKeyScheme.Custom)
                    excluded.Add(manifest.Key.Field);
                return columns.Where(kv => !excluded.Contains(kv.Key)).Select(kv => kv.Value).Order().ToArray();
            }

            var names = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var result = new int[names.Length];
            for (var i = 0; i < names.Length; i++)
            {
                if (!columns.TryGetValue(names[i], out result[i]))
                    throw owner.Error(record.Line, $"no column '{names[i]}' in the header");
            }

            return result;
        }

        private static string ColumnName(Record record, int index) =>
            record.Columns!.First(kv => kv.Value == index).Key;

        public DatasetChunk Build(long startIndex)
        {
            var count = Count;
            var chunk = new DatasetChunk
            {
                StartIndex = startIndex,
                Count = count,
                Texts = _texts,
                Images = _images,
                Values = _values is null ? null : _values.AsSpan(0, count * _itemLength).ToArray(),
                ItemLength = Math.Max(_itemLength, 0),
                Groups = _groups?[..count],
                Keys = _keys?[..count],
            };
            _texts = null;
            _images = null;
            _groups = null;
            _keys = null;
            Count = 0;
            return chunk;
        }
    }
}
