using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.TestSupport;

namespace EmbedCache.Engine.Tests.Encoders;

public sealed class EncoderOptionsTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        foreach (var (name, options) in EncoderRegistry.Defaults())
            Assert.Empty(options.Validate(name));
    }

    [Theory]
    [InlineData("MaxLength", "Encoders:e:MaxLength must be between 3 and 512 (was 0)")]
    [InlineData("Kind", "Encoders:e:Kind must be one of random-minilm, random-convnet, random-mlp, torchscript, onnx (was 'bert')")]
    [InlineData("Heads", "Encoders:e:Heads must divide Hidden (384 is not a multiple of 5)")]
    [InlineData("BatchSize", "Encoders:e:BatchSize must be between 1 and 4096 (was 0)")]
    [InlineData("TooLong", "Encoders:e:TooLong must be one of truncate, reject (was 'cut')")]
    [InlineData("Pooling", "Encoders:e:Pooling must be one of mean, cls (was 'max')")]
    [InlineData("ModelPath", "Encoders:e:ModelPath is not used by a random-minilm encoder; remove it")]
    public void BadMiniLmSetting_IsReported_NamingTheKey(string key, string expected)
    {
        var options = new EncoderOptions { Kind = "random-minilm" };
        switch (key)
        {
            case "MaxLength": options.MaxLength = 0; break;
            case "Kind": options.Kind = "bert"; break;
            case "Heads": options.Heads = 5; break;
            case "BatchSize": options.BatchSize = 0; break;
            case "TooLong": options.TooLong = "cut"; break;
            case "Pooling": options.Pooling = "max"; break;
            case "ModelPath": options.ModelPath = "/x.pt"; break;
        }

        Assert.Equal([expected], options.Validate("e"));
    }

    [Fact]
    public void TorchScriptOptions_NameEveryMissingKey()
    {
        var errors = new EncoderOptions { Kind = "torchscript", InputKind = InputKind.Text, Tokenizer = "wordpiece" }.Validate("m").ToList();

        Assert.Equal(["Encoders:m:ModelPath is required for a torchscript encoder", "Encoders:m:VocabPath is required for the wordpiece tokenizer"], errors);
        Assert.Equal(["Encoders:t:InputShape must have at least one dimension, each ≥ 1 (was unset)"],
            new EncoderOptions { Kind = "torchscript", ModelPath = "/x.pt", InputKind = InputKind.FloatTensor }.Validate("t"));
        Assert.Equal(["Encoders:c:InputShape must be [channels 1..64, height 4..4096, width 4..4096] (was [32, 32])"],
            new EncoderOptions { Kind = "random-convnet", InputShape = [32, 32] }.Validate("c"));
    }

    [Fact]
    public void Registry_WithInvalidOptions_ThrowsListingEveryBadKey()
    {
        var e = Assert.Throws<EncoderLoadException>(() => EncoderRegistry.Create(new Dictionary<string, EncoderOptions>
        {
            ["a"] = new() { Kind = "random-mlp", Dim = 0 },
            ["b"] = new() { Kind = "random-minilm", MaxLength = 1000 },
        }));

        Assert.Contains("Encoders:a:Dim must be between 1 and 65536 (was 0)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Encoders:b:MaxLength must be between 3 and 512 (was 1000)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Registry_WithAMissingModelFile_ThrowsNamingTheEncoderAndFile()
    {
        using var dir = new TempDirectory("enc");
        var path = dir.Combine("missing.pt");

        var e = Assert.Throws<EncoderLoadException>(() => EncoderRegistry.Create(new Dictionary<string, EncoderOptions>
        {
            ["mine"] = new() { Kind = "torchscript", ModelPath = path, InputKind = InputKind.FloatVector, InputShape = [4] },
        }));

        Assert.Equal($"encoder 'mine': model file '{path}' does not exist", e.Message);
    }

    [Fact]
    public void Registry_WithAFileThatIsNotTorchScript_ThrowsNamingTheEncoderAndFile()
    {
        using var dir = new TempDirectory("enc");
        var path = dir.Combine("garbage.pt");
        File.WriteAllText(path, "this is not a zip archive of a TorchScript model");

        var e = Assert.Throws<EncoderLoadException>(() => EncoderRegistry.Create(new Dictionary<string, EncoderOptions>
        {
            ["mine"] = new() { Kind = "torchscript", ModelPath = path, InputKind = InputKind.FloatVector, InputShape = [4] },
        }));

        Assert.StartsWith($"encoder 'mine': '{path}' is not a loadable TorchScript model", e.Message, StringComparison.Ordinal);
    }
}
