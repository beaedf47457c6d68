using System.Runtime.InteropServices;
using EmbedCache.Engine.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// The encode loop every TorchSharp encoder shares: validate the whole batch first, then for each slice of at
/// most <see cref="BatchSize"/> items one dispose scope, one forward under <c>inference_mode</c> on the
/// calling thread, optional L2 normalisation, and one block copy of the result into the caller's span.
/// The model is shared by all callers without a lock: it is in eval mode, its parameters are never written
/// after load, and libtorch's inference-mode and dispose-scope state is per thread (tests run 6–8 callers
/// at once and compare bits). <see cref="Dispose"/> frees the model: call it only once callers have stopped.
/// </summary>
internal abstract class TorchEncoder : IEncoder
{
    private readonly bool _normalize;
    private int _disposed;

    protected TorchEncoder(string name, ResolvedEncoderOptions options, string source)
    {
        Name = name;
        Options = options;
        Source = source;
        InputKind = options.InputKind;
        InputShape = options.InputShape;
        DType = options.DType;
        BatchSize = options.BatchSize;
        _normalize = options.Normalize;
        TorchRuntime.EnsureInitialized();
    }

    public string Name { get; }

    public Fingerprint Fingerprint { get; private set; }

    public InputKind InputKind { get; }

    public IReadOnlyList<long> InputShape { get; }

    public int Dim { get; private set; }

    public EmbeddingDType DType { get; }

    public int BatchSize { get; }

    public string Source { get; }

    protected ResolvedEncoderOptions Options { get; }

    /// <summary>Sets the output dim and computes the fingerprint; called once by the constructor of a subclass.</summary>
    protected void Complete(int dim, string canonicalModel, params ReadOnlyMemory<byte>[] content)
    {
        Dim = dim;
        var o = Options;
        var description =
            $"embedcache-encoder/v1;{canonicalModel};input={o.InputKind}{TensorFeatureBatch.FormatShape(o.InputShape)};" +
            (o.InputKind == InputKind.Text
                ? $"maxlen={o.MaxLength};toolong={(o.TruncateTooLong ? "truncate" : "reject")};padding={(o.PadToMaxLength ? "max_length" : "longest")};"
                : "") +
            $"pooling={o.Pooling};normalize={o.Normalize};dim={dim};dtype={o.DType}";
        Fingerprint = Fingerprint.Compute(description, content);
        CanonicalDescription = description;
    }

    /// <summary>What the fingerprint hashes, besides content hashes of files (for logs and tests).</summary>
    public string CanonicalDescription { get; private set; } = "";

    public void Encode(FeatureBatch features, Span<float> output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(features);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var count = features.Count;
        if (count == 0)
            return;
        var needed = (long)count * Dim;
        if (output.Length < needed)
            throw new ArgumentException($"output holds {output.Length} floats; {count} items × dim {Dim} = {needed} needed", nameof(output));

        var prepared = Prepare(features);
        cancellationToken.ThrowIfCancellationRequested();

        using var inference = torch.inference_mode();
        for (var start = 0; start < count; start += BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(BatchSize, count - start);
            using var scope = NewDisposeScope();
            var y = Forward(prepared, start, n);
            if (_normalize)
                y = nn.functional.normalize(y, p: 2, dim: 1);
            if (y.dim() != 2 || y.shape[0] != n || y.shape[1] != Dim)
                throw new InvalidOperationException(
                    $"encoder '{Name}' produced shape {TensorFeatureBatch.FormatShape(y.shape)}, expected [{n}, {Dim}]");
            if (y.dtype != ScalarType.Float32)
                y = y.to(ScalarType.Float32);
            y = y.contiguous();
            MemoryMarshal.Cast<byte, float>(y.bytes).CopyTo(output.Slice(start * Dim, n * Dim));
        }
    }

    /// <summary>Validates every item (throwing <see cref="InvalidFeaturesException"/>) and returns what <see cref="Forward"/> reads.</summary>
    protected abstract object Prepare(FeatureBatch features);

    /// <summary>Items [start, start + count) → a [count, Dim] tensor; runs inside the caller's dispose scope.</summary>
    protected abstract Tensor Forward(object prepared, int start, int count);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        DisposeModel();
        GC.SuppressFinalize(this);
    }

    protected abstract void DisposeModel();

    public override string ToString() => $"{Name} ({Source}, {InputKind} {TensorFeatureBatch.FormatShape(InputShape)} → {Dim} {DType}, {Fingerprint})";

    /// <summary>Checks a tensor batch against this encoder's input shape and for NaN/Inf.</summary>
    protected TensorFeatureBatch PrepareTensors(FeatureBatch features)
    {
        if (features is not TensorFeatureBatch batch)
            throw new InvalidFeaturesException(InvalidFeaturesException.WholeBatch,
                $"encoder '{Name}' takes {InputKind} features, not {Describe(features)}");
        if (!batch.ItemShape.SequenceEqual(InputShape))
            throw new InvalidFeaturesException(InvalidFeaturesException.WholeBatch,
                $"item shape {TensorFeatureBatch.FormatShape(batch.ItemShape)} does not match encoder '{Name}' input shape {TensorFeatureBatch.FormatShape(InputShape)}");
        var bad = TorchRuntime.IndexOfNonFinite(batch.Values);
        if (bad >= 0)
        {
            var value = batch.Values[bad];
            throw new InvalidFeaturesException(bad / batch.ItemLength,
                $"value {bad % batch.ItemLength} is {(float.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf")}; features must be finite");
        }

        return batch;
    }

    /// <summary>Copies items [start, start + count) into a new [count, ..shape] float32 tensor (one block copy).</summary>
    protected static Tensor ToTensor(TensorFeatureBatch batch, int start, int count)
    {
        var shape = new long[batch.ItemShape.Count + 1];
        shape[0] = count;
        for (var i = 0; i < batch.ItemShape.Count; i++)
            shape[i + 1] = batch.ItemShape[i];
        var x = empty(shape, ScalarType.Float32);
        var itemBytes = batch.ItemLength * sizeof(float);
        batch.Bytes.Slice(start * itemBytes, count * itemBytes).CopyTo(x.bytes);
        return x;
    }

    protected static string Describe(FeatureBatch features) => features switch
    {
        TextFeatureBatch => "text",
        TensorFeatureBatch t => $"float tensors of shape {TensorFeatureBatch.FormatShape(t.ItemShape)}",
        _ => features.GetType().Name,
    };
}
