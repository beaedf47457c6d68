using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

public sealed class BuiltinEncoderTests
{
    [Fact]
    public void Defaults_BuildThePretrainedModelsAndTheRandomBuiltIns_WithDeclaredKindsShapesAndDims()
    {
        using var registry = EncoderRegistry.Create(EncoderRegistry.Defaults());

        Assert.Equal(["all-minilm-l6-v2", "random-convnet", "random-minilm", "random-mlp", "resnet18"], registry.All.Select(e => e.Name));
        Assert.True(registry.TryGet("random-minilm", out var minilm));
        Assert.Equal(InputKind.Text, minilm.InputKind);
        Assert.Equal([128L], minilm.InputShape);
        Assert.Equal(384, minilm.Dim);
        Assert.Equal(EmbeddingDType.Float32, minilm.DType);
        Assert.Equal("builtin:minilm seed=42", minilm.Source);
        Assert.True(registry.TryGet("random-convnet", out var convnet));
        Assert.Equal(InputKind.FloatTensor, convnet.InputKind);
        Assert.Equal([3L, 32, 32], convnet.InputShape);
        Assert.Equal(256, convnet.Dim);
        Assert.True(registry.TryGet("random-mlp", out var mlp));
        Assert.Equal(InputKind.FloatVector, mlp.InputKind);
        Assert.Equal([64L], mlp.InputShape);
        Assert.Equal(128, mlp.Dim);
        Assert.False(registry.TryGet("nope", out _));
        Assert.Equal(5, registry.All.Select(e => e.Fingerprint).Distinct().Count());
        Assert.True(registry.TryGet("all-minilm-l6-v2", out var allMiniLm));
        Assert.Equal((InputKind.Text, 384, 256L), (allMiniLm.InputKind, allMiniLm.Dim, allMiniLm.InputShape[0]));
        Assert.True(registry.TryGet("resnet18", out var resnet));
        Assert.Equal((InputKind.Image, 512), (resnet.InputKind, resnet.Dim));
        Assert.Equal([3L, 224, 224], resnet.InputShape);

        var text = Encode(minilm, "a frozen encoder", "the cache serves it");
        var images = Encode(convnet, new TensorFeatureBatch(Values(2 * 3 * 32 * 32, 1), [3, 32, 32]));
        var vectors = Encode(mlp, new TensorFeatureBatch(Values(2 * 64, 2), [64]));
        foreach (var (output, dim) in new[] { (text, 384), (images, 256), (vectors, 128) })
        {
            Assert.All(output, v => Assert.True(float.IsFinite(v)));
            Assert.Contains(output, v => v != 0);
            Assert.NotEqual(Row(output, dim, 0), Row(output, dim, 1));
        }
    }

    [Fact]
    public void MiniLm_SameTextTwice_GivesIdenticalRows_AndCaseDoesNotMatter()
    {
        using var encoder = Create(SmallMiniLm());

        var output = Encode(encoder, "Hello, world!", "another sentence", "hello, WORLD!");

        Assert.Equal(Row(output, 64, 0), Row(output, 64, 2));
        Assert.NotEqual(Row(output, 64, 0), Row(output, 64, 1));
    }

    [Fact]
    public void MiniLm_PaddingForALongerNeighbour_DoesNotChangeAnItemsEmbedding()
    {
        using var encoder = Create(SmallMiniLm());

        var alone = Encode(encoder, "short text");
        var padded = Encode(encoder, "short text", "a much longer neighbour sentence that forces padding of the first item");

        AssertClose(alone, Row(padded, 64, 0), 1e-5f);
    }

    [Fact]
    public void Encode_MoreItemsThanBatchSize_IsSplitAndMatchesItemByItem()
    {
        using var encoder = Create(SmallMlp(o => o.BatchSize = 4));
        var values = Values(10 * 8, 3);

        var together = Encode(encoder, new TensorFeatureBatch(values, [8]));

        for (var i = 0; i < 10; i++)
        {
            var single = Encode(encoder, new TensorFeatureBatch(values.AsMemory(i * 8, 8), [8]));
            AssertClose(single, Row(together, 8, i), 1e-5f);
        }
    }

    [Fact]
    public void Encode_FromSeveralThreadsAtOnce_GivesTheSameBitsAsOneThread()
    {
        using var text = Create(SmallMiniLm());
        using var images = Create(SmallConvNet());
        string[] texts = ["one two three", "four five", "six seven eight nine", "ten"];
        var pixels = new TensorFeatureBatch(Values(4 * 3 * 8 * 8, 4), [3, 8, 8]);
        var expectedText = Encode(text, texts);
        var expectedImages = Encode(images, pixels);

        var failures = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            for (var round = 0; round < 10; round++)
            {
                var same = worker % 2 == 0
                    ? Encode(text, texts).AsSpan().SequenceEqual(expectedText)
                    : Encode(images, pixels).AsSpan().SequenceEqual(expectedImages);
                if (!same)
                    Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
    }

    [Fact]
    public void Normalize_MakesEveryRowUnitLength()
    {
        using var encoder = Create(SmallConvNet(o => o.Normalize = true));

        var output = Encode(encoder, new TensorFeatureBatch(Values(3 * 3 * 8 * 8, 5), [3, 8, 8]));

        for (var i = 0; i < 3; i++)
        {
            var row = Row(output, 16, i);
            Assert.Equal(1.0, Math.Sqrt(row.Sum(v => (double)v * v)), 5);
        }
    }

    [Fact]
    public void MiniLm_ClsPooling_DiffersFromMeanPooling()
    {
        using var mean = Create(SmallMiniLm());
        using var cls = Create(SmallMiniLm(o => o.Pooling = "cls"));

        Assert.NotEqual(Encode(mean, "pooling matters"), Encode(cls, "pooling matters"));
        Assert.NotEqual(mean.Fingerprint, cls.Fingerprint);
    }

    [Fact]
    public void MiniLm_TooLongText_IsTruncatedToMaxLengthTokens()
    {
        using var encoder = Create(SmallMiniLm(o => o.MaxLength = 6));

        // 6 tokens = [CLS] + 4 words + [SEP]: words past the fourth are dropped.
        var output = Encode(encoder, "w1 w2 w3 w4", "w1 w2 w3 w4 w5 w6 w7");

        Assert.Equal(Row(output, 64, 0), Row(output, 64, 1));
    }

    [Fact]
    public void HashingTokenizer_GivesTheSameIdsOnEveryMachine()
    {
        var tokenizer = new HashingTokenizer(30522);
        var ids = new List<long>();

        tokenizer.AddIds("Hello, WORLD! naïve café 42", ids);

        // Golden values: XxHash3 of the lower-cased UTF-8 pieces; a change here changes every stored key.
        Assert.Equal([22651, 13270, 10070, 6960, 30074, 18175, 19427], ids);
        var lower = new List<long>();
        tokenizer.AddIds("hello , world ! NAÏVE CAFÉ 42", lower);
        Assert.Equal(ids, lower);
    }

    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            if (Math.Abs(expected[i] - actual[i]) > tolerance)
                Assert.Fail($"element {i}: expected {expected[i]}, got {actual[i]} (tolerance {tolerance})");
        }
    }
}
