using ScottPlot;
using SkiaSharp;

namespace EmbedCache.Trainer;

/// <summary>
/// The run's <c>training.png</c>, drawn with ScottPlot: training loss per epoch (top panel) and
/// validation precision@1 per epoch with the raw-embedding baseline dashed (bottom panel).
/// </summary>
public static class TrainingPlot
{
    public const int Width = 960;
    public const int Height = 640;

    public static readonly Color LossColour = new(31, 119, 180);
    public static readonly Color PrecisionColour = new(255, 127, 14);
    public static readonly Color BaselineColour = new(128, 128, 128);

    /// <summary>The labels need a font; a machine without one (a minimal container) still gets the lines.</summary>
    public static bool HasFonts => SKFontManager.Default.FontFamilyCount > 0;

    /// <summary>The two panels of a figure, for a caller that wants to render it or find where a point lands.</summary>
    public sealed record Figure(Multiplot Multiplot, Plot Loss, Plot Precision);

    public static Figure Create(RunMetrics metrics)
    {
        var figure = new Multiplot();
        figure.AddPlots(2);
        var loss = figure.GetPlot(0);
        var precision = figure.GetPlot(1);
        var epochs = metrics.Epochs.Count;

        loss.Title($"{metrics.Dataset} / {metrics.Encoder}: {metrics.Source}, {Name(metrics.Config.Head)} head, {Name(metrics.Config.Loss)} loss");
        loss.YLabel("loss");
        if (Series(loss, metrics.Epochs, e => e.Loss, LossColour, "training loss") == 0)
            loss.Axes.SetLimitsY(0, 1);

        precision.XLabel("epoch");
        precision.YLabel("precision@1");
        var baseline = precision.Add.HorizontalLine(metrics.Baseline.PrecisionAt1, width: 2, color: BaselineColour, pattern: LinePattern.Dashed);
        baseline.LegendText = "raw embeddings";
        Series(precision, metrics.Epochs, e => e.PrecisionAt1, PrecisionColour, "precision@1 (validation)");
        // Precision near 1 would be a flat line on a 0..1 axis: span what was measured, baseline included.
        var values = metrics.Epochs.Select(e => e.PrecisionAt1).Append(metrics.Baseline.PrecisionAt1).Where(double.IsFinite).ToList();
        var (low, high) = (values.Min(), values.Max());
        var pad = Math.Max(0.01, (high - low) * 0.1);
        precision.Axes.SetLimitsY(low - pad, high + pad);

        var font = SansFont();
        foreach (var plot in new[] { loss, precision })
        {
            plot.Font.Set(font);
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
            plot.Axes.SetLimitsX(0.5, epochs + 0.5);
            plot.ShowLegend(Edge.Right);
        }

        // Fixed padding lines the two data areas up, with room on the right for the legends.
        loss.Layout.Fixed(new PixelPadding(left: 80, right: 240, bottom: 30, top: 45));
        precision.Layout.Fixed(new PixelPadding(left: 80, right: 240, bottom: 55, top: 20));
        return new Figure(figure, loss, precision);
    }

    public static void Write(string path, RunMetrics metrics) => Create(metrics).Multiplot.SavePng(path, Width, Height);

    /// <summary>One line with a marker per epoch; epochs whose value is not finite (nothing to learn from) are left out.</summary>
    /// <returns>The points drawn.</returns>
    private static int Series(Plot plot, List<EpochMetrics> epochs, Func<EpochMetrics, double> value, Color colour, string label)
    {
        var finite = epochs.Where(e => double.IsFinite(value(e))).ToList();
        var scatter = plot.Add.Scatter(finite.Select(e => (double)e.Epoch).ToArray(), finite.Select(value).ToArray(), colour);
        scatter.LineWidth = 2;
        scatter.MarkerSize = 8;
        scatter.LegendText = label;
        return finite.Count;
    }

    /// <summary>A sans-serif family the machine has (ScottPlot's own guess can land on a serif face here).</summary>
    private static string SansFont()
    {
        foreach (var family in (string[])["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"])
        {
            using var typeface = SKFontManager.Default.MatchFamily(family);
            if (typeface?.FamilyName == family)
                return family;
        }

        return Fonts.Default;
    }

    private static string Name<T>(T value)
        where T : struct, Enum => value.ToString().ToLowerInvariant();
}
