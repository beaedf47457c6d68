using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Encoders;
using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

/// <summary>The --no-cache source on the shipped digits dataset with the built-in mlp encoder (in process, no service).</summary>
public sealed class LocalSourceTests
{
    private static string DataRoot => Path.Combine(RepoPaths.Root, "deploy", "datasets");

    [Fact]
    public void EpochOrder_IsAPermutationFixedBySeedAndEpoch()
    {
        ulong[] Order(ulong seed, uint epoch) => EmbedCache.Engine.Caching.EpochOrder.Permutation(100, seed, epoch);

        Assert.Equal(Order(42, 3), Order(42, 3));
        Assert.NotEqual(Order(42, 3), Order(42, 4));
        Assert.NotEqual(Order(42, 3), Order(43, 3));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (ulong)i), Order(42, 3).Order());
    }

    [Fact]
    public async Task ReadAsync_DigitsTrain_EncodesEveryItemOnceWithTheServicesEncoder()
    {
        await using var source = new LocalEmbeddingSource(DataRoot, "digits", "random-mlp");
        using var reference = EncoderRegistry.CreateEncoder("random-mlp", EncoderRegistry.Defaults()["random-mlp"]);

        var ready = await source.PrepareAsync(["train", "val"], null, CancellationToken.None);
        var seen = new List<long>();
        float[]? firstRow = null;
        long firstIndex = -1;
        await foreach (var batch in source.ReadAsync(new ReadRequest("train", 1, 500, Shuffle: true, Seed: 7), CancellationToken.None))
        {
            using (batch)
            {
                Assert.Equal(1438, batch.Total);
                Assert.Equal((0, batch.Count), (batch.Hits, batch.Misses));
                Assert.All(batch.Groups!, g => Assert.InRange(g, 0, 9));
                seen.AddRange(batch.Indices);
                if (firstRow is null)
                {
                    firstRow = batch.RowSpan[..ready.Dim].ToArray();
                    firstIndex = batch.Indices[0];
                }
            }
        }

        Assert.Equal(reference.Dim, ready.Dim);
        Assert.Equal(reference.Fingerprint.ToString(), ready.Fingerprint);
        Assert.Equal(Enumerable.Range(0, 1438).Select(i => (long)i), seen.Order());
        Assert.NotEqual(Enumerable.Range(0, 1438).Select(i => (long)i), seen);

        // The row is the encoder's output for that raw item (to float rounding: a one-item forward
        // takes another GEMM path than a 500-item one).
        var dataset = new DatasetCatalog(new Dictionary<string, string>(), DataRoot).Resolve("digits");
        var chunk = dataset.OpenSplit("train").ReadChunks(1, startIndex: firstIndex).First();
        var expected = new float[reference.Dim];
        reference.Encode(new TensorFeatureBatch(chunk.Values.AsMemory(0, chunk.ItemLength), reference.InputShape), expected);
        for (var i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i], firstRow![i], 1e-4f);
    }

    [Fact]
    public async Task PrepareAsync_UnknownEncoderOrDataset_NamesWhatExists()
    {
        await using var noEncoder = new LocalEmbeddingSource(DataRoot, "digits", "resnet");
        await using var noDataset = new LocalEmbeddingSource(DataRoot, "mnist", "random-mlp");

        var e1 = await Assert.ThrowsAsync<TrainerException>(() => noEncoder.PrepareAsync(["train"], null, CancellationToken.None));
        var e2 = await Assert.ThrowsAsync<TrainerException>(() => noDataset.PrepareAsync(["train"], null, CancellationToken.None));

        Assert.Contains("random-mlp", e1.Message, StringComparison.Ordinal);
        Assert.Contains("mnist", e2.Message, StringComparison.Ordinal);
    }
}
