using EmbedCache.Contract.V1;
using Google.Protobuf;

namespace EmbedCache.Trainer.Tests;

/// <summary>Served batches (as the wire carries them) become rows and labels; no service involved.</summary>
public sealed class CachedBatchTests
{
    private static EncoderEmbeddings Float16Rows(float[] values, int dim, byte found, uint encoded)
    {
        var bytes = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)values[i]);
        return new EncoderEmbeddings
        {
            Encoder = "random-mlp", Dim = (uint)dim, Dtype = DType.Float16, Found = ByteString.CopyFrom(found),
            Embeddings = ByteString.CopyFrom(bytes), Encoded = encoded,
        };
    }

    [Fact]
    public void ToBatch_Float16Groups_ConvertsRowsIndicesLabelsAndCounts()
    {
        var served = new DatasetBatch
        {
            Offset = 6, Total = 9, Indices = { 4, 1, 7 },
            Results = { Float16Rows([1, 2, 0.5f, -1, 3, 0.25f], 2, 0b111, encoded: 1) },
            Labels = new LabelBatch { Groups = new GroupLabels { GroupIds = { 3, 3, 8 } } },
        };

        using var batch = CachedEmbeddingSource.ToBatch(served, "random-mlp", 2);

        Assert.Equal(new float[] { 1, 2, 0.5f, -1, 3, 0.25f }, batch.Rows.data<float>().ToArray());
        Assert.Equal(new long[] { 4, 1, 7 }, batch.Indices);
        Assert.Equal(new long[] { 3, 3, 8 }, batch.Groups);
        Assert.Equal((6L, 9L, 3), (batch.Offset, batch.Total, batch.Units));
        Assert.Equal((2, 1), (batch.Hits, batch.Misses));
    }

    [Fact]
    public void ToBatch_Pairs_MapsItemIndicesToRowsOfTheBatch()
    {
        var served = new DatasetBatch
        {
            Offset = 0, Total = 2, Indices = { 10, 20, 30 },
            Results = { Float16Rows([1, 0, 0, 1, 1, 1], 2, 0b111, encoded: 0) },
            Labels = new LabelBatch { Pairs = new PairLabels { AIndex = { 30, 10 }, BIndex = { 20, 30 }, Score = { 1, 0 }, Subgroup = { 0, 0 } } },
        };

        using var batch = CachedEmbeddingSource.ToBatch(served, "random-mlp", 2);

        Assert.Equal(new long[] { 2, 0 }, batch.Pairs!.A);
        Assert.Equal(new long[] { 1, 2 }, batch.Pairs.B);
        Assert.Equal(new float[] { 1, 0 }, batch.Pairs.Scores);
        Assert.Equal(2, batch.Units);
    }

    [Fact]
    public void ToBatch_RowsNotFound_IsRefused()
    {
        var served = new DatasetBatch
        {
            Indices = { 0, 1 },
            Results = { Float16Rows([1, 2, 0, 0], 2, 0b01, encoded: 0) },
            Labels = new LabelBatch { Groups = new GroupLabels { GroupIds = { 1, 2 } } },
        };

        var e = Assert.Throws<TrainerException>(() => CachedEmbeddingSource.ToBatch(served, "random-mlp", 2));

        Assert.Contains("lacks 1 of 2", e.Message, StringComparison.Ordinal);
    }
}
