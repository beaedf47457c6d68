using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>Which items are relevant to which: a shared group id, or a positive pair between them.</summary>
public sealed class Relevance
{
    private readonly long[]? _groups;
    private readonly HashSet<int>[]? _neighbours;

    private Relevance(int count, long[]? groups, HashSet<int>[]? neighbours)
    {
        Count = count;
        _groups = groups;
        _neighbours = neighbours;
    }

    public int Count { get; }

    /// <summary>Items are relevant to each other when their group ids are equal.</summary>
    public static Relevance FromGroups(long[] groups) => new(groups.Length, groups, null);

    /// <summary>Items are relevant to each other when a pair with score ≥ 0.5 joins them.</summary>
    public static Relevance FromPairs(int count, IEnumerable<(int A, int B, float Score)> pairs)
    {
        var neighbours = new HashSet<int>[count];
        for (var i = 0; i < count; i++)
            neighbours[i] = [];
        foreach (var (a, b, score) in pairs)
        {
            if (score < 0.5f || a == b)
                continue;
            neighbours[a].Add(b);
            neighbours[b].Add(a);
        }

        return new Relevance(count, null, neighbours);
    }

    public bool IsRelevant(int query, int candidate) =>
        query != candidate && (_groups is { } g ? g[query] == g[candidate] : _neighbours![query].Contains(candidate));

    /// <summary>Whether anything besides the query itself is relevant to it (else it is no query).</summary>
    public bool HasRelevant(int query)
    {
        if (_neighbours is { } n)
            return n[query].Count > 0;
        var g = _groups!;
        for (var i = 0; i < g.Length; i++)
        {
            if (i != query && g[i] == g[query])
                return true;
        }

        return false;
    }
}

/// <summary>Retrieval quality of an embedding space.</summary>
/// <param name="PrecisionAt1">Fraction of queries whose nearest neighbour is relevant.</param>
/// <param name="RecallAtK">Fraction of queries with at least one relevant item among the k nearest (metric-learning Recall@K).</param>
/// <param name="Queries">Items that had something relevant to find.</param>
public sealed record RetrievalScores(double PrecisionAt1, double RecallAtK, int K, int Queries);

/// <summary>Leave-one-out nearest neighbours by cosine similarity over an evaluation set.</summary>
public static class RetrievalMetrics
{
    /// <summary>Scores of <paramref name="embeddings"/> (N × D): each item queries all the others.</summary>
    public static RetrievalScores Evaluate(Tensor embeddings, Relevance relevance, int k)
    {
        var n = (int)embeddings.shape[0];
        if (n != relevance.Count)
            throw new ArgumentException($"{n} embeddings but relevance over {relevance.Count} items", nameof(relevance));
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        k = Math.Min(k, n - 1);
        if (k < 1)
            return new RetrievalScores(0, 0, 0, 0);

        long[] nearest;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var unit = nn.functional.normalize(embeddings.to(ScalarType.Float32), p: 2, dim: 1);
            var similarity = unit.mm(unit.t());
            similarity.masked_fill_(eye(n, dtype: ScalarType.Bool), double.NegativeInfinity);
            var (_, indices) = similarity.topk(k, dim: 1, largest: true, sorted: true);
            nearest = indices.contiguous().data<long>().ToArray();
        }

        var queries = 0;
        var firstRelevant = 0;
        var anyRelevant = 0;
        for (var q = 0; q < n; q++)
        {
            if (!relevance.HasRelevant(q))
                continue;
            queries++;
            if (relevance.IsRelevant(q, (int)nearest[q * k]))
                firstRelevant++;
            for (var j = 0; j < k; j++)
            {
                if (relevance.IsRelevant(q, (int)nearest[(q * k) + j]))
                {
                    anyRelevant++;
                    break;
                }
            }
        }

        return queries == 0
            ? new RetrievalScores(0, 0, k, 0)
            : new RetrievalScores((double)firstRelevant / queries, (double)anyRelevant / queries, k, queries);
    }

    /// <summary>The same over plain rows (N × <paramref name="dim"/>, row-major).</summary>
    public static RetrievalScores Evaluate(float[] rows, int dim, Relevance relevance, int k)
    {
        using var t = tensor(rows, [rows.Length / dim, dim]);
        return Evaluate(t, relevance, k);
    }
}
