using System.Diagnostics;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// What <c>compare</c> prints on stdout (bench/run.sh appends it to bench/RESULTS.md): the scenarios fill it in as
/// they run, <see cref="Print"/> writes it at the end. First the headline lines (their form is what RESULTS.md's readers
/// look for), then the run's line (machine, load average, minutes), the table of rates, the latency table and the
/// table of the other measurements.
/// </summary>
internal sealed class CompareReport
{
    public sealed record Row(string Path, string Batch, double EmbPerSec, double MBps, string Note);

    /// <summary>The table of rates; each row is also given as a multiple of the first (the cached float32 epoch).</summary>
    public List<Row> Rows { get; } = [];

    /// <summary>Rows of the latency table.</summary>
    public List<string> Latency { get; } = [];

    /// <summary>Rows of the table of the other measurements (prewarm, training, memory, restart).</summary>
    public List<string> Extra { get; } = [];

    /// <summary>The cached-epoch headlines (float32, float16), then the load average while the epochs ran.</summary>
    public string[] Headline { get; set; } = ["cached epoch float32: n/a", "cached epoch float16: n/a"];

    public string SharedHeadline { get; set; } = "shared-memory epoch float32: n/a";

    public string PretrainedHeadline { get; set; } = "prewarm all-minilm-l6-v2: n/a";

    public string RemoteHeadline { get; set; } = "remote tier: n/a";

    /// <summary>The remote-tier section's first line: what ran where.</summary>
    public string RemoteIntro { get; set; } = "Remote tier: n/a";

    /// <summary>Rows of the remote-tier section's table of measurements (serving vs re-encoding, distributed prewarm).</summary>
    public List<string> RemoteExtra { get; } = [];

    /// <summary>The remote-tier section's table of rates (rows/s, MB/s).</summary>
    public List<Row> RemoteRows { get; } = [];

    /// <summary>Lines under the remote-tier section's tables.</summary>
    public List<string> RemoteNotes { get; } = [];

    public void Print(Settings s, string loadStart, Stopwatch total)
    {
        var o = Console.Out;
        o.WriteLine(Headline[0]);
        o.WriteLine(Headline[1]);
        o.WriteLine(PretrainedHeadline);
        o.WriteLine(SharedHeadline);
        o.WriteLine(RemoteHeadline);
        o.WriteLine();
        o.WriteLine(FormattableString.Invariant(
            $"`bench/run.sh{(s.Quick ? " --quick" : "")}` — {MachineInfo.Describe()}, {DateTime.UtcNow:HH:mm} UTC; load average {loadStart} at start, {MachineInfo.LoadAverage()} at end; {total.Elapsed.TotalMinutes:0.0} min. {Headline[2]}."));
        o.WriteLine();
        o.WriteLine("| path | batch | embeddings/s | MB/s | × cached f32 epoch | note |");
        o.WriteLine("|---|---:|---:|---:|---:|---|");
        var f32 = Rows[0].EmbPerSec;
        foreach (var r in Rows)
            o.WriteLine(FormattableString.Invariant($"| {r.Path} | {r.Batch} | {r.EmbPerSec:N0} | {r.MBps:N0} | {r.EmbPerSec / f32:0.00} | {r.Note} |"));
        o.WriteLine();
        o.WriteLine("GetEmbeddings latency, 256 random float32 keys per request, each client its own channel and stream, sequential requests, pooled client streams:");
        o.WriteLine();
        o.WriteLine("| concurrent clients | load | p50 ms | p99 ms | embeddings/s (all clients) |");
        o.WriteLine("|---:|---|---:|---:|---:|");
        foreach (var l in Latency)
            o.WriteLine(l);
        o.WriteLine();
        o.WriteLine("| measurement | result | baseline | ratio |");
        o.WriteLine("|---|---|---|---|");
        foreach (var e in Extra)
            o.WriteLine(e);
        o.WriteLine();
        PrintRemote(o);
    }

    /// <summary>What <c>compare --only remote</c> prints: the remote tier's headline, the run's line and its section.</summary>
    public void PrintRemoteOnly(Settings s, string loadStart, Stopwatch total)
    {
        var o = Console.Out;
        o.WriteLine(RemoteHeadline);
        o.WriteLine();
        o.WriteLine(FormattableString.Invariant(
            $"`EmbedCache.Bench compare --only remote{(s.Quick ? " --quick" : "")}` — {MachineInfo.Describe()}, {DateTime.UtcNow:HH:mm} UTC; load average {loadStart} at start, {MachineInfo.LoadAverage()} at end; {total.Elapsed.TotalMinutes:0.0} min."));
        o.WriteLine();
        PrintRemote(o);
    }

    private void PrintRemote(TextWriter o)
    {
        o.WriteLine(RemoteIntro);
        o.WriteLine();
        o.WriteLine("| measurement | result | baseline | ratio |");
        o.WriteLine("|---|---|---|---|");
        foreach (var e in RemoteExtra)
            o.WriteLine(e);
        o.WriteLine();
        o.WriteLine("| path | batch | rows/s | MB/s | note |");
        o.WriteLine("|---|---:|---:|---:|---|");
        foreach (var r in RemoteRows)
            o.WriteLine(FormattableString.Invariant($"| {r.Path} | {r.Batch} | {r.EmbPerSec:N0} | {r.MBps:N0} | {r.Note} |"));
        o.WriteLine();
        foreach (var n in RemoteNotes)
        {
            o.WriteLine(n);
            o.WriteLine();
        }
    }
}
