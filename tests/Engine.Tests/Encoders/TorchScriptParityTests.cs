using System.Text.Json;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.TestSupport;
using static EmbedCache.Engine.Tests.Encoders.BuiltinEncoderTests;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>
/// TorchScript files saved by PyTorch 1.13 (TestData/make_testdata.py) load in TorchSharp/libtorch 2.10 and
/// reproduce PyTorch's own outputs within 1e-5 — including our WordPiece token ids, pooling and normalisation.
/// </summary>
public sealed class TorchScriptParityTests
{
    private const float Tolerance = 1e-5f;
    private static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Encoders", "TestData");
    private static readonly JsonElement Expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(DataDir, "expected.json"))).RootElement;

    private static string Data(string file) => Path.Combine(DataDir, file);

    private static EncoderOptions TensorModel(string file = "tensor_model.pt") => new()
    {
        Kind = EncoderOptions.KindTorchScript,
        ModelPath = Data(file),
        InputKind = InputKind.FloatTensor,
        InputShape = [3, 8, 8],
    };

    private static EncoderOptions TokenModel(Action<EncoderOptions>? edit = null)
    {
        var options = new EncoderOptions
        {
            Kind = EncoderOptions.KindTorchScript,
            ModelPath = Data("token_model.pt"),
            InputKind = InputKind.Text,
            VocabPath = Data("vocab.txt"),
            MaxLength = Expected.GetProperty("token").GetProperty("max_length").GetInt32(),
            Pooling = "mean",
            Normalize = true,
        };
        edit?.Invoke(options);
        return options;
    }

    private static float[] Floats(JsonElement array) => array.EnumerateArray().Select(e => e.GetSingle()).ToArray();

    private static string[] Sentences => Expected.GetProperty("token").GetProperty("sentences").EnumerateArray().Select(e => e.GetString()!).ToArray();

    [Fact]
    public void FloatTensorModel_MatchesPyTorchOutputs_AndProbesItsDim()
    {
        using var encoder = Create(TensorModel());
        var tensor = Expected.GetProperty("tensor");
        var inputs = Floats(tensor.GetProperty("inputs"));

        var output = Encode(encoder, new TensorFeatureBatch(inputs, [3, 8, 8]));

        Assert.Equal(12, encoder.Dim);
        Assert.Equal($"torchscript:{Data("tensor_model.pt")}", encoder.Source);
        AssertClose(Floats(tensor.GetProperty("outputs")), output, Tolerance);
    }

    [Fact]
    public void WordPieceTokenizer_GivesPyTorchScriptsTokenIds()
    {
        var tokenizer = WordPieceTextTokenizer.Load(Data("vocab.txt"), lowerCase: true, stripAccents: true);
        var expectedIds = Expected.GetProperty("token").GetProperty("ids").EnumerateArray()
            .Select(row => row.EnumerateArray().Select(e => e.GetInt64()).ToArray()).ToArray();

        var tokenized = TokenizedText.Create(tokenizer, new TextFeatureBatch(Sentences), "t", 16, truncate: true, padToMaxLength: false);

        for (var i = 0; i < expectedIds.Length; i++)
            Assert.Equal(expectedIds[i], tokenized.Ids(i).ToArray());
    }

    [Fact]
    public void TokenIdsModel_WithMeanPoolingAndNormalisation_MatchesPyTorch()
    {
        using var encoder = Create(TokenModel());

        var output = Encode(encoder, Sentences);

        Assert.Equal(32, encoder.Dim);
        AssertClose(Floats(Expected.GetProperty("token").GetProperty("mean_normalized")), output, Tolerance);
    }

    [Fact]
    public void TokenIdsModel_WithClsPooling_MatchesPyTorch_EvenOneSentenceAtATime()
    {
        using var encoder = Create(TokenModel(o => { o.Pooling = "cls"; o.Normalize = false; o.BatchSize = 1; }));

        var output = Encode(encoder, Sentences);

        AssertClose(Floats(Expected.GetProperty("token").GetProperty("cls")), output, Tolerance);
    }

    [Fact]
    public void PerTokenModel_WithoutPooling_FailsToLoad_SayingWhatToSet()
    {
        var e = Assert.Throws<EncoderLoadException>(() => Create(TokenModel(o => o.Pooling = "none"), "tok"));

        Assert.StartsWith($"encoder 'tok': model '{Data("token_model.pt")}' outputs per-token [N, L, D] = [1, ", e.Message, StringComparison.Ordinal);
        Assert.EndsWith(", 32]; set Pooling to cls or mean", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelGivenTheWrongInputShape_FailsToLoad_NamingTheFile()
    {
        var e = Assert.Throws<EncoderLoadException>(() => Create(TensorModel() is var o ? WithShape(o, [3, 10, 10]) : o, "img"));

        Assert.StartsWith($"encoder 'img': model '{Data("tensor_model.pt")}' failed on a one-item FloatTensor batch of shape [3, 10, 10]", e.Message, StringComparison.Ordinal);

        static EncoderOptions WithShape(EncoderOptions o, long[] shape)
        {
            o.InputShape = shape;
            return o;
        }
    }

    [Fact]
    public void Fingerprint_FollowsFileContent_NotPath()
    {
        using var dir = new TempDirectory("ts");
        var copy = dir.Combine("copy.pt");
        File.Copy(Data("tensor_model.pt"), copy);
        var vocab = dir.Combine("vocab.txt");
        File.WriteAllText(vocab, File.ReadAllText(Data("vocab.txt")) + "extra\n");

        using var original = Create(TensorModel());
        using var copied = Create(TensorModel(copy));
        using var otherWeights = Create(TensorModel("tensor_model_other_weights.pt"));
        using var half = Create(TensorModel() is var h ? Set(h, o => o.DType = EmbeddingDType.Float16) : h);
        using var tokens = Create(TokenModel());
        using var otherVocab = Create(TokenModel(o => o.VocabPath = vocab));
        using var otherMaxLength = Create(TokenModel(o => o.MaxLength = 15));
        using var unnormalised = Create(TokenModel(o => o.Normalize = false));

        Assert.Equal(original.Fingerprint, copied.Fingerprint);
        Assert.NotEqual(original.Fingerprint, otherWeights.Fingerprint);
        Assert.NotEqual(original.Fingerprint, half.Fingerprint);
        Assert.Equal(4, new[] { tokens, otherVocab, otherMaxLength, unnormalised }.Select(e => e.Fingerprint).Distinct().Count());

        static EncoderOptions Set(EncoderOptions o, Action<EncoderOptions> edit)
        {
            edit(o);
            return o;
        }
    }

    [Fact]
    public void TokenIdsModel_FromSeveralThreadsAtOnce_GivesTheSameBitsAsOneThread()
    {
        using var encoder = Create(TokenModel());
        var expected = Encode(encoder, Sentences);

        var failures = 0;
        Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 6 }, _ =>
        {
            for (var round = 0; round < 10; round++)
            {
                if (!Encode(encoder, Sentences).AsSpan().SequenceEqual(expected))
                    Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
    }

    [Fact]
    public void TorchScriptModel_RejectsBadFeatures_AndKeepsServing()
    {
        using var encoder = Create(TokenModel(o => o.TooLong = "reject"));

        var e = Assert.Throws<InvalidFeaturesException>(() => Encode(encoder, "hello", Sentences[4]));

        Assert.Equal(1, e.ItemIndex);
        Assert.Contains("more than MaxLength 16", e.Message, StringComparison.Ordinal);
        Assert.Equal(32, Encode(encoder, "hello world").Length);
    }
}
