using System.Globalization;
using EmbedCache.Contract.V1;
using Spectre.Console;

namespace EmbedCache.Cli;

/// <summary>
/// The CLI's console output through Spectre.Console. Tables are borderless columns, one row a line, so
/// scripts can split them; on a terminal the header is bold and prewarm shows a live progress bar. When
/// output is redirected there are no escape codes, no wrapping and progress is a plain line per 10%.
/// </summary>
internal sealed class Output
{
    private readonly TextWriter _writer;
    private readonly bool _terminal;
    private readonly IAnsiConsole _console;

    public Output(TextWriter writer, bool terminal)
    {
        _writer = writer;
        _terminal = terminal;
        _console = Console(writer, terminal);
        Live = terminal && _console.Profile.Capabilities.Interactive && _console.Profile.Capabilities.Ansi;
    }

    private static IAnsiConsole Console(TextWriter writer, bool terminal)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        // Redirected: a row is never wrapped at an imagined 80 columns.
        if (!terminal)
            console.Profile.Width = 4096;
        return console;
    }

    /// <summary>Whether progress can be redrawn in place.</summary>
    public bool Live { get; }

    public Task LineAsync(string text) => _writer.WriteLineAsync(text);

    public void Table(string[] header, IEnumerable<string[]> rows)
    {
        var table = new Spectre.Console.Table().Border(TableBorder.None);
        for (var i = 0; i < header.Length; i++)
            table.AddColumn(new TableColumn(new Text(header[i], new Style(decoration: Decoration.Bold))).PadLeft(0).PadRight(i == header.Length - 1 ? 0 : 2));
        var any = false;
        foreach (var row in rows)
        {
            table.AddRow(row.Select(c => new Text(c)));
            any = true;
        }

        if (_terminal)
        {
            _console.Write(table);
        }
        else
        {
            // Rows as lines without the padding after the last column.
            using var text = new StringWriter();
            Console(text, terminal: false).Write(table);
            foreach (var line in text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
                _writer.WriteLine(line.TrimEnd());
        }

        if (!any)
            _writer.WriteLine("(none)");
    }

    /// <summary>Follows a prewarm job: a live bar on a terminal, else a plain line per 10% of the job.</summary>
    public async Task<PrewarmProgress?> FollowAsync(string label, IAsyncEnumerable<PrewarmProgress> job)
    {
        if (!Live)
        {
            PrewarmProgress? last = null;
            var lastDecile = -1;
            await foreach (var p in job)
            {
                last = p;
                if (Counting(p))
                    continue;
                var decile = (int)(Fraction(p) * 10);
                if (decile != lastDecile)
                {
                    lastDecile = decile;
                    await LineAsync(Status(p));
                }
            }

            return last;
        }

        return await _console.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(label), autoStart: true, maxValue: 1);
                task.IsIndeterminate = true;
                PrewarmProgress? last = null;
                await foreach (var p in job)
                {
                    last = p;
                    if (Counting(p))
                        continue;
                    task.IsIndeterminate = false;
                    task.MaxValue = Math.Max(p.Total, 1);
                    task.Value = p.Processed;
                    task.Description = Markup.Escape($"{label} {Status(p, percent: false)}");
                }

                task.StopTask();
                return last;
            });
    }

    /// <summary>A job that has not counted its dataset yet has nothing to show.</summary>
    private static bool Counting(PrewarmProgress p) => p.Total == 0 && p.State is JobState.Queued or JobState.Running;

    private static double Fraction(PrewarmProgress p) => p.Total == 0 ? 0 : (double)p.Processed / p.Total;

    private static string Status(PrewarmProgress p, bool percent = true)
    {
        var eta = p.EtaSeconds >= 0 ? FormattableString.Invariant($"ETA {p.EtaSeconds:0}s") : "ETA -";
        var fraction = percent ? FormattableString.Invariant($" ({Fraction(p) * 100:0}%)") : "";
        return FormattableString.Invariant(
            $"{p.Processed}/{p.Total}{fraction} {p.ItemsPerSecond:0}/s {eta}, encoded {p.Encoded}, cached {p.Skipped}, committed {p.Committed}")
            + (p.Cluster is { } cluster ? FormattableString.Invariant($", shards {cluster.ShardsDone}/{cluster.Shards} on {cluster.Nodes.Count} node(s)") : "");
    }

    /// <summary>"shards 5/16 done, 2 leased; node-a 3 done 1 leased (6144 encoded), node-b …" — a distributed job.</summary>
    public static string Shards(ClusterProgress cluster) =>
        FormattableString.Invariant($"shards {cluster.ShardsDone}/{cluster.Shards} done, {cluster.ShardsLeased} leased") +
        (cluster.Nodes.Count == 0 ? "" : "; " + string.Join(", ", cluster.Nodes.Select(n =>
            FormattableString.Invariant($"{n.Node} {n.ShardsDone} done {n.ShardsLeased} leased ({n.Encoded} encoded, {n.Skipped} skipped)"))));

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
