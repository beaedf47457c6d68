using EmbedCache.Engine.Embeddings;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbedCache.Engine.Encoders;

/// <summary>The encoders the service runs, by name. Owns and disposes them.</summary>
public sealed partial class EncoderRegistry : IDisposable
{
    private readonly Dictionary<string, IEncoder> _byName;

    private EncoderRegistry(List<IEncoder> encoders)
    {
        All = encoders;
        _byName = encoders.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>Encoders in configuration order (ordinal by name).</summary>
    public IReadOnlyList<IEncoder> All { get; }

    /// <summary>Name of the pretrained text encoder the service offers out of the box.</summary>
    public const string AllMiniLmL6V2 = "all-minilm-l6-v2";

    /// <summary>Name of the pretrained image encoder the service offers out of the box.</summary>
    public const string ResNet18 = "resnet18";

    /// <summary>Where the build puts the pretrained models (build/PretrainedModels.targets): <c>models/</c> beside the program.</summary>
    public static string ModelsDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "models");

    /// <summary>
    /// The encoders the service runs with no configuration, float32:
    /// <list type="bullet">
    /// <item><c>all-minilm-l6-v2</c>: sentence-transformers' all-MiniLM-L6-v2 (ONNX, WordPiece, max 256 tokens,
    /// mean pooling, L2-normalised → 384);</item>
    /// <item><c>resnet18</c>: ResNet-18 pooled features of a 224×224 centre crop (ONNX, images → 512);</item>
    /// <item><c>random-minilm</c> (text → 384), <c>random-convnet</c> (3×32×32 → 256), <c>random-mlp</c> (64 → 128):
    /// seeded random weights with a model's shape, for tests and benchmarks that need no files.</item>
    /// </list>
    /// The two pretrained models open on first use (see <see cref="EncoderOptions.Load"/>).
    /// </summary>
    public static IReadOnlyDictionary<string, EncoderOptions> Defaults() => new Dictionary<string, EncoderOptions>(StringComparer.Ordinal)
    {
        [AllMiniLmL6V2] = new()
        {
            Kind = EncoderOptions.KindOnnx,
            ModelPath = Path.Combine(ModelsDirectory, AllMiniLmL6V2, "model.onnx"),
            VocabPath = Path.Combine(ModelsDirectory, AllMiniLmL6V2, "vocab.txt"),
            InputKind = Embeddings.InputKind.Text,
            OutputName = "last_hidden_state",
            MaxLength = 256,
            Pooling = "mean",
            Normalize = true,
            Dim = 384,
            Load = "first-use",
        },
        [ResNet18] = new()
        {
            Kind = EncoderOptions.KindOnnx,
            ModelPath = Path.Combine(ModelsDirectory, ResNet18, "ResNet18.onnx"),
            // Splits RGB planes into BGR and subtracts the ImageNet mean image; it wants pixels 0..255.
            PreprocessModelPath = Path.Combine(ModelsDirectory, ResNet18, "ResNetPreprocess.onnx"),
            InputKind = Embeddings.InputKind.Image,
            InputShape = [3, 224, 224],
            Resize = "crop",
            PixelScale = 1,
            Mean = [0, 0, 0],
            Std = [1, 1, 1],
            Dim = 512,
            Load = "first-use",
        },
        [EncoderOptions.KindMiniLm] = new() { Kind = EncoderOptions.KindMiniLm },
        [EncoderOptions.KindConvNet] = new() { Kind = EncoderOptions.KindConvNet },
        [EncoderOptions.KindMlp] = new() { Kind = EncoderOptions.KindMlp },
    };

    /// <summary>
    /// Validates and builds every encoder. Throws <see cref="EncoderLoadException"/> naming the encoder (and
    /// file) on the first failure, after disposing whatever was already built.
    /// </summary>
    /// <param name="requireGpu">Store:RequireGpu: an ONNX encoder that cannot get CUDA fails instead of running on the CPU.</param>
    public static EncoderRegistry Create(IReadOnlyDictionary<string, EncoderOptions> encoders, ILoggerFactory? loggerFactory = null,
        bool requireGpu = false)
    {
        ArgumentNullException.ThrowIfNull(encoders);
        var log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<EncoderRegistry>();
        var sessions = new OnnxSessionFactory(requireGpu, (encoder, reason) => LogCpuFallback(log, encoder, reason));
        var errors = encoders.SelectMany(e => e.Value.Validate(e.Key)).ToList();
        if (errors.Count > 0)
            throw new EncoderLoadException(string.Join(Environment.NewLine, errors));

        var built = new List<IEncoder>();
        try
        {
            foreach (var (name, options) in encoders.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                var encoder = Build(name, options.Resolve(), sessions);
                built.Add(encoder);
                var shape = TensorFeatureBatch.FormatShape(encoder.InputShape);
                var fingerprint = encoder.Fingerprint.ToString();
                LogLoaded(log, encoder.Name, encoder.Source, encoder.InputKind, shape, encoder.Dim, encoder.DType, fingerprint);
            }
        }
        catch
        {
            foreach (var encoder in built)
                encoder.Dispose();
            throw;
        }

        return new EncoderRegistry(built);
    }

    /// <summary>Builds one encoder from options that passed <see cref="EncoderOptions.Validate"/>.</summary>
    public static IEncoder CreateEncoder(string name, EncoderOptions options, OnnxSessionFactory? sessions = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate(name).ToList();
        if (errors.Count > 0)
            throw new EncoderLoadException(string.Join(Environment.NewLine, errors));
        return Build(name, options.Resolve(), sessions ?? new OnnxSessionFactory());
    }

    private static IEncoder Build(string name, ResolvedEncoderOptions o, OnnxSessionFactory sessions)
    {
        try
        {
            return o.Kind switch
            {
                EncoderOptions.KindMiniLm => new MiniLmEncoder(name, o),
                EncoderOptions.KindConvNet or EncoderOptions.KindMlp => new TensorModelEncoder(name, o),
                EncoderOptions.KindTorchScript => TorchScriptEncoder.Load(name, o),
                EncoderOptions.KindOnnx => OnnxEncoder.Load(name, o, sessions),
                _ => throw new EncoderLoadException($"encoder '{name}': unknown kind '{o.Kind}'"),
            };
        }
        catch (Exception e) when (e is not EncoderLoadException)
        {
            throw new EncoderLoadException($"encoder '{name}' ({o.Kind}) could not be built: {e.Message}", e);
        }
    }

    public bool TryGet(string name, out IEncoder encoder) => _byName.TryGetValue(name, out encoder!);

    public void Dispose()
    {
        foreach (var encoder in All)
            encoder.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Encoder {Name}: ONNX Runtime has no CUDA here ({Reason}); running on the CPU (set Store:RequireGpu to make this an error)")]
    private static partial void LogCpuFallback(ILogger logger, string name, string reason);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Encoder {Name}: {Source}, {InputKind} {InputShape} -> {Dim} x {DType}, fingerprint {Fingerprint}")]
    private static partial void LogLoaded(ILogger logger, string name, string source, InputKind inputKind, string inputShape,
        int dim, EmbeddingDType dType, string fingerprint);
}
