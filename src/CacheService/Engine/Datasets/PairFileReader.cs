using System.Globalization;
using System.Text;
using System.Text.Json;

namespace EmbedCache.Engine.Datasets;

/// <summary>Pairs files: JSONL {"a": 0, "b": 5, "score": 1.0, "subgroup": 0} or CSV with a,b,score,subgroup columns.</summary>
internal static class PairFileReader
{
    public static IReadOnlyList<PairRecord> Read(string path, long itemCount, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(path);
        var pairs = new List<PairRecord>();
        if (Path.GetExtension(path).Equals(".csv", StringComparison.OrdinalIgnoreCase))
        {
            using var csv = new CsvReader(new StreamReader(path, Encoding.UTF8));
            var header = new List<string>();
            if (!csv.ReadRecord(header))
                return pairs;
            var col = header.Select((h, i) => (h.Trim(), i)).ToDictionary(t => t.Item1, t => t.i, StringComparer.Ordinal);
            foreach (var required in new[] { "a", "b" })
            {
                if (!col.ContainsKey(required))
                    throw new DatasetException($"{name}: no '{required}' column");
            }

            var fields = new List<string>();
            while (csv.ReadRecord(fields))
            {
                cancellationToken.ThrowIfCancellationRequested();
                string? Get(string c) => col.TryGetValue(c, out var i) && i < fields.Count ? fields[i] : null;
                pairs.Add(Parse(name, csv.Line, Get("a"), Get("b"), Get("score"), Get("subgroup"), itemCount));
            }

            return pairs;
        }

        using var reader = new StreamReader(path, Encoding.UTF8);
        long line = 0;
        while (reader.ReadLine() is { } text)
        {
            cancellationToken.ThrowIfCancellationRequested();
            line++;
            if (string.IsNullOrWhiteSpace(text))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(text);
                var root = doc.RootElement;
                string? Get(string p) => root.TryGetProperty(p, out var v) ? v.GetRawText() : null;
                pairs.Add(Parse(name, line, Get("a"), Get("b"), Get("score"), Get("subgroup"), itemCount));
            }
            catch (JsonException e)
            {
                throw new DatasetException($"{name} line {line}: not valid JSON: {e.Message}");
            }
        }

        return pairs;
    }

    private static PairRecord Parse(string file, long line, string? a, string? b, string? score, string? subgroup, long itemCount)
    {
        ulong Index(string? text, string what)
        {
            if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v))
                throw new DatasetException($"{file} line {line}: '{what}' must be an item index (was '{text}')");
            if ((long)v >= itemCount)
                throw new DatasetException($"{file} line {line}: '{what}' = {v} but the split has {itemCount} items");
            return v;
        }

        var s = 1f;
        if (score is not null && !float.TryParse(score, NumberStyles.Float, CultureInfo.InvariantCulture, out s))
            throw new DatasetException($"{file} line {line}: 'score' must be a number (was '{score}')");
        long g = 0;
        if (subgroup is not null && !long.TryParse(subgroup, NumberStyles.Integer, CultureInfo.InvariantCulture, out g))
            throw new DatasetException($"{file} line {line}: 'subgroup' must be an integer (was '{subgroup}')");
        return new PairRecord(Index(a, "a"), Index(b, "b"), s, g);
    }
}
