using EmbedCache.Engine.Encoders;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>Small configurations so tests stay fast; the full-size defaults are used only where needed.</summary>
internal static class TestEncoders
{
    public static EncoderOptions SmallMiniLm(Action<EncoderOptions>? edit = null) => With(new EncoderOptions
    {
        Kind = EncoderOptions.KindMiniLm,
        Layers = 2,
        Hidden = 64,
        Heads = 4,
        VocabBuckets = 1000,
        MaxLength = 32,
        BatchSize = 8,
    }, edit);

    public static EncoderOptions SmallConvNet(Action<EncoderOptions>? edit = null) => With(new EncoderOptions
    {
        Kind = EncoderOptions.KindConvNet,
        InputShape = [3, 8, 8],
        Width = 4,
        Dim = 16,
    }, edit);

    public static EncoderOptions SmallMlp(Action<EncoderOptions>? edit = null) => With(new EncoderOptions
    {
        Kind = EncoderOptions.KindMlp,
        InputShape = [8],
        Hidden = 16,
        Dim = 8,
    }, edit);

    public static IEncoder Create(EncoderOptions options, string name = "test") => EncoderRegistry.CreateEncoder(name, options);

    public static float[] Encode(IEncoder encoder, FeatureBatch batch)
    {
        var output = new float[batch.Count * encoder.Dim];
        encoder.Encode(batch, output);
        return output;
    }

    public static float[] Encode(IEncoder encoder, params string[] texts) => Encode(encoder, new TextFeatureBatch(texts));

    /// <summary>Deterministic pseudo-random values in [-1, 1).</summary>
    public static float[] Values(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (var i = 0; i < count; i++)
            values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    public static float[] Row(float[] all, int dim, int index) => all.AsSpan(index * dim, dim).ToArray();

    public static EncoderOptions With(EncoderOptions options, Action<EncoderOptions>? edit)
    {
        edit?.Invoke(options);
        return options;
    }
}
