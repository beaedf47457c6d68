using static TorchSharp.torch;

namespace EmbedCache.Trainer.Tests;

public sealed class LossTests
{
    // Unit vectors at these angles (degrees) and their groups; item 5 is alone in its group.
    private static readonly double[] Angles = [0, 10, 90, 45, 180, 300];
    private static readonly long[] Groups = [0, 0, 0, 1, 1, 2];

    private static Tensor Points(params double[] degrees)
    {
        var rows = new float[degrees.Length * 2];
        for (var i = 0; i < degrees.Length; i++)
        {
            rows[2 * i] = (float)Math.Cos(degrees[i] * Math.PI / 180);
            rows[(2 * i) + 1] = (float)Math.Sin(degrees[i] * Math.PI / 180);
        }

        return tensor(rows, [degrees.Length, 2]);
    }

    /// <summary>Cosine distance between unit vectors at two angles, computed by hand.</summary>
    private static double D(double a, double b) => 1 - Math.Cos((a - b) * Math.PI / 180);

    [Fact]
    public void BatchHardMining_HandMadeBatch_PicksFarthestPositiveAndNearestNegative()
    {
        using var scope = NewDisposeScope();
        var distances = Distances.CosineMatrix(Points(Angles));

        var (positive, negative, valid) = BatchHardMining.Mine(distances, tensor(Groups));

        // Anchor 0 (0°): positives 10°, 90° → 90° (item 2); negatives 45°, 180°, 300° → 45° (item 3).
        // Anchor 3 (45°): its only positive is 180° (item 4); nearest negative is 10° (item 1).
        // Anchor 4 (180°): positive 45° (item 3); nearest negative 90° (item 2), not 300° (item 5, 120° away).
        Assert.Equal(new long[] { 2, 2, 0, 4, 3 }, positive.data<long>().ToArray()[..5]);
        Assert.Equal(new long[] { 3, 3, 3, 1, 2 }, negative.data<long>().ToArray()[..5]);
        // Item 5 has no positive: no triplet.
        Assert.Equal(new[] { true, true, true, true, true, false }, valid.data<bool>().ToArray());
    }

    [Fact]
    public void BatchHardTriplet_HandMadeBatch_MatchesHandComputedMean()
    {
        using var scope = NewDisposeScope();
        const double margin = 0.5;

        var loss = SimilarityLosses.BatchHardTriplet(Points(Angles), tensor(Groups), margin)!.item<float>();

        double[] perAnchor =
        [
            D(0, 90) - D(0, 45) + margin,
            D(10, 90) - D(10, 45) + margin,
            D(90, 0) - D(90, 45) + margin,
            D(45, 180) - D(45, 10) + margin,
            D(180, 45) - D(180, 90) + margin,
        ];
        Assert.Equal(perAnchor.Average(), loss, 4);
    }

    [Fact]
    public void BatchHardTriplet_WellSeparatedGroups_IsZeroBeyondTheMargin()
    {
        using var scope = NewDisposeScope();

        var loss = SimilarityLosses.BatchHardTriplet(Points(0, 5, 180, 185), tensor(new long[] { 0, 0, 1, 1 }), 0.5)!.item<float>();

        Assert.Equal(0, loss, 6);
    }

    [Fact]
    public void BatchHardTriplet_NoAnchorWithBothPositiveAndNegative_IsNull()
    {
        using var scope = NewDisposeScope();

        Assert.Null(SimilarityLosses.BatchHardTriplet(Points(0, 90, 180), tensor(new long[] { 0, 1, 2 }), 0.5));
        Assert.Null(SimilarityLosses.BatchHardTriplet(Points(0, 90, 180), tensor(new long[] { 7, 7, 7 }), 0.5));
    }

    [Fact]
    public void Contrastive_HandMadePairs_MatchesHandComputedMean()
    {
        using var scope = NewDisposeScope();
        const double margin = 0.5;
        var points = Points(0, 10, 90, 45, 180);

        var loss = SimilarityLosses.Contrastive(points, tensor(new long[] { 0, 0, 2 }), tensor(new long[] { 1, 3, 4 }),
            tensor(new float[] { 1, 0, 0.5f }), margin).item<float>();

        static double Term(double d, double s, double m) => 0.5 * ((s * d * d) + ((1 - s) * Math.Pow(Math.Max(0, m - d), 2)));
        var expected = (Term(D(0, 10), 1, margin) + Term(D(0, 45), 0, margin) + Term(D(90, 180), 0.5, margin)) / 3;
        Assert.Equal(expected, loss, 5);
    }

    [Fact]
    public void Contrastive_Gradient_PullsPositivesTogetherAndPushesNegativesApart()
    {
        using var scope = NewDisposeScope();
        // A positive pair (0°, 30°) and, apart from it, a negative pair (90°, 120°) inside the margin.
        var points = Points(0, 30, 90, 120).requires_grad_();
        var loss = SimilarityLosses.Contrastive(points, tensor(new long[] { 0, 2 }), tensor(new long[] { 1, 3 }), tensor(new float[] { 1, 0 }), 1.0);

        loss.backward();
        var step = points.detach() - (0.1 * points.grad!);
        var moved = Distances.CosineMatrix(step);
        var before = Distances.CosineMatrix(points.detach());

        Assert.True(moved[0, 1].item<float>() < before[0, 1].item<float>());
        Assert.True(moved[2, 3].item<float>() > before[2, 3].item<float>());
    }
}
