using System.Globalization;
using Spectre.Console;

namespace EmbedCache.Trainer;

/// <summary>
/// Progress of each phase of a run (the fill, every epoch) and the line that reports it when it ends.
/// On a terminal a Spectre.Console progress bar runs while the phase does and is cleared after it;
/// when output is redirected (logs, CI, containers) only the lines are written, with no escape codes.
/// </summary>
public sealed class ConsoleProgress
{
    private readonly TextWriter _output;
    private readonly IAnsiConsole? _live;

    /// <param name="output">Where the lines go (and the bar, on a terminal).</param>
    /// <param name="redraw">Whether <paramref name="output"/> is a terminal a bar may be redrawn on.</param>
    public ConsoleProgress(TextWriter output, bool redraw)
    {
        _output = output;
        if (redraw)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
            // Spectre's own look at the terminal has the last word (TERM=dumb, no cursor control).
            _live = console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi ? console : null;
        }
    }

    /// <summary>For the process console: bars only when stdout is a terminal.</summary>
    public static ConsoleProgress ForConsole() => new(Console.Out, !Console.IsOutputRedirected);

    /// <summary>Runs one phase with a bar labelled <paramref name="label"/> that <paramref name="work"/> advances.</summary>
    public async Task<T> PhaseAsync<T>(string label, Func<IPhaseProgress, Task<T>> work)
    {
        if (_live is null)
            return await work(NoBar.Instance);

        return await _live.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(label), autoStart: true, maxValue: 1);
                task.IsIndeterminate = true;
                return await work(new Bar(task, label));
            });
    }

    /// <summary>A finished line: what a phase measured.</summary>
    public void Line(string text)
    {
        _output.WriteLine(text);
        _output.Flush();
    }

    public static string Format(double value, string format = "0.0000") => value.ToString(format, CultureInfo.InvariantCulture);

    private sealed class Bar(ProgressTask task, string label) : IPhaseProgress
    {
        public void Report(long done, long total, string status)
        {
            task.IsIndeterminate = total <= 0;
            task.MaxValue = Math.Max(total, 1);
            task.Value = Math.Min(done, task.MaxValue);
            task.Description = Markup.Escape($"{label} {done}/{total} {status}".TrimEnd());
        }
    }

    private sealed class NoBar : IPhaseProgress
    {
        public static readonly NoBar Instance = new();

        public void Report(long done, long total, string status)
        {
        }
    }
}

/// <summary>Where a running phase reports how far it is.</summary>
public interface IPhaseProgress
{
    void Report(long done, long total, string status);
}
