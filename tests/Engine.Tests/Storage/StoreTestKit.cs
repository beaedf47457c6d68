using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Engine.Tests.Storage;

/// <summary>Small budgets and deterministic rows for store tests.</summary>
internal static class StoreTestKit
{
    public static StoreOptions Options(string? saveDir, Tier defaultTier = Tier.Cpu) => new()
    {
        SaveDir = saveDir,
        DefaultTier = defaultTier,
        CpuMemoryBytes = 16L << 20,
        DiskMemoryBytes = 1L << 20,
        GpuMemoryBytes = 1L << 20,
        CheckpointInterval = TimeSpan.Zero,
        LogSegmentSizeBits = 20,
    };

    public static NamespaceSpec Spec(string encoder, Tier tier, int dim = 384, EmbeddingDType dtype = EmbeddingDType.Float32) =>
        new(encoder, Fingerprint.Compute(encoder + "/" + dim + "/" + dtype), dim, dtype, tier);

    /// <summary>Random-looking but reproducible bytes of row <paramref name="item"/> (unique per item and salt).</summary>
    public static void FillRow(Span<byte> row, long item, int salt = 0) =>
        new Random(unchecked((int)(item * 7919) + (salt * 1_000_003) + 0x5eed)).NextBytes(row);

    public static byte[] Rows(int rowBytes, long first, int count, int salt = 0)
    {
        var rows = new byte[rowBytes * count];
        for (var i = 0; i < count; i++)
            FillRow(rows.AsSpan(i * rowBytes, rowBytes), first + i, salt);
        return rows;
    }

    public static ulong[] Range(long first, int count)
    {
        var indices = new ulong[count];
        for (var i = 0; i < count; i++)
            indices[i] = (ulong)(first + i);
        return indices;
    }

    public static bool IsSet(ReadOnlySpan<byte> mask, int i) => FoundMask.IsSet(mask, i);

    public static int MaskBytes(int n) => FoundMask.Bytes(n);
}
