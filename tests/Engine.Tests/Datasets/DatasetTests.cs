using EmbedCache.Engine.Datasets;
using EmbedCache.TestSupport;

namespace EmbedCache.Engine.Tests.Datasets;

public sealed class DatasetTests
{
    private static string DigitsDir => Path.Combine(RepoPaths.Root, "deploy", "datasets", "digits");

    [Fact]
    public void Digits_ReadsEveryItemWithItsPixelsAndGroupLabel()
    {
        var catalog = new DatasetCatalog(new Dictionary<string, string> { ["digits"] = DigitsDir }, dataRoot: null);
        var digits = catalog.Resolve("digits");

        var chunks = digits.OpenSplit("train").ReadChunks(500).ToList();

        Assert.Equal([500, 500, 438], chunks.Select(c => c.Count));
        Assert.Equal([0L, 500, 1000], chunks.Select(c => c.StartIndex));
        Assert.All(chunks, c => Assert.Equal(64, c.ItemLength));
        // First row of the source: 0,0,5,13,9,1,0,0,... label 0.
        Assert.Equal([0f, 0, 5, 13, 9, 1, 0, 0], chunks[0].Values![..8]);
        Assert.Equal(0, chunks[0].Groups![0]);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), chunks.SelectMany(c => c.Groups!).Distinct().Order());
        Assert.Equal(1438, digits.CountItems("train"));
        Assert.Equal(359, digits.CountItems("val"));
    }

    [Fact]
    public void ReadChunks_FromStartIndex_SkipsEarlierItems()
    {
        var digits = new DatasetCatalog(new Dictionary<string, string> { ["digits"] = DigitsDir }, null).Resolve("digits");
        var all = digits.OpenSplit("val").ReadChunks(1000).Single();

        var tail = digits.OpenSplit("val").ReadChunks(1000, startIndex: 300).Single();

        Assert.Equal(300, tail.StartIndex);
        Assert.Equal(59, tail.Count);
        Assert.Equal(all.Values![(300 * 64)..], tail.Values!);
    }

    [Fact]
    public void JsonlText_WithCustomKeys_ReadsTextsAndKeys()
    {
        using var root = new TempDirectory("ds");
        var dir = Directory.CreateDirectory(root.Combine("texts"));
        File.WriteAllText(Path.Combine(dir.FullName, "train.jsonl"), """
            {"id": "a.txt", "text": "first item", "label": 3}
            {"id": "b.txt", "text": "second, with \"quotes\"", "label": 4}
            """);
        File.WriteAllText(Path.Combine(dir.FullName, "dataset.json"), """
            { "splits": { "train": "train.jsonl" }, "features": { "kind": "text", "field": "text" },
              "labels": { "kind": "group" }, "key": { "scheme": "custom", "field": "id" } }
            """);

        var chunk = new DatasetCatalog(new Dictionary<string, string>(), root.Path).Resolve("texts").OpenSplit("train").ReadChunks(10).Single();

        Assert.Equal(["first item", "second, with \"quotes\""], chunk.Texts!);
        Assert.Equal("b.txt"u8.ToArray(), chunk.Keys![1]);
        Assert.Equal([3L, 4], chunk.Groups!);
    }

    [Fact]
    public void Jsonl_LineEndsBomBlankLinesAndStringLabels_ReadAsStreamReaderWould()
    {
        using var dir = new TempDirectory("ds");
        // BOM; CRLF, a lone CR and LF line ends; a blank and a whitespace-only line; a label given as a string; an
        // escaped field name; a repeated field (the last one wins); fields nobody asked for, of every kind.
        var text = "\uFEFF{\"x\": [1, -0.5, 2.25], \"label\": 3}\r\n\r\n" +
            "{\"x\": [0, 0, 0], \"x\": [1e-3, 123456789, -7], \"label\": \"4\", \"other\": {\"a\": [true, null]}}\r" +
            "   \t\n{\"\\u0078\": [3.5, 1E2, 0.1], \"l\\u0061bel\": -5}";
        File.WriteAllText(dir.Combine("s.jsonl"), text);
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "vector", "field": "x" }, "labels": { "kind": "group" } }""");
        var ds = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x");

        var chunk = ds.OpenSplit("s").ReadChunks(10).Single();

        Assert.Equal(3, ds.CountItems("s"));
        Assert.Equal([1f, -0.5f, 2.25f, 1e-3f, 123456789f, -7f, 3.5f, 100f, 0.1f], chunk.Values!);
        Assert.Equal([3L, 4, -5], chunk.Groups!);
    }

    [Theory]
    [InlineData("{\"x\": [1, 2], \"label\": 1}\n{\"x\": [1, 2], \"label\": 1.5}", "line 2", "label '1.5' is not an integer group id")]
    [InlineData("{\"x\": [1, 2], \"label\": 1}\n{\"x\": [1, \"a\"], \"label\": 1}", "line 2", "element 1 of 'x' is not a number")]
    [InlineData("{\"x\": [1, 2], \"label\": 1}\n\n{\"x\": [1, 2, 3], \"label\": 1}", "line 3", "3 feature values, earlier items have 2")]
    [InlineData("{\"x\": [1, 2], \"label\": 1} x", "line 1", "not valid JSON")]
    [InlineData("[1, 2]", "line 1", "each line must be a JSON object")]
    [InlineData("{\"x\": [1, 2]}", "line 1", "missing label field 'label'")]
    [InlineData("{\"x\": 5, \"label\": 1}", "line 1", "field 'x' must be an array of numbers")]
    [InlineData("{\"x\": [1, true], \"label\": 1}", "line 1", "element 1 of 'x' is not a number")]
    public void Jsonl_BadRecord_ErrorNamesLineAndProblem(string content, string line, string problem)
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.jsonl"), content);
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "vector", "field": "x" }, "labels": { "kind": "group" } }""");
        var split = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s");

        var e = Assert.Throws<DatasetException>(() => split.ReadChunks(10).ToList());

        Assert.Contains($"s.jsonl {line})", e.Message, StringComparison.Ordinal);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"x\":[ 1 , -0.5,2.25\t], \"label\": 1}", new[] { 1f, -0.5f, 2.25f })]
    [InlineData("{\"label\": 1, \"x\": [0.1234567, 1e2, 7]}", new[] { 0.1234567f, 100f, 7f })]
    [InlineData("{\"x\": [123456789, -0], \"label\": 1, \"x2\": [1]}", new[] { 123456789f, -0f })]
    [InlineData("{\"y\": {\"x\": [9]}, \"x\": [3, 4], \"label\": 1}", new[] { 3f, 4f })]
    [InlineData("{\"x\": [5, 6], \"label\": 1, \"x\": [7, 8]}", new[] { 7f, 8f })]
    public void Jsonl_NumberArrays_ReadTheSameWithOrWithoutTheScan(string line, float[] expected)
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.jsonl"), line + "\n");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "vector", "field": "x" }, "labels": { "kind": "group" } }""");

        var chunk = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s").ReadChunks(10).Single();

        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), chunk.Values!.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [InlineData("{\"x\": [1, 2], \"label\": 1,}")]
    [InlineData("{\"x\": [01], \"label\": 1}")]
    [InlineData("{\"x\": [1,], \"label\": 1}")]
    [InlineData("{\"x\": [1, 2], \"label\": 1} {}")]
    [InlineData("{\"x\": [1 2], \"label\": 1}")]
    public void Jsonl_SyntaxErrorAroundAScannedArray_IsReportedWhereTheLineHasIt(string line)
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.jsonl"), line + "\n");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "vector", "field": "x" }, "labels": { "kind": "group" } }""");
        var split = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s");
        string expected;
        try
        {
            var reader = new System.Text.Json.Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(line));
            while (reader.Read())
            {
            }

            throw new InvalidOperationException("the test line is valid JSON");
        }
        catch (System.Text.Json.JsonException e)
        {
            expected = e.Message;
        }

        var error = Assert.Throws<DatasetException>(() => split.ReadChunks(10).ToList());

        Assert.EndsWith("not valid JSON: " + expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Jsonl_RandomNumberArrays_ReadAsFloatParseReadsEachNumber()
    {
        using var dir = new TempDirectory("ds");
        var random = new Random(9);
        var lines = new List<string>();
        var expected = new List<float>();
        for (var row = 0; row < 2000; row++)
        {
            var numbers = new string[8];
            for (var k = 0; k < numbers.Length; k++)
            {
                // Mostly short decimals (the scan), some that it leaves to the general path: long, exponents, zeros.
                var value = (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-6, 7));
                numbers[k] = random.Next(8) switch
                {
                    0 => value.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                    1 => value.ToString("E3", System.Globalization.CultureInfo.InvariantCulture),
                    2 => random.Next(2) == 0 ? "0" : "-0.0",
                    _ => value.ToString("0.#######", System.Globalization.CultureInfo.InvariantCulture),
                };
                expected.Add(float.Parse(numbers[k], System.Globalization.CultureInfo.InvariantCulture));
            }

            lines.Add($"{{\"x\": [{string.Join(random.Next(2) == 0 ? "," : " , ", numbers)}], \"label\": {row % 3}}}");
        }

        File.WriteAllLines(dir.Combine("s.jsonl"), lines);
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "vector", "field": "x" }, "labels": { "kind": "group" } }""");

        var values = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s").ReadChunks(256).SelectMany(c => c.Values!).ToList();

        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), values.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void FastFloat_EqualsFloatParse_WhereItApplies_AndDeclinesTheRest()
    {
        var random = new Random(5);
        var taken = 0;
        for (var i = 0; i < 200_000; i++)
        {
            var digits = random.Next(1, 12);
            var point = random.Next(0, digits + 1);
            var chars = new char[digits];
            for (var d = 0; d < digits; d++)
                chars[d] = (char)('0' + random.Next(10));
            var whole = new string(chars, 0, digits - point).TrimStart('0');
            var text = (random.Next(2) == 0 ? "-" : "") + (whole.Length == 0 ? "0" : whole) + (point > 0 ? "." + new string(chars, digits - point, point) : "");
            var bytes = System.Text.Encoding.ASCII.GetBytes(text);
            if (FastFloat.TryParse(bytes, out var fast))
            {
                taken++;
                var expected = float.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(fast), $"{text}: {fast:R} != {expected:R}");
            }
        }

        Assert.InRange(taken, 50_000, 200_000);
        Assert.False(FastFloat.TryParse("1e5"u8, out _));
        Assert.False(FastFloat.TryParse("12345678"u8, out _));
        Assert.False(FastFloat.TryParse("0.00000000001"u8, out _));
        Assert.True(FastFloat.TryParse("-0"u8, out var negativeZero) && float.IsNegative(negativeZero));
    }

    [Fact]
    public void Csv_QuotedFieldsWithCommasAndNewlines_AreOneField()
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.csv"), "text,label\r\n\"a, b\",1\r\n\"line1\nline2 \"\"q\"\"\",2\r\nplain,3\r\n");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.csv" }, "labels": { "kind": "group" } }""");

        var chunk = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s").ReadChunks(10).Single();

        Assert.Equal(["a, b", "line1\nline2 \"q\"", "plain"], chunk.Texts!);
        Assert.Equal([1L, 2, 3], chunk.Groups!);
    }

    [Fact]
    public void Csv_NonNumericFeature_ErrorNamesLineAndColumn()
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.csv"), "x0,x1,label\n1,2,0\n3,oops,1\n");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.csv" }, "features": { "kind": "vector" }, "labels": { "kind": "group" } }""");
        var split = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s");

        var e = Assert.Throws<DatasetException>(() => split.ReadChunks(10).ToList());

        Assert.Contains("line 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("'oops'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'x1'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tensor_WithWrongElementCount_IsRejectedAgainstTheManifestShape()
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("s.jsonl"), """{"img": [1, 2, 3]}""" + "\n");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "s.jsonl" }, "features": { "kind": "tensor", "field": "img", "shape": [1, 2, 2] } }""");
        var split = new DatasetCatalog(new Dictionary<string, string> { ["x"] = dir.Path }, null).Resolve("x").OpenSplit("s");

        var e = Assert.Throws<DatasetException>(() => split.ReadChunks(10).ToList());

        Assert.Contains("needs 4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PairDataset_ReadsPairs_AndRejectsIndicesOutsideTheSplit()
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("items.jsonl"), "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\":\"c\"}\n");
        File.WriteAllText(dir.Combine("pairs.jsonl"), "{\"a\":0,\"b\":1,\"score\":1.0,\"subgroup\":7}\n{\"a\":2,\"b\":0,\"score\":0}\n");
        File.WriteAllText(dir.Combine("bad.jsonl"), "{\"a\":0,\"b\":3}\n");
        File.WriteAllText(dir.Combine("dataset.json"), """
            { "splits": { "train": "items.jsonl", "val": "items.jsonl" },
              "labels": { "kind": "pair", "pairs": { "train": "pairs.jsonl", "val": "bad.jsonl" } } }
            """);
        var ds = new DatasetCatalog(new Dictionary<string, string> { ["p"] = dir.Path }, null).Resolve("p");

        var pairs = ds.ReadPairs("train");

        Assert.Equal([new PairRecord(0, 1, 1f, 7), new PairRecord(2, 0, 0f, 0)], pairs);
        var e = Assert.Throws<DatasetException>(() => ds.ReadPairs("val"));
        Assert.Contains("split has 3 items", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("inside/../../outside")]
    [InlineData("/etc")]
    public void Catalog_PathOutsideDataRoot_IsRefused(string path)
    {
        using var root = new TempDirectory("root");
        var catalog = new DatasetCatalog(new Dictionary<string, string>(), root.Combine("data"));
        Directory.CreateDirectory(root.Combine("data", "inside"));

        var e = Assert.Throws<DatasetPathException>(() => catalog.Resolve(path));

        Assert.Contains("outside the data root", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Catalog_SymlinkLeadingOutsideDataRoot_IsRefused()
    {
        using var root = new TempDirectory("root");
        Directory.CreateDirectory(root.Combine("data"));
        Directory.CreateDirectory(root.Combine("secret"));
        File.WriteAllText(root.Combine("secret", "dataset.json"), """{ "splits": { "s": "s.jsonl" } }""");
        File.WriteAllText(root.Combine("secret", "s.jsonl"), "{\"text\":\"x\"}\n");
        Directory.CreateSymbolicLink(root.Combine("data", "link"), root.Combine("secret"));
        var catalog = new DatasetCatalog(new Dictionary<string, string>(), root.Combine("data"));

        var e = Assert.Throws<DatasetPathException>(() => catalog.Resolve("link"));

        Assert.Contains("outside the data root", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Catalog_UnknownName_ListsRegisteredOnes()
    {
        var catalog = new DatasetCatalog(new Dictionary<string, string> { ["digits"] = DigitsDir }, dataRoot: null);

        var e = Assert.Throws<DatasetNotFoundException>(() => catalog.Resolve("nope"));

        Assert.Contains("unknown dataset 'nope'", e.Message, StringComparison.Ordinal);
        Assert.Contains("digits", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Manifest_SplitFileOutsideDirectory_IsRejected()
    {
        using var dir = new TempDirectory("ds");
        File.WriteAllText(dir.Combine("dataset.json"), """{ "splits": { "s": "../s.jsonl" } }""");

        var e = Assert.Throws<DatasetException>(() => DatasetManifest.Load(dir.Path));

        Assert.Contains("inside the dataset directory", e.Message, StringComparison.Ordinal);
    }
}
