using System.Text.Json;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using static EmbedCache.Engine.Tests.Encoders.BuiltinEncoderTests;
using static EmbedCache.Engine.Tests.Encoders.TestEncoders;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>
/// The onnx kind against graphs exported by PyTorch's torch.onnx.export (TestData/make_onnx_testdata.py):
/// outputs within 1e-5 of PyTorch's, token ids equal to BERT's WordPiece, images decoded as PyTorch saw them,
/// and every bad model or bad input named in one line.
/// </summary>
public sealed class OnnxEncoderTests
{
    private const float Tolerance = 1e-5f;
    private static readonly string DataDir = Path.Combine(AppContext.BaseDirectory, "Encoders", "TestData");
    private static readonly JsonElement Expected = JsonDocument.Parse(File.ReadAllText(Data("onnx_expected.json"))).RootElement;
    private static readonly JsonElement WordPiece = JsonDocument.Parse(File.ReadAllText(Data("wordpiece_expected.json"))).RootElement;

    private static string Data(string file) => Path.Combine(DataDir, file);

    private static float[] Floats(JsonElement array) => array.EnumerateArray().Select(e => e.GetSingle()).ToArray();

    private static EncoderOptions Onnx(string file, InputKind kind, Action<EncoderOptions>? edit = null) => With(new EncoderOptions
    {
        Kind = EncoderOptions.KindOnnx,
        ModelPath = Data(file),
        InputKind = kind,
        Threads = 1,
    }, edit);

    private static EncoderOptions TokenModel(Action<EncoderOptions>? edit = null) => Onnx("token_model.onnx", InputKind.Text, o =>
    {
        o.VocabPath = Data("vocab.txt");
        o.MaxLength = 16;
        o.Pooling = "mean";
        o.Normalize = true;
        edit?.Invoke(o);
    });

    private static EncoderLoadException LoadFails(EncoderOptions options) =>
        Assert.Throws<EncoderLoadException>(() => Create(options, "bad").Dispose());

    [Fact]
    public void TensorModel_MatchesPyTorch_WithItsShapeReadFromTheGraph()
    {
        using var encoder = Create(Onnx("tensor_model.onnx", InputKind.FloatTensor));
        var tensor = Expected.GetProperty("tensor");

        var output = Encode(encoder, new TensorFeatureBatch(Floats(tensor.GetProperty("inputs")), [3, 8, 8]));

        Assert.Equal([3L, 8, 8], encoder.InputShape);
        Assert.Equal(12, encoder.Dim);
        Assert.Equal($"onnx:{Data("tensor_model.onnx")}", encoder.Source);
        AssertClose(Floats(tensor.GetProperty("outputs")), output, Tolerance);
    }

    [Fact]
    public void TextModel_MatchesPyTorch_WithWordPieceIds_MeanPooling_AndNormalisation()
    {
        using var encoder = Create(TokenModel());
        string[] sentences = ["Hello world!", "The frozen encoder caches embeddings.", "Every epoch reads the cache once, fast"];

        var output = Encode(encoder, new TextFeatureBatch(sentences));

        Assert.Equal(32, encoder.Dim);
        AssertClose(Floats(Expected.GetProperty("token").GetProperty("mean_normalized")), output, Tolerance);
        // One item at a time (no padding) gives the same rows as the padded batch.
        for (var i = 0; i < sentences.Length; i++)
            AssertClose(output.AsSpan(i * 32, 32).ToArray(), Encode(encoder, new TextFeatureBatch([sentences[i]])), Tolerance);
    }

    [Fact]
    public void ImageModel_DecodesAPng_ThenMatchesPyTorchOnTheNormalisedPixels()
    {
        using var encoder = Create(Onnx("image_model.onnx", InputKind.Image));

        var output = Encode(encoder, new ImageFeatureBatch([File.ReadAllBytes(Data("image.png"))]));

        Assert.Equal([3L, 16, 16], encoder.InputShape);
        AssertClose(Floats(Expected.GetProperty("image").GetProperty("outputs")), output, Tolerance);
    }

    [Fact]
    public void WordPieceTokenizer_GivesBertsIds_WithTheAllMiniLmVocabulary()
    {
        var vocab = Path.Combine(EncoderRegistry.ModelsDirectory, EncoderRegistry.AllMiniLmL6V2, "vocab.txt");
        var tokenizer = WordPieceTextTokenizer.Load(vocab, lowerCase: true, stripAccents: true);
        var sentences = WordPiece.GetProperty("sentences").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var maxLength = WordPiece.GetProperty("max_length").GetInt32();

        var full = TokenizedText.Create(tokenizer, new TextFeatureBatch(sentences), "t", 512, truncate: true, padToMaxLength: false);
        var truncated = TokenizedText.Create(tokenizer, new TextFeatureBatch(sentences), "t", maxLength, truncate: true, padToMaxLength: false);

        var ids = WordPiece.GetProperty("ids").EnumerateArray().ToArray();
        var truncatedIds = WordPiece.GetProperty("ids_truncated").EnumerateArray().ToArray();
        for (var i = 0; i < sentences.Length; i++)
        {
            Assert.True(ids[i].EnumerateArray().Select(e => e.GetInt64()).SequenceEqual(full.Ids(i).ToArray()),
                $"sentence {i} '{sentences[i]}': expected [{string.Join(", ", ids[i].EnumerateArray())}], got [{string.Join(", ", full.Ids(i).ToArray())}]");
            Assert.Equal(truncatedIds[i].EnumerateArray().Select(e => e.GetInt64()).ToArray(), truncated.Ids(i).ToArray());
        }
    }

    [Fact]
    public void FirstUse_OpensTheModelOnTheFirstEncode_WithTheFingerprintOfAStartupLoad()
    {
        using var eager = (OnnxEncoder)Create(TokenModel());
        using var lazy = (OnnxEncoder)Create(TokenModel(o => { o.Load = "first-use"; o.Dim = 32; }));

        Assert.True(eager.IsLoaded);
        Assert.False(lazy.IsLoaded);
        Assert.Equal(eager.Fingerprint, lazy.Fingerprint);
        var text = new TextFeatureBatch(["Hello world!"]);
        Assert.Equal(Encode(eager, text), Encode(lazy, text));
        Assert.True(lazy.IsLoaded);
    }

    [Fact]
    public void FirstUse_WithTheWrongDim_FailsEveryEncodeAndNamesBothDims()
    {
        using var lazy = Create(TokenModel(o => { o.Load = "first-use"; o.Dim = 31; }));

        for (var i = 0; i < 2; i++)
        {
            var e = Assert.Throws<EncoderLoadException>(() => Encode(lazy, new TextFeatureBatch(["hello"])));
            Assert.Contains("outputs dim 32, but Dim is set to 31", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Fingerprint_CoversTheWeights_Vocabulary_Pooling_Normalisation_AndImagePreprocessing()
    {
        using var baseline = Create(TokenModel());
        using var cls = Create(TokenModel(o => o.Pooling = "cls"));
        using var raw = Create(TokenModel(o => o.Normalize = false));
        using var image = Create(Onnx("image_model.onnx", InputKind.Image));
        using var bgr = Create(Onnx("image_model.onnx", InputKind.Image, o => o.ChannelOrder = "bgr"));
        using var stretch = Create(Onnx("image_model.onnx", InputKind.Image, o => o.Resize = "stretch"));
        using var half = Create(TokenModel(o => o.DType = EmbeddingDType.Float16));

        Fingerprint[] all = [baseline.Fingerprint, cls.Fingerprint, raw.Fingerprint, image.Fingerprint, bgr.Fingerprint, stretch.Fingerprint, half.Fingerprint];
        Assert.Equal(all.Length, all.Distinct().Count());

        // The same options in another process-independent build give the same fingerprint.
        using var again = Create(TokenModel());
        Assert.Equal(baseline.Fingerprint, again.Fingerprint);

        // Another model file of the same shape is another namespace.
        var copy = Path.Combine(Path.GetTempPath(), $"embedcache-onnx-{Guid.NewGuid():N}.onnx");
        try
        {
            var bytes = File.ReadAllBytes(Data("tensor_model.onnx"));
            File.WriteAllBytes(copy, bytes);
            using var same = Create(Onnx("tensor_model.onnx", InputKind.FloatTensor));
            using var copied = Create(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.ModelPath = copy));
            Assert.Equal(same.Fingerprint, copied.Fingerprint);
            bytes[^1] ^= 0x01; // the graph's last byte; the fingerprint covers the content, whatever it holds
            File.WriteAllBytes(copy, bytes);
            var other = Record.Exception(() =>
            {
                using var changed = Create(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.ModelPath = copy));
                Assert.NotEqual(same.Fingerprint, changed.Fingerprint);
            });
            Assert.True(other is null or EncoderLoadException, other?.ToString());
        }
        finally
        {
            File.Delete(copy);
        }
    }

    [Fact]
    public void SharedSession_GivesIdenticalBits_ToConcurrentCallers()
    {
        using var encoder = Create(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Threads = 2));
        var inputs = new TensorFeatureBatch(Floats(Expected.GetProperty("tensor").GetProperty("inputs")), [3, 8, 8]);
        var reference = Encode(encoder, inputs);

        var results = new float[6][];
        Parallel.For(0, results.Length, i =>
        {
            for (var round = 0; round < 20; round++)
                results[i] = Encode(encoder, inputs);
        });

        foreach (var result in results)
            Assert.Equal(reference, result);
    }

    [Fact]
    public void AFileThatIsNotOnnx_IsOneLineNamingTheFile()
    {
        var e = LoadFails(Onnx("not_a_model.onnx", InputKind.FloatTensor));
        Assert.StartsWith($"encoder 'bad': '{Data("not_a_model.onnx")}' is not a loadable ONNX model", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingFiles_AreNamed()
    {
        Assert.Contains("model file '/nope/model.onnx' does not exist",
            LoadFails(Onnx("x", InputKind.FloatTensor, o => o.ModelPath = "/nope/model.onnx")).Message, StringComparison.Ordinal);
        Assert.Contains("vocabulary file '/nope/vocab.txt' does not exist",
            LoadFails(TokenModel(o => o.VocabPath = "/nope/vocab.txt")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InputAndOutputNamesThatDoNotExist_NameWhatTheModelHas()
    {
        var input = LoadFails(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.InputName = "image"));
        Assert.Contains("has no input 'image' (InputName); its inputs are 'pixels' Single [n, 3, 8, 8]", input.Message, StringComparison.Ordinal);

        var ids = LoadFails(TokenModel(o => o.InputIdsName = "tokens"));
        Assert.Contains("has no input 'tokens' (InputIdsName)", ids.Message, StringComparison.Ordinal);

        var output = LoadFails(TokenModel(o => o.OutputName = "last_hidden_state"));
        Assert.Contains("has no output 'last_hidden_state' (OutputName); its outputs are 'hidden'", output.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ADimOrShapeThatDoesNotMatchTheModel_IsALoadError()
    {
        Assert.Contains("outputs dim 12, but Dim is set to 13",
            LoadFails(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Dim = 13)).Message, StringComparison.Ordinal);
        Assert.Contains("InputShape [3, 9, 9] does not fit the model's input [N, 3, 8, 8]",
            LoadFails(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.InputShape = [3, 9, 9])).Message, StringComparison.Ordinal);
        Assert.Contains("set Pooling to cls or mean",
            LoadFails(TokenModel(o => o.Pooling = "none")).Message, StringComparison.Ordinal);
        Assert.Contains("Pooling 'mean' needs per-token output",
            LoadFails(Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Pooling = "mean")).Message, StringComparison.Ordinal);
        Assert.Contains("would not be fed",
            LoadFails(TokenModel(o => o.AttentionMaskName = "input_ids")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadConfiguration_NamesTheKey()
    {
        var errors = Onnx("tensor_model.onnx", InputKind.Image, o =>
        {
            o.Load = "lazily";
            o.Device = "tpu";
            o.GraphOptimization = "max";
            o.Mean = [0.5f];
            o.Resize = "fit";
        }).Validate("e").ToList();

        Assert.Contains("Encoders:e:Load must be one of startup, first-use (was 'lazily')", errors);
        Assert.Contains("Encoders:e:Device must be one of auto, cpu, cuda (was 'tpu')", errors);
        Assert.Contains("Encoders:e:GraphOptimization must be one of all, extended, basic, none (was 'max')", errors);
        Assert.Contains("Encoders:e:Mean must have 3 finite values, one per channel (had 1)", errors);
        Assert.Contains("Encoders:e:Resize must be one of crop, stretch (was 'fit')", errors);
        Assert.Contains("Encoders:e:Dim is required when Load is first-use (the model is not opened at start-up to probe it)",
            Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Load = "first-use").Validate("e"));
    }

    [Fact]
    public void AnImageThatDoesNotDecode_IsInvalidFeaturesNamingTheItem_AndNothingIsWritten()
    {
        using var encoder = Create(Onnx("image_model.onnx", InputKind.Image));
        var png = File.ReadAllBytes(Data("image.png"));
        var output = new float[3 * encoder.Dim];
        Array.Fill(output, 7f);

        var garbage = Assert.Throws<InvalidFeaturesException>(() =>
            encoder.Encode(new ImageFeatureBatch([png, "not an image"u8.ToArray(), png]), output));
        var truncated = Assert.Throws<InvalidFeaturesException>(() =>
            encoder.Encode(new ImageFeatureBatch([png, png, png.AsMemory(0, png.Length / 2)]), output));
        var empty = Assert.Throws<InvalidFeaturesException>(() => encoder.Encode(new ImageFeatureBatch([Array.Empty<byte>()]), output));

        Assert.Equal(1, garbage.ItemIndex);
        Assert.Contains("image does not decode", garbage.Message, StringComparison.Ordinal);
        Assert.Equal(2, truncated.ItemIndex);
        Assert.Contains("image", truncated.Message, StringComparison.Ordinal);
        Assert.Contains("image is empty", empty.Message, StringComparison.Ordinal);
        Assert.All(output, v => Assert.Equal(7f, v));
    }

    [Fact]
    public void ImageModels_AlsoTakeReadyTensors_OfTheirInputShape()
    {
        using var encoder = Create(Onnx("image_model.onnx", InputKind.Image));
        var pixels = new float[3 * 16 * 16];

        Assert.Equal(8, Encode(encoder, new TensorFeatureBatch(pixels, [3, 16, 16])).Length);
        Assert.Throws<InvalidFeaturesException>(() => Encode(encoder, new TensorFeatureBatch(new float[3 * 8 * 8], [3, 8, 8])));
    }

    [Fact]
    public void TextTooLong_UnderReject_IsInvalidFeatures()
    {
        using var encoder = Create(TokenModel(o => o.TooLong = "reject"));
        var e = Assert.Throws<InvalidFeaturesException>(() =>
            Encode(encoder, new TextFeatureBatch(["hello", string.Join(' ', Enumerable.Repeat("hello", 20))])));

        Assert.Equal(1, e.ItemIndex);
        Assert.Contains("more than MaxLength 16 (TooLong is 'reject')", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutCuda_AutoFallsBackToTheCpuWithOneWarning_WhileCudaOrRequireGpuRefuse()
    {
        var warnings = new List<string>();
        using (var auto = EncoderRegistry.CreateEncoder("auto", Onnx("tensor_model.onnx", InputKind.FloatTensor),
                   new OnnxSessionFactory(requireGpu: false, (name, reason) => warnings.Add($"{name}: {reason}"))))
        {
            Assert.Equal("cpu", ((OnnxEncoder)auto).ExecutionProvider);
            Assert.Equal(12, Encode(auto, new TensorFeatureBatch(new float[3 * 8 * 8], [3, 8, 8])).Length);
        }

        var warning = Assert.Single(warnings);
        Assert.StartsWith("auto: ", warning, StringComparison.Ordinal);

        var cuda = Assert.Throws<EncoderLoadException>(() => EncoderRegistry.CreateEncoder("gpu",
            Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Device = "cuda"), new OnnxSessionFactory()));
        Assert.Contains("CUDA is required (Device is cuda)", cuda.Message, StringComparison.Ordinal);

        var required = Assert.Throws<EncoderLoadException>(() => EncoderRegistry.CreateEncoder("gpu",
            Onnx("tensor_model.onnx", InputKind.FloatTensor), new OnnxSessionFactory(requireGpu: true)));
        Assert.Contains("CUDA is required (RequireGpu is true)", required.Message, StringComparison.Ordinal);

        using var cpu = EncoderRegistry.CreateEncoder("cpu", Onnx("tensor_model.onnx", InputKind.FloatTensor, o => o.Device = "cpu"),
            new OnnxSessionFactory(requireGpu: true));
        Assert.Equal("cpu", ((OnnxEncoder)cpu).ExecutionProvider);
    }
}
