using System.Globalization;
using System.Text;
using System.Text.Json;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The data the benches give the service, under its data root: a generated vector dataset (64 floats an item, the mlp
/// encoders' input), a generated text dataset (short sentences on eight topics, a group label each) and a copy of the
/// shipped fortunes dataset; and the sizes of the vectors and embeddings.
/// </summary>
internal static class Datasets
{
    public const int Dim = 384;
    public const int InputLength = 64; // the mlp encoder's input vector
    public const int RowBytes = Dim * 4;

    public static void WriteVectorDataset(string dir, int items)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset.json"),
            """{ "format": "jsonl", "splits": { "train": "train.jsonl" }, "features": { "kind": "vector", "field": "x", "shape": [64] }, "labels": { "kind": "group", "field": "label" } }""");
        var random = new Random(11);
        using var w = new StreamWriter(Path.Combine(dir, "train.jsonl"), false, new UTF8Encoding(false), 1 << 20);
        var sb = new StringBuilder(1024);
        for (var i = 0; i < items; i++)
        {
            sb.Clear().Append("{\"x\":[");
            for (var j = 0; j < InputLength; j++)
            {
                if (j > 0)
                    sb.Append(',');
                sb.Append((random.NextDouble() * 2 - 1).ToString("0.####", CultureInfo.InvariantCulture));
            }

            sb.Append("],\"label\":").Append(i % 100).Append('}');
            w.WriteLine(sb);
        }
    }

    public static readonly string[][] Topics =
    [
        ["the striker scored a late goal", "the team won the league", "fans cheered in the stadium", "the coach praised the defence", "a penalty decided the match"],
        ["the recipe needs fresh basil", "bake the bread for an hour", "the soup was too salty", "slice the onions thinly", "the chef plated the dessert"],
        ["the rocket reached orbit", "astronomers found a new comet", "the telescope imaged a galaxy", "the probe landed on the moon", "a meteor lit the night sky"],
        ["the market fell sharply today", "investors sold their shares", "the bank raised interest rates", "inflation slowed last month", "the company reported profits"],
        ["the storm flooded the valley", "heavy rain is expected tonight", "a heatwave hit the city", "snow closed the mountain pass", "winds knocked down power lines"],
        ["the band released a new album", "the concert sold out quickly", "the pianist played a sonata", "the singer won an award", "the guitar solo was loud"],
        ["the patient recovered quickly", "the doctor prescribed rest", "the vaccine trial succeeded", "the hospital opened a new ward", "the nurse checked the pulse"],
        ["the train was delayed again", "the airport added new flights", "traffic jammed the highway", "the ferry crossed the bay", "the bus route was extended"],
    ];

    public static void WriteTextDataset(string dir, int sentences)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset.json"),
            """{ "format": "jsonl", "splits": { "train": "train.jsonl", "val": "val.jsonl" }, "features": { "kind": "text", "field": "text" }, "labels": { "kind": "group", "field": "label" } }""");
        string[] extras = ["", " this morning", " yesterday", " once more", " as expected", " for the first time", " after a long wait", " in the north"];
        void Write(string file, int count, int seed)
        {
            var random = new Random(seed);
            using var w = new StreamWriter(Path.Combine(dir, file));
            for (var i = 0; i < count; i++)
            {
                var g = i % Topics.Length;
                var text = Topics[g][random.Next(Topics[g].Length)] + extras[random.Next(extras.Length)];
                w.WriteLine(JsonSerializer.Serialize(new { text, label = g }));
            }
        }

        Write("train.jsonl", sentences, 1);
        Write("val.jsonl", sentences / 3, 2);
    }

    /// <summary>Copies the shipped fortunes dataset (with --quick, its first 400 train and 100 val lines); returns its sentences.</summary>
    public static (string[] Train, string[] Val) CopyFortunes(string source, string target, bool quick)
    {
        Directory.CreateDirectory(target);
        File.Copy(Path.Combine(source, "dataset.json"), Path.Combine(target, "dataset.json"));
        string[] Copy(string file, int quickLines)
        {
            var lines = File.ReadAllLines(Path.Combine(source, file)).Where(l => l.Length > 0).ToArray();
            if (quick)
                lines = lines[..Math.Min(quickLines, lines.Length)];
            File.WriteAllLines(Path.Combine(target, file), lines);
            return Array.ConvertAll(lines, l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!);
        }

        return (Copy("train.jsonl", 400), Copy("val.jsonl", 100));
    }
}
