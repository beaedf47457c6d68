using System.Diagnostics;
using System.Globalization;

namespace EmbedCache.Trainer;

/// <summary>
/// Per-epoch progress. On a terminal a bar is redrawn in place (at most ten times a second);
/// when output is redirected only whole lines are written, one when each phase ends.
/// </summary>
public sealed class ConsoleProgress
{
    private const int BarWidth = 30;
    private readonly TextWriter _output;
    private readonly bool _redraw;
    private readonly Stopwatch _sinceDraw = Stopwatch.StartNew();
    private bool _barShown;

    public ConsoleProgress(TextWriter output, bool redraw)
    {
        _output = output;
        _redraw = redraw;
    }

    /// <summary>For the process console: redraws only when stdout is a terminal.</summary>
    public static ConsoleProgress ForConsole() => new(Console.Out, !Console.IsOutputRedirected);

    /// <summary>A bar for <paramref name="label"/>: done of total, and a short status after it.</summary>
    public void Update(string label, long done, long total, string status)
    {
        if (!_redraw || (_sinceDraw.ElapsedMilliseconds < 100 && done < total))
            return;
        _sinceDraw.Restart();
        var fraction = total > 0 ? Math.Clamp((double)done / total, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * BarWidth);
        _output.Write($"\r{label} [{new string('#', filled)}{new string('-', BarWidth - filled)}] {done}/{total} {status}\u001b[K");
        _output.Flush();
        _barShown = true;
    }

    /// <summary>A finished line (replaces the bar on a terminal).</summary>
    public void Line(string text)
    {
        if (_barShown)
            _output.Write("\r\u001b[K");
        _barShown = false;
        _output.WriteLine(text);
        _output.Flush();
    }

    public static string Format(double value, string format = "0.0000") => value.ToString(format, CultureInfo.InvariantCulture);
}
