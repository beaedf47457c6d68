using System.Globalization;
using EmbedCache.Contract.V1;

namespace EmbedCache.Cli;

/// <summary>Plain-text tables and a one-line progress bar.</summary>
internal static class Table
{
    public static async Task WriteAsync(TextWriter output, string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = new int[header.Length];
        foreach (var row in all)
        {
            for (var i = 0; i < row.Length; i++)
                widths[i] = Math.Max(widths[i], row[i].Length);
        }

        foreach (var row in all)
            await output.WriteLineAsync(string.Join("  ", row.Select((c, i) => i == row.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
        if (all.Count == 1)
            await output.WriteLineAsync("(none)");
    }

    public static string Bytes(ulong bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        var u = 0;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }

        return u == 0 ? $"{bytes} B" : v.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[u];
    }
}

/// <summary>Redraws one line on a terminal; prints a line per 10% otherwise (logs, CI).</summary>
internal sealed class ProgressBar(TextWriter output)
{
    private readonly bool _interactive = !Console.IsOutputRedirected && ReferenceEquals(output, Console.Out);
    private int _lastDecile = -1;

    public void Draw(PrewarmProgress p)
    {
        if (p.Total == 0 && p.State is JobState.Queued or JobState.Running)
            return; // still counting the dataset
        var fraction = p.Total == 0 ? 0 : (double)p.Processed / p.Total;
        var eta = p.EtaSeconds >= 0 ? $"ETA {p.EtaSeconds:0}s" : "ETA -";
        var text = $"{p.Processed}/{p.Total} ({fraction:P0}) {p.ItemsPerSecond:0}/s {eta}, encoded {p.Encoded}, cached {p.Skipped}, committed {p.Committed}";
        const int Width = 30;
        var filled = (int)(fraction * Width);
        var bar = $"[{new string('#', filled)}{new string('.', Width - filled)}] {text}";
        if (_interactive)
        {
            output.Write($"\r{bar}   ");
            return;
        }

        var decile = (int)(fraction * 10);
        if (decile != _lastDecile)
        {
            _lastDecile = decile;
            output.WriteLine(bar);
        }
    }

    public void Finish()
    {
        if (_interactive)
            output.WriteLine();
    }
}
