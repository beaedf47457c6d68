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

    /// <summary>
    /// The built-ins the service runs with no configuration: <c>minilm</c> (text, max 128 tokens → 384),
    /// <c>convnet</c> (float tensor 3×32×32 → 256) and <c>mlp</c> (float vector of 64 → 128), seed 42, float32.
    /// </summary>
    public static IReadOnlyDictionary<string, EncoderOptions> Defaults() => new Dictionary<string, EncoderOptions>(StringComparer.Ordinal)
    {
        [EncoderOptions.KindMiniLm] = new() { Kind = EncoderOptions.KindMiniLm },
        [EncoderOptions.KindConvNet] = new() { Kind = EncoderOptions.KindConvNet },
        [EncoderOptions.KindMlp] = new() { Kind = EncoderOptions.KindMlp },
    };

    /// <summary>
    /// Validates and builds every encoder. Throws <see cref="EncoderLoadException"/> naming the encoder (and
    /// file) on the first failure, after disposing whatever was already built.
    /// </summary>
    public static EncoderRegistry Create(IReadOnlyDictionary<string, EncoderOptions> encoders, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(encoders);
        var log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<EncoderRegistry>();
        var errors = encoders.SelectMany(e => e.Value.Validate(e.Key)).ToList();
        if (errors.Count > 0)
            throw new EncoderLoadException(string.Join(Environment.NewLine, errors));

        var built = new List<IEncoder>();
        try
        {
            foreach (var (name, options) in encoders.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                var encoder = Build(name, options.Resolve());
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
    public static IEncoder CreateEncoder(string name, EncoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = options.Validate(name).ToList();
        if (errors.Count > 0)
            throw new EncoderLoadException(string.Join(Environment.NewLine, errors));
        return Build(name, options.Resolve());
    }

    private static IEncoder Build(string name, ResolvedEncoderOptions o)
    {
        try
        {
            return o.Kind switch
            {
                EncoderOptions.KindMiniLm => new MiniLmEncoder(name, o),
                EncoderOptions.KindConvNet or EncoderOptions.KindMlp => new TensorModelEncoder(name, o),
                EncoderOptions.KindTorchScript => TorchScriptEncoder.Load(name, o),
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

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Encoder {Name}: {Source}, {InputKind} {InputShape} -> {Dim} x {DType}, fingerprint {Fingerprint}")]
    private static partial void LogLoaded(ILogger logger, string name, string source, InputKind inputKind, string inputShape,
        int dim, EmbeddingDType dType, string fingerprint);
}
