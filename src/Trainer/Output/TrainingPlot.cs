using System.Globalization;

namespace EmbedCache.Trainer;

/// <summary>
/// The run's PNG: training loss per epoch (top panel) and validation precision@1 per epoch
/// (bottom panel, 0..1, with the raw-embedding baseline dashed).
/// </summary>
public static class TrainingPlot
{
    public const int Width = 800;
    public const int Height = 560;
    public static readonly Rgba Background = new(255, 255, 255);
    public static readonly Rgba Axis = new(0, 0, 0);
    public static readonly Rgba Grid = new(225, 225, 225);
    public static readonly Rgba LossColour = new(31, 119, 180);
    public static readonly Rgba PrecisionColour = new(255, 127, 14);
    public static readonly Rgba BaselineColour = new(130, 130, 130);

    /// <summary>Plot areas: left, top, right, bottom (inclusive pixel bounds).</summary>
    public static readonly (int Left, int Top, int Right, int Bottom) LossArea = (80, 40, 770, 240);

    public static readonly (int Left, int Top, int Right, int Bottom) PrecisionArea = (80, 310, 770, 510);

    /// <summary>Loss axis top: the largest epoch loss with 10% headroom (1 when all are 0).</summary>
    public static double LossAxisMax(IReadOnlyList<double> losses)
    {
        var max = losses.Where(double.IsFinite).DefaultIfEmpty(0).Max();
        return max > 0 ? max * 1.1 : 1;
    }

    /// <summary>The pixel where an epoch's value lands in a plot area whose y-axis spans 0..<paramref name="yMax"/>.</summary>
    public static (int X, int Y) PointFor((int Left, int Top, int Right, int Bottom) area, int epoch, int epochs, double value, double yMax)
    {
        var x = epochs <= 1
            ? (area.Left + area.Right) / 2
            : area.Left + (int)Math.Round((double)(epoch - 1) / (epochs - 1) * (area.Right - area.Left));
        var fraction = Math.Clamp(value / yMax, 0, 1);
        var y = area.Bottom - (int)Math.Round(fraction * (area.Bottom - area.Top));
        return (x, y);
    }

    public static Canvas Draw(RunMetrics metrics)
    {
        var canvas = new Canvas(Width, Height, Background);
        var epochs = metrics.Epochs.Count;
        var losses = metrics.Epochs.Select(e => e.Loss).ToList();
        var lossMax = LossAxisMax(losses);

        Panel(canvas, LossArea, "LOSS", lossMax, epochs);
        Panel(canvas, PrecisionArea, "PRECISION AT 1", 1, epochs);
        canvas.Text((Width / 2) - (Canvas.TextWidth("EPOCH") / 2), Height - 22, "EPOCH", Axis);

        var baseline = PointFor(PrecisionArea, 1, 1, metrics.Baseline.PrecisionAt1, 1).Y;
        canvas.Line(PrecisionArea.Left, baseline, PrecisionArea.Right, baseline, BaselineColour, thickness: 2, dash: 8);
        canvas.Text(PrecisionArea.Right - Canvas.TextWidth("RAW") - 4, baseline - 14, "RAW", BaselineColour);

        Series(canvas, LossArea, losses, lossMax, LossColour);
        Series(canvas, PrecisionArea, metrics.Epochs.Select(e => e.PrecisionAt1).ToList(), 1, PrecisionColour);
        return canvas;
    }

    public static void Write(string path, RunMetrics metrics) => PngEncoder.Write(path, Draw(metrics));

    private static void Panel(Canvas canvas, (int Left, int Top, int Right, int Bottom) area, string title, double yMax, int epochs)
    {
        for (var i = 0; i <= 4; i++)
        {
            var y = area.Bottom - (i * (area.Bottom - area.Top) / 4);
            canvas.Line(area.Left, y, area.Right, y, Grid);
            var label = (yMax * i / 4).ToString(yMax >= 10 ? "0" : "0.00", CultureInfo.InvariantCulture);
            canvas.Text(area.Left - Canvas.TextWidth(label) - 6, y - 5, label, Axis);
        }

        var every = Math.Max(1, (int)Math.Ceiling(epochs / 20.0));
        for (var e = 1; e <= epochs; e += every)
        {
            var (x, _) = PointFor(area, e, epochs, 0, 1);
            canvas.Line(x, area.Bottom, x, area.Bottom + 5, Axis);
            var label = e.ToString(CultureInfo.InvariantCulture);
            canvas.Text(x - (Canvas.TextWidth(label) / 2), area.Bottom + 9, label, Axis);
        }

        canvas.Line(area.Left, area.Top, area.Left, area.Bottom, Axis, thickness: 2);
        canvas.Line(area.Left, area.Bottom, area.Right, area.Bottom, Axis, thickness: 2);
        canvas.Text(area.Left, area.Top - 20, title, Axis);
    }

    private static void Series(Canvas canvas, (int Left, int Top, int Right, int Bottom) area, IReadOnlyList<double> values, double yMax, Rgba colour)
    {
        (int X, int Y)? previous = null;
        for (var i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                previous = null;
                continue;
            }

            var point = PointFor(area, i + 1, values.Count, values[i], yMax);
            if (previous is { } p)
                canvas.Line(p.X, p.Y, point.X, point.Y, colour, thickness: 3);
            canvas.FillRect(point.X - 4, point.Y - 4, 9, 9, colour);
            previous = point;
        }
    }
}
