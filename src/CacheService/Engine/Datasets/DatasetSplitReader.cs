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
        return _format == "csv" ? ReadCsvChunks(chunkSize, startIndex, cancellationToken) : ReadJsonChunks(chunkSize, startIndex, cancellationToken);
    }

    /// <summary>
    /// JSONL straight from the file's UTF-8 bytes: one <see cref="Utf8JsonReader"/> pass per line that picks out the
    /// fields the manifest names (no string per line, no document); lines before <paramref name="startIndex"/> are
    /// only counted.
    /// </summary>
    private IEnumerable<DatasetChunk> ReadJsonChunks(int chunkSize, long startIndex, CancellationToken cancellationToken)
    {
        var builder = new ChunkBuilder(Manifest, chunkSize);
        using var lines = new Utf8LineReader(_path);
        long index = 0;
        while (ReadJsonRecord(lines, builder, index < startIndex))
        {
            if ((++index & 63) == 0)
                cancellationToken.ThrowIfCancellationRequested();
            if (builder.Count == chunkSize)
                yield return builder.Build(index - builder.Count);
        }

        if (builder.Count > 0)
            yield return builder.Build(index - builder.Count);
    }

    /// <summary>Reads up to the next record; adds it to <paramref name="builder"/> unless <paramref name="skip"/>. False at the end.</summary>
    private bool ReadJsonRecord(Utf8LineReader lines, ChunkBuilder builder, bool skip)
    {
        while (lines.TryReadLine(out var line))
        {
            if (Utf8LineReader.IsBlank(line))
                continue;
            if (!skip)
                builder.AddJson(line, lines.Line, this);
            return true;
        }

        return false;
    }

    private IEnumerable<DatasetChunk> ReadCsvChunks(int chunkSize, long startIndex, CancellationToken cancellationToken)
    {
        var builder = new ChunkBuilder(Manifest, chunkSize);
        long index = 0;
        foreach (var record in CsvRecords())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (index++ < startIndex)
                continue;
            builder.AddCsv(record, this);
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

        using var lines = new Utf8LineReader(_path);
        while (lines.TryReadLine(out var line))
        {
            if (!Utf8LineReader.IsBlank(line) && (++count & 4095) == 0)
                cancellationToken.ThrowIfCancellationRequested();
        }

        return count;
    }

    /// <summary>Largest image file a dataset may name.</summary>
    public const long MaxImageBytes = 64L << 20;

    /// <summary>The bytes of the image file a record names, relative to the dataset directory (never outside it).</summary>
    internal ReadOnlyMemory<byte> ReadImage(string? relative, long line, string field)
    {
        if (string.IsNullOrWhiteSpace(relative))
            throw Error(line, $"missing image path field '{field}'");
        if (!DatasetManifest.IsInside(_dataset.Directory, relative))
            throw Error(line, $"image path {Echo.Quote(relative)} must be a file inside the dataset directory");
        var path = Path.Combine(_dataset.Directory, relative);
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            if (file.Length > MaxImageBytes)
                throw Error(line, $"image {Echo.Quote(relative)} is {file.Length} bytes; at most {MaxImageBytes}");
            var bytes = new byte[file.Length];
            file.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw Error(line, $"image {Echo.Quote(relative)} not found in the dataset directory");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Error(line, $"image {Echo.Quote(relative)} cannot be read: {e.Message.Replace(_dataset.Directory, "<dataset>", StringComparison.Ordinal)}");
        }
    }

    internal DatasetException Error(long line, string problem) =>
        new($"dataset '{_dataset.Name}' split '{_split}' ({_fileName} line {line}): {problem}");

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
            yield return new Record(csv.Line, fields, columns);
        }
    }

    /// <summary>One CSV row with its header map.</summary>
    internal readonly record struct Record(long Line, List<string> Fields, Dictionary<string, int> Columns)
    {
        public string? GetString(string name) => Columns.TryGetValue(name, out var i) ? Fields[i] : null;
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
        private float[] _scratch = new float[64];
        private byte[] _rest = new byte[256];
        private readonly byte[] _featureName = Encoding.UTF8.GetBytes(manifest.Features.Field);
        private readonly byte[] _labelName = Encoding.UTF8.GetBytes(manifest.Labels.Field);
        private readonly byte[] _keyName = Encoding.UTF8.GetBytes(manifest.Key.Field);

        public int Count { get; private set; }

        private bool HasGroups => manifest.Labels.Kind == DatasetLabelKind.Group;

        private bool HasCustomKeys => manifest.Key.Scheme == DatasetKeyScheme.Custom;

        private bool NumericFeatures => manifest.Features.Kind is DatasetFeatureKind.Vector or DatasetFeatureKind.Tensor;

        /// <summary>
        /// One JSONL record, in one pass over its bytes: the feature, label and key fields are taken as they come
        /// (the last of a repeated name wins, as with a parsed document), everything else is skipped (and validated).
        /// A feature array's numbers go to a scratch row first, so that its length is checked once it is known; a
        /// plain one is scanned without the JSON reader first (<see cref="NumberArrayScanner"/>).
        /// </summary>
        public void AddJson(ReadOnlySpan<byte> line, long lineNumber, DatasetSplitReader owner)
        {
            var scannedAt = -1;
            var scanned = 0;
            var original = line;
            if (NumericFeatures && NumberArrayScanner.TryScan(line, _featureName, ref _scratch, ref _rest, out var restLength, out scannedAt, out scanned))
                line = _rest.AsSpan(0, restLength);
            var features = manifest.Features;
            string? featureText = null;
            var featureLength = -1;
            string? labelText = null;
            long? group = null;
            string? key = null;
            var reader = new Utf8JsonReader(line);
            try
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    reader.Read(); // throws on anything after the first value
                    throw owner.Error(lineNumber, "each line must be a JSON object");
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isFeature = reader.ValueTextEquals(_featureName);
                    var isLabel = HasGroups && reader.ValueTextEquals(_labelName);
                    var isKey = HasCustomKeys && reader.ValueTextEquals(_keyName);
                    reader.Read();
                    if (isFeature && NumericFeatures)
                    {
                        if (reader.TokenType != JsonTokenType.StartArray)
                            throw owner.Error(lineNumber, $"field '{features.Field}' must be an array of numbers");
                        if (reader.TokenStartIndex == scannedAt)
                        {
                            reader.Skip(); // the scanned array's [] stand-in: its numbers are in the scratch row
                            featureLength = scanned;
                            scannedAt = -1;
                        }
                        else
                        {
                            featureLength = ReadNumbers(ref reader, lineNumber, owner);
                        }

                        continue;
                    }

                    if (isLabel && reader.TokenType == JsonTokenType.Number)
                    {
                        // The common case, without a string: an integer literal.
                        if (System.Buffers.Text.Utf8Parser.TryParse(reader.ValueSpan, out long id, out var used) && used == reader.ValueSpan.Length)
                        {
                            group = id;
                            labelText = null;
                            isLabel = false;
                        }
                    }

                    if (!(isFeature || isLabel || isKey))
                    {
                        reader.Skip();
                        continue;
                    }

                    var text = StringOf(ref reader, lineNumber, owner);
                    if (isFeature)
                        featureText = text;
                    if (isLabel)
                    {
                        labelText = text;
                        group = null;
                    }

                    if (isKey)
                        key = text;
                }

                reader.Read(); // throws on anything after the object
            }
            catch (JsonException e)
            {
                // Positions in the message are those of the line as written, not of the rewritten one.
                throw owner.Error(lineNumber, $"not valid JSON: {(line == original ? e.Message : JsonError(original) ?? e.Message)}");
            }

            if (features.Kind == DatasetFeatureKind.Text)
            {
                (_texts ??= new List<string>(capacity)).Add(featureText ?? throw owner.Error(lineNumber, $"missing text field '{features.Field}'"));
            }
            else if (features.Kind == DatasetFeatureKind.Image)
            {
                (_images ??= new List<ReadOnlyMemory<byte>>(capacity)).Add(owner.ReadImage(featureText, lineNumber, features.Field));
            }
            else
            {
                if (featureLength < 0)
                    throw owner.Error(lineNumber, $"field '{features.Field}' must be an array of numbers");
                EnsureItemLength(featureLength, lineNumber, owner);
                _scratch.AsSpan(0, featureLength).CopyTo(Row());
            }

            if (HasGroups)
            {
                if (group is null)
                {
                    var text = labelText ?? throw owner.Error(lineNumber, $"missing label field '{manifest.Labels.Field}'");
                    group = ParseGroup(text, lineNumber, owner);
                }

                (_groups ??= new long[capacity])[Count] = group.Value;
            }

            if (HasCustomKeys)
                AddKey(key, lineNumber, owner);
            Count++;
        }

        /// <summary>The message of the first syntax error in <paramref name="line"/>, if it has one.</summary>
        private static string? JsonError(ReadOnlySpan<byte> line)
        {
            try
            {
                var reader = new Utf8JsonReader(line);
                while (reader.Read())
                {
                }

                return null;
            }
            catch (JsonException e)
            {
                return e.Message;
            }
        }

        /// <summary>The array's numbers into the scratch row (reader on its StartArray, left on its EndArray); returns how many.</summary>
        private int ReadNumbers(ref Utf8JsonReader reader, long lineNumber, DatasetSplitReader owner)
        {
            var k = 0;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (k == _scratch.Length)
                    Array.Resize(ref _scratch, _scratch.Length * 2);
                if (reader.TokenType != JsonTokenType.Number ||
                    !(FastFloat.TryParse(reader.ValueSpan, out _scratch[k]) || reader.TryGetSingle(out _scratch[k])))
                    throw owner.Error(lineNumber, $"element {k} of '{manifest.Features.Field}' is not a number");
                k++;
            }

            return k;
        }

        /// <summary>A string value, or a number's text; null for anything else (which is skipped).</summary>
        private static string? StringOf(ref Utf8JsonReader reader, long lineNumber, DatasetSplitReader owner)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String:
                    try
                    {
                        return reader.GetString();
                    }
                    catch (InvalidOperationException)
                    {
                        throw owner.Error(lineNumber, "a string is not valid UTF-8");
                    }

                case JsonTokenType.Number:
                    return Encoding.UTF8.GetString(reader.ValueSpan);
                default:
                    reader.Skip();
                    return null;
            }
        }

        public void AddCsv(Record record, DatasetSplitReader owner)
        {
            AddCsvFeatures(record, owner);
            if (HasGroups)
            {
                var text = record.GetString(manifest.Labels.Field)
                    ?? throw owner.Error(record.Line, $"missing label field '{manifest.Labels.Field}'");
                (_groups ??= new long[capacity])[Count] = ParseGroup(text, record.Line, owner);
            }

            if (HasCustomKeys)
                AddKey(record.GetString(manifest.Key.Field), record.Line, owner);
            Count++;
        }

        private static long ParseGroup(string text, long line, DatasetSplitReader owner) =>
            long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var group)
                ? group
                : throw owner.Error(line, $"label '{text}' is not an integer group id");

        private void AddKey(string? key, long line, DatasetSplitReader owner)
        {
            if (string.IsNullOrEmpty(key))
                throw owner.Error(line, $"missing key field '{manifest.Key.Field}'");
            var bytes = Encoding.UTF8.GetBytes(key);
            if (bytes.Length > 256)
                throw owner.Error(line, $"key is {bytes.Length} bytes; at most 256");
            (_keys ??= new byte[capacity][])[Count] = bytes;
        }

        /// <summary>The current item's row of the chunk's value buffer.</summary>
        private Span<float> Row() => (_values ??= new float[capacity * _itemLength]).AsSpan(Count * _itemLength, _itemLength);

        private void AddCsvFeatures(Record record, DatasetSplitReader owner)
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
                (_images ??= new List<ReadOnlyMemory<byte>>(capacity)).Add(owner.ReadImage(record.GetString(features.Field), record.Line, features.Field));
                return;
            }

            _csvColumns ??= ResolveColumns(record, owner);
            EnsureItemLength(_csvColumns.Length, record.Line, owner);
            var row = Row();
            for (var i = 0; i < _csvColumns.Length; i++)
            {
                var cell = record.Fields[_csvColumns[i]];
                if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out row[i]))
                    throw owner.Error(record.Line, $"'{cell}' in column '{ColumnName(record, _csvColumns[i])}' is not a number");
            }
        }

        private void EnsureItemLength(int length, long line, DatasetSplitReader owner)
        {
            if (_itemLength < 0)
            {
                var expected = ExpectedLength();
                if (expected is { } e && e != length)
                    throw owner.Error(line, $"{length} feature values, the manifest's shape needs {e}");
                if (length == 0)
                    throw owner.Error(line, "no feature values");
                _itemLength = length;
            }
            else if (length != _itemLength)
            {
                throw owner.Error(line, $"{length} feature values, earlier items have {_itemLength}");
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
            var columns = record.Columns;
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
            record.Columns.First(kv => kv.Value == index).Key;

        public DatasetChunk Build(long startIndex)
        {
            var count = Count;
            var chunk = new DatasetChunk
            {
                StartIndex = startIndex,
                Count = count,
                Texts = _texts,
                Images = _images,
                Values = _values is null ? null : count * _itemLength == _values.Length ? _values : _values.AsSpan(0, count * _itemLength).ToArray(),
                ItemLength = Math.Max(_itemLength, 0),
                Groups = _groups is null || count == _groups.Length ? _groups : _groups[..count],
                Keys = _keys is null || count == _keys.Length ? _keys : _keys[..count],
            };
            _texts = null;
            _images = null;
            _values = null;
            _groups = null;
            _keys = null;
            Count = 0;
            return chunk;
        }
    }
}
