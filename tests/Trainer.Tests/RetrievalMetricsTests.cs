namespace EmbedCache.Trainer.Tests;

public sealed class RetrievalMetricsTests
{
    // Unit vectors at 0°, 5°, 20°, 90°, 200°.
    private static readonly float[] Rows = Unit(0, 5, 20, 90, 200);

    private static float[] Unit(params double[] degrees) =>
        degrees.SelectMany(d => new[] { (float)Math.Cos(d * Math.PI / 180), (float)Math.Sin(d * Math.PI / 180) }).ToArray();

    [Fact]
    public void Evaluate_Groups_CountsNearestNeighbourAndAnyInTopK()
    {
        // Groups: {0°, 5°}, {20°, 90°}, {200°} alone (no query).
        var relevance = Relevance.FromGroups([0, 0, 1, 1, 2]);

        var at1 = RetrievalMetrics.Evaluate(Rows, 2, relevance, k: 1);
        var at2 = RetrievalMetrics.Evaluate(Rows, 2, relevance, k: 2);
        var at3 = RetrievalMetrics.Evaluate(Rows, 2, relevance, k: 3);

        // 0°→5° yes, 5°→0° yes, 20°→5° no, 90°→20° yes.
        Assert.Equal(4, at1.Queries);
        Assert.Equal(0.75, at1.PrecisionAt1, 10);
        Assert.Equal(0.75, at1.RecallAtK, 10);
        // 20°'s two nearest are 5° and 0°: still no hit; its third is 90°.
        Assert.Equal(0.75, at2.RecallAtK, 10);
        Assert.Equal(1.0, at3.RecallAtK, 10);
        Assert.Equal(0.75, at3.PrecisionAt1, 10);
    }

    [Fact]
    public void Evaluate_Pairs_OnlyPositivePairsAreRelevant()
    {
        // 0° ↔ 20° positive; 5° ↔ 90° scored 0.2 (not relevant). Queries: items 0 and 2.
        var relevance = Relevance.FromPairs(5, [(0, 2, 1f), (1, 3, 0.2f)]);

        var at1 = RetrievalMetrics.Evaluate(Rows, 2, relevance, k: 1);
        var at2 = RetrievalMetrics.Evaluate(Rows, 2, relevance, k: 2);

        Assert.Equal(2, at1.Queries);
        Assert.Equal(0, at1.PrecisionAt1, 10);
        Assert.Equal(1.0, at2.RecallAtK, 10);
    }

    [Fact]
    public void Evaluate_KLargerThanTheSet_IsClampedToTheOtherItems()
    {
        var scores = RetrievalMetrics.Evaluate(Rows, 2, Relevance.FromGroups([0, 0, 1, 1, 2]), k: 50);

        Assert.Equal(4, scores.K);
        Assert.Equal(1.0, scores.RecallAtK, 10);
    }
}
