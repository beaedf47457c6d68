using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// A frozen encoder: a batch of features in, a batch of float32 embeddings out. Implementations are
/// deterministic (same input, same bits on the same machine) and safe to call from several workers at once.
/// </summary>
public interface IEncoder : IDisposable
{
    /// <summary>The configured name (the key of its configuration section).</summary>
    string Name { get; }

    /// <summary>Identity of the output space; stored keys are prefixed with it.</summary>
    Fingerprint Fingerprint { get; }

    InputKind InputKind { get; }

    /// <summary>
    /// FloatVector: <c>[length]</c>; FloatTensor: the shape of one item, e.g. <c>[3, 32, 32]</c>;
    /// Text: <c>[maxTokens]</c> (special tokens included).
    /// </summary>
    IReadOnlyList<long> InputShape { get; }

    /// <summary>Floats per embedding (probed at load for TorchScript models).</summary>
    int Dim { get; }

    /// <summary>The stored element type (part of the fingerprint); <see cref="Encode"/> always produces float32.</summary>
    EmbeddingDType DType { get; }

    /// <summary>
    /// Largest number of items in one forward pass. <see cref="Encode"/> accepts any count and splits it
    /// into forwards of at most this many items itself.
    /// </summary>
    int BatchSize { get; }

    /// <summary>Where the weights come from, e.g. <c>builtin:minilm seed=42</c> or <c>torchscript:/models/x.pt</c>.</summary>
    string Source { get; }

    /// <summary>
    /// Encodes <c>features.Count</c> items and writes <c>Count × Dim</c> float32 values, row-major, to
    /// <paramref name="output"/>. Thread-safe. Every item is validated before the first forward pass: bad
    /// input throws <see cref="InvalidFeaturesException"/> naming the item, and nothing is written.
    /// </summary>
    /// <exception cref="InvalidFeaturesException">An item is malformed (shape, NaN/Inf, empty or too long text).</exception>
    /// <exception cref="ArgumentException"><paramref name="output"/> is shorter than <c>Count × Dim</c>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled between forward passes.</exception>
    void Encode(FeatureBatch features, Span<float> output, CancellationToken cancellationToken = default);
}
