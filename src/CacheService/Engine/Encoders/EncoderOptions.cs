using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// One encoder's configuration, bound from <c>EmbedCache:Encoders:&lt;name&gt;</c>. Size properties left
/// unset (null) take the default of the <see cref="Kind"/>; <see cref="Validate"/> names every bad key.
/// </summary>
public sealed class EncoderOptions
{
    public const string KindMiniLm = "random-minilm";
    public const string KindConvNet = "random-convnet";
    public const string KindMlp = "random-mlp";
    public const string KindTorchScript = "torchscript";
    public const string KindOnnx = "onnx";

    /// <summary>Largest <see cref="MaxLength"/>: the positions a built-in text encoder has.</summary>
    public const int MaxTokensLimit = 512;

    /// <summary>Largest <see cref="BatchSize"/>.</summary>
    public const int MaxBatchSize = 4096;

    private static readonly string[] Kinds = [KindMiniLm, KindConvNet, KindMlp, KindTorchScript, KindOnnx];

    /// <summary><c>random-minilm</c> | <c>random-convnet</c> | <c>random-mlp</c> (seeded random weights) | <c>torchscript</c> | <c>onnx</c>.</summary>
    public string Kind { get; set; } = "";

    /// <summary>Seed of a built-in model's weights (part of the fingerprint).</summary>
    public int Seed { get; set; } = 42;

    /// <summary>Stored element type (part of the fingerprint).</summary>
    public EmbeddingDType DType { get; set; } = EmbeddingDType.Float32;

    /// <summary>Where the namespace lives; read by the store, not by the encoder.</summary>
    public Tier Tier { get; set; } = Tier.Auto;

    /// <summary>Largest number of items per forward pass.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Text: tokens per item including the [CLS]/[SEP] specials.</summary>
    public int MaxLength { get; set; } = 128;

    /// <summary>Text longer than <see cref="MaxLength"/> tokens: <c>truncate</c> (keep the start) or <c>reject</c>.</summary>
    public string TooLong { get; set; } = "truncate";

    /// <summary>Text: pad each batch to its <c>longest</c> item, or always to <c>max_length</c> (for fixed-shape models).</summary>
    public string Padding { get; set; } = "longest";

    /// <summary>
    /// How a per-token output [N, L, D] becomes one vector: <c>none</c> (model outputs [N, D]), <c>cls</c>
    /// (first token) or <c>mean</c> (over real tokens). Default: <c>mean</c> for minilm, <c>none</c> otherwise.
    /// </summary>
    public string? Pooling { get; set; }

    /// <summary>L2-normalise each embedding.</summary>
    public bool Normalize { get; set; }

    /// <summary>minilm: transformer layers (6); mlp: hidden layers (2).</summary>
    public int? Layers { get; set; }

    /// <summary>minilm: hidden size (384); mlp: hidden width (256).</summary>
    public int? Hidden { get; set; }

    /// <summary>minilm: attention heads (12); must divide <see cref="Hidden"/>.</summary>
    public int? Heads { get; set; }

    /// <summary>minilm: feed-forward size (4 × Hidden).</summary>
    public int? Intermediate { get; set; }

    /// <summary>Hashing tokenizer: number of token ids (30522, BERT's vocabulary size).</summary>
    public int? VocabBuckets { get; set; }

    /// <summary>convnet: channels of the first conv layer (32), doubled at each of the three stages.</summary>
    public int? Width { get; set; }

    /// <summary>convnet (256) and mlp (128): output dim. torchscript: probed at load; if set, must match.</summary>
    public int? Dim { get; set; }

    /// <summary>convnet: item shape C×H×W ([3, 32, 32]); mlp: [length] ([64]); torchscript tensor inputs: required.</summary>
    public long[]? InputShape { get; set; }

    /// <summary>torchscript: the model file (<c>torch.jit.save</c>); onnx: the <c>.onnx</c> graph.</summary>
    public string? ModelPath { get; set; }

    /// <summary>
    /// torchscript and onnx: what the model takes. Text models get (input_ids, attention_mask[, token_type_ids]),
    /// int64 [N, L]; Image models get decoded, resized, normalised float32 [N, 3, H, W].
    /// </summary>
    public InputKind? InputKind { get; set; }

    /// <summary>onnx: a graph run on the input before the model (e.g. an image normalisation graph).</summary>
    public string? PreprocessModelPath { get; set; }

    /// <summary>onnx: the float input of a tensor or image model (default: the model's only float input).</summary>
    public string? InputName { get; set; }

    /// <summary>onnx text: the token-id input (default: <c>input_ids</c>, else the first int64 input).</summary>
    public string? InputIdsName { get; set; }

    /// <summary>onnx text: the mask input (default: <c>attention_mask</c> when the model has it).</summary>
    public string? AttentionMaskName { get; set; }

    /// <summary>onnx text: the segment-id input, fed zeros (default: <c>token_type_ids</c> when the model has it).</summary>
    public string? TokenTypeIdsName { get; set; }

    /// <summary>onnx: the output to embed (default: the model's first output).</summary>
    public string? OutputName { get; set; }

    /// <summary>onnx: intra-op threads of the session (default: one per core).</summary>
    public int? Threads { get; set; }

    /// <summary>onnx: graph optimisation level: <c>all</c> (default), <c>extended</c>, <c>basic</c> or <c>none</c>.</summary>
    public string GraphOptimization { get; set; } = "all";

    /// <summary>
    /// onnx: <c>auto</c> (CUDA when the build and the host have it, else CPU with one warning), <c>cpu</c> or
    /// <c>cuda</c> (like auto, but an error at start-up when Store:RequireGpu is set and CUDA is missing).
    /// </summary>
    public string Device { get; set; } = "auto";

    /// <summary>onnx: the CUDA device ordinal.</summary>
    public int DeviceId { get; set; }

    /// <summary>
    /// onnx: <c>startup</c> (default) builds the session while the service starts, so a bad model is one
    /// start-up line; <c>first-use</c> builds it when the encoder is first needed (Dim must then be set,
    /// and is checked against the model then).
    /// </summary>
    public string Load { get; set; } = "startup";

    /// <summary>Image: <c>crop</c> (scale the shorter side, then centre-crop; default) or <c>stretch</c> to the input size.</summary>
    public string Resize { get; set; } = "crop";

    /// <summary>Image: pixel values 0..255 are multiplied by this (default 1/255) before Mean and Std apply.</summary>
    public float? PixelScale { get; set; }

    /// <summary>Image: per-channel mean subtracted (default ImageNet's 0.485, 0.456, 0.406, in RGB order).</summary>
    public float[]? Mean { get; set; }

    /// <summary>Image: per-channel divisor (default ImageNet's 0.229, 0.224, 0.225, in RGB order).</summary>
    public float[]? Std { get; set; }

    /// <summary>Image: channel order of the model's input, <c>rgb</c> (default) or <c>bgr</c>.</summary>
    public string ChannelOrder { get; set; } = "rgb";

    /// <summary>torchscript text: <c>wordpiece</c> (needs <see cref="VocabPath"/>, the default when it is set) or <c>hashing</c>.</summary>
    public string? Tokenizer { get; set; }

    /// <summary>torchscript text: a BERT WordPiece vocab.txt, one token per line.</summary>
    public string? VocabPath { get; set; }

    /// <summary>WordPiece: lower-case before tokenizing (uncased BERT vocabularies).</summary>
    public bool LowerCase { get; set; } = true;

    /// <summary>WordPiece: strip accents (NFD, drop non-spacing marks); default: as <see cref="LowerCase"/>, like BERT.</summary>
    public bool? StripAccents { get; set; }

    /// <summary>Error lines naming the bad keys relative to the section, e.g. <c>Encoders:minilm:MaxLength ...</c>.</summary>
    public IEnumerable<string> Validate(string name)
    {
        var errors = new List<string>();
        var p = $"Encoders:{name}:";
        if (string.IsNullOrWhiteSpace(name))
            errors.Add("Encoders: an encoder has an empty name");
        if (!Kinds.Contains(Kind))
        {
            errors.Add($"{p}Kind must be one of {string.Join(", ", Kinds)} (was '{Kind}')");
            return errors;
        }

        if (!Enum.IsDefined(DType))
            errors.Add($"{p}DType must be Float32, Float16 or BFloat16 (was {DType})");
        if (!Enum.IsDefined(Tier))
            errors.Add($"{p}Tier must be Auto, Gpu, Cpu or Disk (was {Tier})");
        Range(errors, p, nameof(BatchSize), BatchSize, 1, MaxBatchSize);

        var resolved = ResolvedOrNull();
        var text = resolved?.InputKind == Embeddings.InputKind.Text;
        if (text)
        {
            Range(errors, p, nameof(MaxLength), MaxLength, 3, MaxTokensLimit);
            OneOf(errors, p, nameof(TooLong), TooLong, "truncate", "reject");
            OneOf(errors, p, nameof(Padding), Padding, "longest", "max_length");
        }

        switch (Kind)
        {
            case KindMiniLm:
                Range(errors, p, nameof(Layers), Layers, 1, 48);
                Range(errors, p, nameof(Hidden), Hidden, 8, 4096);
                Range(errors, p, nameof(Heads), Heads, 1, 64);
                Range(errors, p, nameof(Intermediate), Intermediate, 8, 16384);
                Range(errors, p, nameof(VocabBuckets), VocabBuckets, 8, 1 << 22);
                if (resolved is { } r && r.Heads > 0 && r.Hidden % r.Heads != 0)
                    errors.Add($"{p}Heads must divide Hidden ({r.Hidden} is not a multiple of {r.Heads})");
                OneOf(errors, p, nameof(Pooling), Pooling, "mean", "cls");
                NotFor(errors, p, nameof(ModelPath), ModelPath);
                NotFor(errors, p, nameof(VocabPath), VocabPath);
                NotFor(errors, p, nameof(InputShape), InputShape);
                NotFor(errors, p, nameof(Dim), Dim);
                break;
            case KindConvNet:
                Range(errors, p, nameof(Width), Width, 1, 1024);
                Range(errors, p, nameof(Dim), Dim, 1, 65536);
                if (InputShape is { } cs && (cs.Length != 3 || cs[0] < 1 || cs[0] > 64 || cs[1] < 4 || cs[2] < 4 || cs[1] > 4096 || cs[2] > 4096))
                    errors.Add($"{p}InputShape must be [channels 1..64, height 4..4096, width 4..4096] (was {TensorFeatureBatch.FormatShape(cs)})");
                OneOf(errors, p, nameof(Pooling), Pooling, "none");
                break;
            case KindMlp:
                Range(errors, p, nameof(Layers), Layers, 0, 32);
                Range(errors, p, nameof(Hidden), Hidden, 1, 65536);
                Range(errors, p, nameof(Dim), Dim, 1, 65536);
                if (InputShape is { } ms && (ms.Length != 1 || ms[0] < 1 || ms[0] > 1 << 20))
                    errors.Add($"{p}InputShape must be [length 1..1048576] (was {TensorFeatureBatch.FormatShape(ms)})");
                OneOf(errors, p, nameof(Pooling), Pooling, "none");
                break;
            case KindTorchScript:
            case KindOnnx:
                var onnx = Kind == KindOnnx;
                if (string.IsNullOrWhiteSpace(ModelPath))
                    errors.Add($"{p}ModelPath is required for a{(onnx ? "n onnx" : " torchscript")} encoder");
                if (InputKind is not { } kind || !Enum.IsDefined(kind))
                {
                    errors.Add($"{p}InputKind must be Text, FloatVector, FloatTensor or Image (was '{InputKind?.ToString() ?? "unset"}')");
                }
                else if (kind == Embeddings.InputKind.Text)
                {
                    var tokenizer = Tokenizer ?? (VocabPath is null ? "hashing" : "wordpiece");
                    OneOf(errors, p, nameof(Tokenizer), tokenizer, "wordpiece", "hashing");
                    if (tokenizer == "wordpiece" && string.IsNullOrWhiteSpace(VocabPath))
                        errors.Add($"{p}VocabPath is required for the wordpiece tokenizer");
                    Range(errors, p, nameof(VocabBuckets), VocabBuckets, 8, 1 << 22);
                    if (InputShape is not null)
                        errors.Add($"{p}InputShape is not used by a text model (its shape is [MaxLength])");
                }
                else if (kind == Embeddings.InputKind.Image)
                {
                    if (InputShape is { } image && (image.Length != 3 || image[0] != 3 || image[1] < 8 || image[2] < 8 || image[1] > 4096 || image[2] > 4096))
                        errors.Add($"{p}InputShape of an image model must be [3, height 8..4096, width 8..4096] (was {TensorFeatureBatch.FormatShape(image)})");
                    if (!onnx && InputShape is null)
                        errors.Add($"{p}InputShape is required for a torchscript image model, e.g. [3, 224, 224]");
                    OneOf(errors, p, nameof(Resize), Resize, "crop", "stretch");
                    OneOf(errors, p, nameof(ChannelOrder), ChannelOrder, "rgb", "bgr");
                    if (PixelScale is { } scale && !(scale > 0 && float.IsFinite(scale)))
                        errors.Add($"{p}PixelScale must be a positive number (was {scale})");
                    if (Mean is { } mean && (mean.Length != 3 || mean.Any(m => !float.IsFinite(m))))
                        errors.Add($"{p}Mean must have 3 finite values, one per channel (had {mean.Length})");
                    if (Std is { } std && (std.Length != 3 || std.Any(v => !(v > 0 && float.IsFinite(v)))))
                        errors.Add($"{p}Std must have 3 positive values, one per channel");
                }
                else if (!onnx || InputShape is not null)
                {
                    var rank = kind == Embeddings.InputKind.FloatVector ? "exactly one dimension" : "at least one dimension";
                    if (InputShape is not { Length: > 0 } ts || ts.Any(d => d < 1) || (kind == Embeddings.InputKind.FloatVector && ts.Length != 1))
                        errors.Add($"{p}InputShape must have {rank}, each ≥ 1 (was {(InputShape is null ? "unset" : TensorFeatureBatch.FormatShape(InputShape))})");
                }

                OneOf(errors, p, nameof(Pooling), Pooling, "none", "cls", "mean");
                Range(errors, p, nameof(Dim), Dim, 1, 65536);
                if (onnx)
                {
                    Range(errors, p, nameof(Threads), Threads, 1, 1024);
                    Range(errors, p, nameof(DeviceId), DeviceId, 0, 64);
                    OneOf(errors, p, nameof(GraphOptimization), GraphOptimization, "all", "extended", "basic", "none");
                    OneOf(errors, p, nameof(Device), Device, "auto", "cpu", "cuda");
                    OneOf(errors, p, nameof(Load), Load, "startup", "first-use");
                    if (Load == "first-use" && Dim is null)
                        errors.Add($"{p}Dim is required when Load is first-use (the model is not opened at start-up to probe it)");
                    if (Load == "first-use" && InputKind is not Embeddings.InputKind.Text && InputShape is null)
                        errors.Add($"{p}InputShape is required when Load is first-use (the model is not opened at start-up to read it)");
                }
                else
                {
                    NotFor(errors, p, nameof(PreprocessModelPath), PreprocessModelPath);
                    NotFor(errors, p, nameof(OutputName), OutputName);
                    NotFor(errors, p, nameof(InputName), InputName);
                }

                break;
        }

        return errors;
    }

    /// <summary>A copy, so defaults can be edited without touching the original.</summary>
    public EncoderOptions Clone()
    {
        var copy = (EncoderOptions)MemberwiseClone();
        copy.InputShape = InputShape?.ToArray();
        return copy;
    }

    /// <summary>Every setting with the kind's defaults filled in. Call after <see cref="Validate"/> passed.</summary>
    internal ResolvedEncoderOptions Resolve()
    {
        var resolved = ResolvedOrNull() ?? throw new InvalidOperationException($"unknown encoder kind '{Kind}'");
        return resolved.InputKind != Embeddings.InputKind.Image ? resolved : resolved with
        {
            Image = new ImagePreprocessing(Resize, PixelScale ?? 1f / 255, Mean ?? [0.485f, 0.456f, 0.406f], Std ?? [0.229f, 0.224f, 0.225f], ChannelOrder == "bgr"),
        };
    }

    private ResolvedEncoderOptions? ResolvedOrNull()
    {
        switch (Kind)
        {
            case KindMiniLm:
                var hidden = Hidden ?? 384;
                return Base(Embeddings.InputKind.Text, [MaxLength], "mean") with
                {
                    Layers = Layers ?? 6,
                    Hidden = hidden,
                    Heads = Heads ?? 12,
                    Intermediate = Intermediate ?? 4 * hidden,
                    VocabBuckets = VocabBuckets ?? 30522,
                    Tokenizer = "hashing",
                    Dim = hidden,
                };
            case KindConvNet:
                return Base(Embeddings.InputKind.FloatTensor, InputShape ?? [3, 32, 32], "none") with
                {
                    Width = Width ?? 32,
                    Dim = Dim ?? 256,
                };
            case KindMlp:
                var shape = InputShape ?? [64];
                return Base(Embeddings.InputKind.FloatVector, shape, "none") with
                {
                    Layers = Layers ?? 2,
                    Hidden = Hidden ?? 256,
                    Dim = Dim ?? 128,
                };
            case KindTorchScript:
            case KindOnnx:
                var kind = InputKind ?? Embeddings.InputKind.FloatTensor;
                return Base(kind, kind == Embeddings.InputKind.Text ? [MaxLength] : InputShape ?? [], "none") with
                {
                    Tokenizer = kind == Embeddings.InputKind.Text ? Tokenizer ?? (VocabPath is null ? "hashing" : "wordpiece") : "",
                    VocabBuckets = VocabBuckets ?? 30522,
                    Dim = Dim ?? 0,
                };
            default:
                return null;
        }
    }

    private ResolvedEncoderOptions Base(InputKind kind, long[] inputShape, string defaultPooling) => new()
    {
        Kind = Kind,
        Seed = Seed,
        DType = DType,
        BatchSize = BatchSize,
        InputKind = kind,
        InputShape = inputShape,
        MaxLength = MaxLength,
        TruncateTooLong = TooLong == "truncate",
        PadToMaxLength = Padding == "max_length",
        Pooling = Pooling ?? defaultPooling,
        Normalize = Normalize,
        ModelPath = ModelPath,
        VocabPath = VocabPath,
        LowerCase = LowerCase,
        StripAccents = StripAccents ?? LowerCase,
        PreprocessModelPath = PreprocessModelPath,
        InputName = InputName,
        InputIdsName = InputIdsName,
        AttentionMaskName = AttentionMaskName,
        TokenTypeIdsName = TokenTypeIdsName,
        OutputName = OutputName,
        Threads = Threads ?? Environment.ProcessorCount,
        GraphOptimization = GraphOptimization,
        Device = Device,
        DeviceId = DeviceId,
        LoadOnFirstUse = Load == "first-use",
    };

    private static void Range(List<string> errors, string prefix, string key, int? value, int min, int max)
    {
        if (value is { } v && (v < min || v > max))
            errors.Add($"{prefix}{key} must be between {min} and {max} (was {v})");
    }

    private static void OneOf(List<string> errors, string prefix, string key, string? value, params string[] allowed)
    {
        if (value is not null && !allowed.Contains(value))
            errors.Add($"{prefix}{key} must be {(allowed.Length == 1 ? "" : "one of ")}{string.Join(", ", allowed)} (was '{value}')");
    }

    private void NotFor(List<string> errors, string prefix, string key, object? value)
    {
        if (value is not null)
            errors.Add($"{prefix}{key} is not used by a {Kind} encoder; remove it");
    }
}

/// <summary>Options with every default applied; what encoders are built from.</summary>
internal sealed record ResolvedEncoderOptions
{
    public required string Kind { get; init; }
    public int Seed { get; init; }
    public EmbeddingDType DType { get; init; }
    public int BatchSize { get; init; }
    public InputKind InputKind { get; init; }
    public required long[] InputShape { get; init; }
    public int MaxLength { get; init; }
    public bool TruncateTooLong { get; init; }
    public bool PadToMaxLength { get; init; }
    public required string Pooling { get; init; }
    public bool Normalize { get; init; }
    public int Layers { get; init; }
    public int Hidden { get; init; }
    public int Heads { get; init; }
    public int Intermediate { get; init; }
    public int VocabBuckets { get; init; }
    public int Width { get; init; }
    public int Dim { get; init; }
    public string Tokenizer { get; init; } = "";
    public string? ModelPath { get; init; }
    public string? VocabPath { get; init; }
    public bool LowerCase { get; init; }
    public bool StripAccents { get; init; }
    public string? PreprocessModelPath { get; init; }
    public string? InputName { get; init; }
    public string? InputIdsName { get; init; }
    public string? AttentionMaskName { get; init; }
    public string? TokenTypeIdsName { get; init; }
    public string? OutputName { get; init; }
    public int Threads { get; init; }
    public string GraphOptimization { get; init; } = "all";
    public string Device { get; init; } = "auto";
    public int DeviceId { get; init; }
    public bool LoadOnFirstUse { get; init; }

    /// <summary>Image input: how files are decoded into the model's input tensor (null for other kinds).</summary>
    public ImagePreprocessing? Image { get; init; }
}
