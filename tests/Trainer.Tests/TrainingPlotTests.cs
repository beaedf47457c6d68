using EmbedCache.TestSupport;
using ScottPlot;
using SkiaSharp;

namespace EmbedCache.Trainer.Tests;

public sealed class TrainingPlotTests
{
    private static RunMetrics Metrics(double baseline, params (double Loss, double P1)[] epochs)
    {
        var m = new RunMetrics
        {
            Dataset = "d",
            Encoder = "e",
            Source = "cached",
            Config = new RunConfig(HeadKind.Mlp, LossKind.Triplet, epochs.Length, 64, 1e-3, 0.5, 1, 5, 8, 8, 8, null),
            Fill = new FillMetrics(1, 10, 0),
            Baseline = new ScoreMetrics(baseline, 0.5),
            UntrainedHead = new ScoreMetrics(0.2, 0.4),
        };
        for (var i = 0; i < epochs.Length; i++)
            m.Epochs.Add(new EpochMetrics(i + 1, i == 0, epochs[i].Loss, epochs[i].P1, 0.9, 1, 0.1, 1, 100, 2));
        return m;
    }

    private static SKBitmap WriteAndDecode(TempDirectory dir, RunMetrics metrics, out TrainingPlot.Figure figure)
    {
        var path = dir.Combine("training.png");
        TrainingPlot.Write(path, metrics);
        // The figure as written: its panels' last render places the data in pixels.
        figure = TrainingPlot.Create(metrics);
        figure.Multiplot.Render(TrainingPlot.Width, TrainingPlot.Height);
        return SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path} does not decode");
    }

    private static bool IsColour(SKColor pixel, ScottPlot.Color expected) =>
        Math.Abs(pixel.Red - expected.R) <= 8 && Math.Abs(pixel.Green - expected.G) <= 8 && Math.Abs(pixel.Blue - expected.B) <= 8;

    /// <summary>Pixels of the colour within <paramref name="radius"/> of a point (a marker is drawn centred on it).</summary>
    private static bool ColourNear(SKBitmap png, Pixel at, ScottPlot.Color colour, int radius = 2)
    {
        for (var dy = -radius; dy <= radius; dy++)
        {
            for (var dx = -radius; dx <= radius; dx++)
            {
                if (IsColour(png.GetPixel((int)Math.Round(at.X) + dx, (int)Math.Round(at.Y) + dy), colour))
                    return true;
            }
        }

        return false;
    }

    [Fact]
    public void TrainingPlot_WrittenPng_DecodesAtItsSize_WithAMarkerAtEveryEpochOfBothSeries()
    {
        using var dir = new TempDirectory("plot");
        var metrics = Metrics(0.55, (0.40, 0.50), (0.20, 0.80), (0.10, 0.90));

        using var png = WriteAndDecode(dir, metrics, out var figure);

        Assert.Equal((TrainingPlot.Width, TrainingPlot.Height), (png.Width, png.Height));
        foreach (var e in metrics.Epochs)
        {
            var loss = figure.Loss.GetPixel(new Coordinates(e.Epoch, e.Loss));
            var precision = figure.Precision.GetPixel(new Coordinates(e.Epoch, e.PrecisionAt1));
            Assert.True(IsColour(png.GetPixel((int)loss.X, (int)loss.Y), TrainingPlot.LossColour), $"no loss marker at epoch {e.Epoch} ({loss})");
            Assert.True(IsColour(png.GetPixel((int)precision.X, (int)precision.Y), TrainingPlot.PrecisionColour), $"no precision marker at epoch {e.Epoch} ({precision})");
        }

        // The loss panel sits above the precision panel; the loss line does not reach into the precision panel.
        Assert.True(figure.Loss.GetPixel(new Coordinates(1, 0.10)).Y < figure.Precision.GetPixel(new Coordinates(1, 0.90)).Y);
        // Halfway between epochs 1 and 2 the loss line passes through the midpoint of its ends.
        Assert.True(ColourNear(png, figure.Loss.GetPixel(new Coordinates(1.5, 0.30)), TrainingPlot.LossColour));
    }

    [Fact]
    public void TrainingPlot_ShowsTheRawEmbeddingBaselineAcrossThePrecisionPanel()
    {
        using var dir = new TempDirectory("plot");
        var metrics = Metrics(0.55, (0.40, 0.50), (0.20, 0.80), (0.10, 0.90));

        using var png = WriteAndDecode(dir, metrics, out var figure);

        // Dashed: along the baseline, a good share of the samples between the epochs carry its colour.
        var samples = Enumerable.Range(0, 40).Select(i => figure.Precision.GetPixel(new Coordinates(0.6 + (i * 2.8 / 40), 0.55))).ToList();
        var onLine = samples.Count(p => ColourNear(png, p, TrainingPlot.BaselineColour, radius: 1));
        Assert.True(onLine >= 15, $"{onLine} of {samples.Count} samples along the baseline have its colour");
        // And not where there is no data.
        Assert.False(ColourNear(png, figure.Precision.GetPixel(new Coordinates(2.5, 0.65)), TrainingPlot.BaselineColour));
    }

    [Fact]
    public void TrainingPlot_HasALegendBesideEachPanel_NamingItsSeries()
    {
        using var dir = new TempDirectory("plot");
        var metrics = Metrics(0.3, (0.4, 0.5), (0.3, 0.6));

        using var png = WriteAndDecode(dir, metrics, out var figure);

        var legend = figure.Loss.GetPlottables().Concat(figure.Precision.GetPlottables())
            .SelectMany(p => p.LegendItems).Select(i => i.LabelText).ToList();
        Assert.Equal(["training loss", "raw embeddings", "precision@1 (validation)"], legend);
        // Right of the data areas, level with each panel, the legend shows each series' symbol in its colour.
        var right = (int)figure.Loss.GetPixel(new Coordinates(2.5, 0)).X + 10;
        var middle = (int)((figure.Loss.GetPixel(new Coordinates(1, 0.3)).Y + figure.Precision.GetPixel(new Coordinates(1, 0.6)).Y) / 2);
        Assert.True(CountColour(png, right, 0, png.Width, middle, TrainingPlot.LossColour) > 10, "no loss symbol in a legend beside the top panel");
        Assert.True(CountColour(png, right, middle, png.Width, png.Height, TrainingPlot.PrecisionColour) > 10, "no precision symbol in a legend beside the bottom panel");
        Assert.True(CountColour(png, right, middle, png.Width, png.Height, TrainingPlot.BaselineColour) > 5, "no baseline symbol in a legend beside the bottom panel");
        Assert.Equal(0, CountColour(png, right, 0, png.Width, middle, TrainingPlot.PrecisionColour));
    }

    private static int CountColour(SKBitmap png, int left, int top, int right, int bottom, ScottPlot.Color colour)
    {
        var n = 0;
        for (var y = top; y < bottom; y++)
        {
            for (var x = left; x < right; x++)
                n += IsColour(png.GetPixel(x, y), colour) ? 1 : 0;
        }

        return n;
    }

    [Fact]
    public void TrainingPlot_EpochsWithoutALoss_AreLeftOutOfTheLine()
    {
        using var dir = new TempDirectory("plot");
        var metrics = Metrics(0.3, (double.NaN, 0.5), (0.3, 0.6), (0.2, 0.7));

        using var png = WriteAndDecode(dir, metrics, out var figure);

        var drawn = figure.Loss.GetPlottables<ScottPlot.Plottables.Scatter>().Single().Data.GetScatterPoints();
        Assert.Equal([2.0, 3.0], drawn.Select(p => p.X));
        Assert.Equal((TrainingPlot.Width, TrainingPlot.Height), (png.Width, png.Height));
    }
}
