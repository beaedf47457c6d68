using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Storage;

namespace EmbedCache.StoreCrashChild;

/// <summary>The rows the crash child writes; Engine.Tests links this file to check them bit for bit.</summary>
public static class CrashRows
{
    public static readonly NamespaceSpec Spec =
        new("crash-encoder", Fingerprint.Compute("crash-encoder"), 384, EmbeddingDType.Float32, Tier.Cpu);

    /// <summary>Deterministic across processes (no HashCode, whose seed is per process).</summary>
    public static byte[] Rows(long first, int count, int generation)
    {
        var rowBytes = Spec.RowBytes;
        var rows = new byte[rowBytes * count];
        for (var i = 0; i < count; i++)
            new Random(unchecked((int)((first + i) * 7919) + (generation * 1_000_003))).NextBytes(rows.AsSpan(i * rowBytes, rowBytes));
        return rows;
    }

    public static ulong[] Range(long first, int count)
    {
        var indices = new ulong[count];
        for (var i = 0; i < count; i++)
            indices[i] = (ulong)(first + i);
        return indices;
    }
}
