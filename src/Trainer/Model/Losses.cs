using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>Which similarity loss trains the head.</summary>
public enum LossKind
{
    /// <summary>Triplet loss with batch-hard mining, for group (class) datasets.</summary>
    Triplet,

    /// <summary>Contrastive loss over scored pairs, for pair datasets.</summary>
    Contrastive,
}

/// <summary>Cosine distances, the same measure the evaluation ranks by.</summary>
public static class Distances
{
    /// <summary>N × N matrix of <c>1 − cos(xᵢ, xⱼ)</c>.</summary>
    public static Tensor CosineMatrix(Tensor embeddings)
    {
        using var scope = NewDisposeScope();
        var unit = nn.functional.normalize(embeddings, p: 2, dim: 1);
        return (1 - unit.mm(unit.t())).MoveToOuterDisposeScope();
    }

    /// <summary>Row-wise <c>1 − cos(aᵢ, bᵢ)</c>.</summary>
    public static Tensor CosinePairs(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return (1 - nn.functional.cosine_similarity(a, b, dim: 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Batch-hard mining (Hermans et al.; Quaterion's <c>TripletLoss(mining="hard")</c>): for each
/// anchor, the positive farthest from it and the negative nearest to it, within the batch.
/// </summary>
public static class BatchHardMining
{
    /// <summary>Hardest positive and negative index per anchor, and whether the anchor has both.</summary>
    /// <param name="distances">N × N distances.</param>
    /// <param name="groups">N group ids (int64).</param>
    public static (Tensor Positive, Tensor Negative, Tensor Valid) Mine(Tensor distances, Tensor groups)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var n = distances.shape[0];
        var same = groups.unsqueeze(0).eq(groups.unsqueeze(1));
        var self = eye(n, dtype: ScalarType.Bool, device: distances.device);
        var positives = same.logical_and(self.logical_not());
        var negatives = same.logical_not();
        var (_, hardestPositive) = distances.masked_fill(positives.logical_not(), double.NegativeInfinity).max(1);
        var (_, hardestNegative) = distances.masked_fill(negatives.logical_not(), double.PositiveInfinity).min(1);
        var valid = positives.any(1).logical_and(negatives.any(1));
        return (hardestPositive.MoveToOuterDisposeScope(), hardestNegative.MoveToOuterDisposeScope(), valid.MoveToOuterDisposeScope());
    }
}

/// <summary>The losses, as pure functions of embeddings and labels.</summary>
public static class SimilarityLosses
{
    /// <summary>
    /// Mean over anchors that have a positive and a negative of
    /// <c>relu(d(a, hardest p) − d(a, hardest n) + margin)</c>, cosine distance. Null when no anchor qualifies.
    /// </summary>
    public static Tensor? BatchHardTriplet(Tensor embeddings, Tensor groups, double margin)
    {
        using var scope = NewDisposeScope();
        var distances = Distances.CosineMatrix(embeddings);
        var (positive, negative, valid) = BatchHardMining.Mine(distances, groups);
        if (!valid.any().item<bool>())
            return null;
        var toPositive = distances.gather(1, positive.unsqueeze(1)).squeeze(1);
        var toNegative = distances.gather(1, negative.unsqueeze(1)).squeeze(1);
        var losses = nn.functional.relu(toPositive - toNegative + margin);
        return losses.masked_select(valid).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Quaterion's ContrastiveLoss with soft labels: <c>½·(s·d² + (1−s)·relu(margin − d)²)</c> averaged
    /// over pairs, d the cosine distance between rows <paramref name="a"/>ᵢ and <paramref name="b"/>ᵢ, s the pair score.
    /// </summary>
    public static Tensor Contrastive(Tensor embeddings, Tensor a, Tensor b, Tensor scores, double margin)
    {
        using var scope = NewDisposeScope();
        var d = Distances.CosinePairs(embeddings.index_select(0, a), embeddings.index_select(0, b));
        var pull = scores * d.pow(2);
        var push = (1 - scores) * nn.functional.relu(margin - d).pow(2);
        return (0.5 * (pull + push)).mean().MoveToOuterDisposeScope();
    }
}
