using System.Numerics.Tensors;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using SkiaSharp;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>
/// The two pretrained encoders a fresh service offers, from the models the build takes out of their NuGet
/// packages: all-MiniLM-L6-v2 must reproduce the model's published behaviour, ResNet-18 must see pictures.
/// </summary>
public sealed class PretrainedEncoderTests
{
    private static IEncoder Default(string name) => EncoderRegistry.CreateEncoder(name, EncoderRegistry.Defaults()[name]);

    private static float Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => TensorPrimitives.CosineSimilarity(a, b);

    [Fact]
    public void AllMiniLmL6V2_ReproducesTheSimilaritiesPublishedInTheSentenceTransformersDocumentation()
    {
        // sentence-transformers' quick start: model.similarity(embeddings, embeddings) for these three sentences
        // prints [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]].
        using var encoder = Default(EncoderRegistry.AllMiniLmL6V2);
        var rows = Encode(encoder, new TextFeatureBatch(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]));

        Assert.Equal(384, encoder.Dim);
        var e = Enumerable.Range(0, 3).Select(i => rows.AsSpan(i * 384, 384).ToArray()).ToArray();
        Assert.Equal(1f, TensorPrimitives.Norm(e[0]), 1e-5f);
        Assert.Equal(0.6660f, Cosine(e[0], e[1]), 6e-4f);
        Assert.Equal(0.1046f, Cosine(e[0], e[2]), 6e-4f);
        Assert.Equal(0.1411f, Cosine(e[1], e[2]), 6e-4f);
    }
}
