using EmbedCache.TestSupport;
using static TorchSharp.torch;

namespace EmbedCache.Trainer.Tests;

public sealed class HeadTests
{
    [Theory]
    [InlineData(HeadKind.Mlp)]
    [InlineData(HeadKind.Skip)]
    public void SavedHead_LoadedAgain_GivesIdenticalOutputs(HeadKind kind)
    {
        using var dir = new TempDirectory("head");
        using var scope = NewDisposeScope();
        var spec = HeadSpec.For(kind, 16, hiddenDim: 24, outputDim: kind == HeadKind.Mlp ? 8 : null);
        using var head = Heads.Create(spec, seed: 7);
        // Move the weights and the running statistics away from their initial values, so a load that
        // silently re-initialised (or skipped buffers) would show.
        using (no_grad())
        {
            foreach (var p in head.parameters())
                p.add_(randn_like(p) * 0.1);
            head.train();
            head.forward((randn(32, 16) * 3) + 1);
        }

        head.eval();
        var input = randn(5, 16);
        var expected = head.forward(input).data<float>().ToArray();

        Heads.Save(head, spec, dir.Path);
        var (loaded, loadedSpec) = Heads.Load(dir.Path);
        using (loaded)
        {
            Assert.Equal(spec, loadedSpec);
            Assert.Equal(expected, loaded.forward(input).data<float>().ToArray());
        }
    }

    [Fact]
    public void Create_SameSeed_SameWeights_OtherSeed_OtherWeights()
    {
        using var scope = NewDisposeScope();
        var spec = HeadSpec.For(HeadKind.Mlp, 8);
        using var a = Heads.Create(spec, 1);
        using var b = Heads.Create(spec, 1);
        using var c = Heads.Create(spec, 2);
        var input = ones(1, 8);

        Assert.Equal(a.forward(input).data<float>().ToArray(), b.forward(input).data<float>().ToArray());
        Assert.NotEqual(a.forward(input).data<float>().ToArray(), c.forward(input).data<float>().ToArray());
    }

    [Fact]
    public void SkipHead_Untrained_IsCloseToTheIdentity()
    {
        using var scope = NewDisposeScope();
        using var head = Heads.Create(HeadSpec.For(HeadKind.Skip, 32), 3);
        var input = randn(4, 32);

        // Gates start at −4: sigmoid(−4) ≈ 0.018 of the linear branch is added to the input.
        var cosine = nn.functional.cosine_similarity(head.forward(input), input, dim: 1).min().item<float>();

        Assert.True(cosine > 0.98f, $"min cosine to the input was {cosine}");
    }

    [Fact]
    public void SkipHead_OutputDimOtherThanInput_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => HeadSpec.For(HeadKind.Skip, 32, outputDim: 16));
    }
}
