using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

public sealed class FingerprintTests
{
    public static TheoryData<string, Action<EncoderOptions>> MiniLmChanges => new()
    {
        { "seed", o => o.Seed = 7 },
        { "layers", o => o.Layers = 3 },
        { "hidden", o => { o.Hidden = 96; o.Heads = 4; } },
        { "heads", o => o.Heads = 8 },
        { "intermediate", o => o.Intermediate = 128 },
        { "vocab buckets", o => o.VocabBuckets = 999 },
        { "max length", o => o.MaxLength = 31 },
        { "truncation policy", o => o.TooLong = "reject" },
        { "padding", o => o.Padding = "max_length" },
        { "pooling", o => o.Pooling = "cls" },
        { "normalisation", o => o.Normalize = true },
        { "dtype", o => o.DType = EmbeddingDType.Float16 },
    };

    [Theory]
    [MemberData(nameof(MiniLmChanges))]
    public void MiniLm_ChangingASetting_ChangesTheFingerprint(string what, Action<EncoderOptions> change)
    {
        using var baseline = Create(SmallMiniLm());
        using var changed = Create(SmallMiniLm(change));

        Assert.True(baseline.Fingerprint != changed.Fingerprint, $"changing the {what} kept fingerprint {baseline.Fingerprint}");
    }

    [Fact]
    public void SameOptionsTwice_GiveTheSameFingerprint_AndBatchSizeOrTierDoNotCount()
    {
        using var a = Create(SmallMlp());
        using var b = Create(SmallMlp(o => { o.BatchSize = 7; o.Tier = Tier.Disk; }));

        Assert.Equal(a.Fingerprint, b.Fingerprint);
    }

    [Fact]
    public void TensorBuiltins_ChangingShapeDimWidthOrSeed_ChangesTheFingerprint()
    {
        using var conv = Create(SmallConvNet());
        using var convWider = Create(SmallConvNet(o => o.Width = 5));
        using var convDim = Create(SmallConvNet(o => o.Dim = 17));
        using var convShape = Create(SmallConvNet(o => o.InputShape = [3, 8, 9]));
        using var mlp = Create(SmallMlp());
        using var mlpSeed = Create(SmallMlp(o => o.Seed = 1));
        using var mlpLayers = Create(SmallMlp(o => o.Layers = 1));

        Assert.Equal(4, new[] { conv, convWider, convDim, convShape }.Select(e => e.Fingerprint).Distinct().Count());
        Assert.Equal(3, new[] { mlp, mlpSeed, mlpLayers }.Select(e => e.Fingerprint).Distinct().Count());
    }

    [Fact]
    public void DifferentSeeds_GiveDifferentWeights()
    {
        using var a = Create(SmallMlp());
        using var b = Create(SmallMlp(o => o.Seed = 43));
        var input = new TensorFeatureBatch(Values(8, 9), [8]);

        Assert.NotEqual(Encode(a, input), Encode(b, input));
    }
}
