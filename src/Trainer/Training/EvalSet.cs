using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>The validation split held in memory: raw embeddings (N × dim) and who is relevant to whom.</summary>
public sealed class EvalSet : IDisposable
{
    public EvalSet(Tensor rows, Relevance relevance, bool hasPairs)
    {
        Rows = rows;
        Relevance = relevance;
        HasPairs = hasPairs;
    }

    public Tensor Rows { get; }

    public Relevance Relevance { get; }

    /// <summary>Whether the labels are scored pairs (else group ids).</summary>
    public bool HasPairs { get; }

    public int Count => (int)Rows.shape[0];

    /// <summary>Reads a split once, in index order, and keeps every distinct item.</summary>
    public static async Task<EvalSet> ReadAsync(IEmbeddingSource source, string split, CancellationToken cancellationToken)
    {
        var position = new Dictionary<long, int>();
        var rows = new List<Tensor>();
        var groups = new List<long>();
        var pairs = new List<(int, int, float)>();
        var hasPairs = false;
        try
        {
            await foreach (var batch in source.ReadAsync(new ReadRequest(split, 0, 512, Shuffle: false, Seed: 0), cancellationToken))
            {
                using (batch)
                {
                    var local = new int[batch.Count];
                    var keep = new List<long>();
                    for (var i = 0; i < batch.Count; i++)
                    {
                        if (position.TryGetValue(batch.Indices[i], out var known))
                        {
                            local[i] = known;
                            continue;
                        }

                        local[i] = position[batch.Indices[i]] = position.Count;
                        keep.Add(i);
                        if (batch.Groups is { } g)
                            groups.Add(g[i]);
                    }

                    using (var keepIndex = tensor(keep.ToArray()))
                        rows.Add(batch.Rows.index_select(0, keepIndex).DetachFromDisposeScope());
                    if (batch.Pairs is { } p)
                    {
                        hasPairs = true;
                        for (var i = 0; i < p.A.Length; i++)
                            pairs.Add((local[p.A[i]], local[p.B[i]], p.Scores[i]));
                    }
                }
            }

            if (position.Count == 0)
                throw new TrainerException($"split '{split}' is empty");
            var all = cat(rows, 0).DetachFromDisposeScope();
            var relevance = hasPairs ? Relevance.FromPairs(position.Count, pairs) : Relevance.FromGroups([.. groups]);
            if (!hasPairs && groups.Count != position.Count)
                throw new TrainerException($"split '{split}' has items without group ids");
            return new EvalSet(all, relevance, hasPairs);
        }
        finally
        {
            foreach (var r in rows)
                r.Dispose();
        }
    }

    public void Dispose() => Rows.Dispose();
}
