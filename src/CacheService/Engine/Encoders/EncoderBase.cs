using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// What every encoder shares whatever runs it (TorchSharp or ONNX Runtime): its identity (name, fingerprint,
/// input kind and shape, dim, dtype), the canonical description its fingerprint hashes, and the checks that
/// run on a batch before any forward pass.
/// </summary>
internal abstract class EncoderBase : IEncoder
{
    private int _disposed;

    protected EncoderBase(string name, ResolvedEncoderOptions options, string source)
    {
        Name = name;
        Options = options;
        Source = source;
        InputKind = options.InputKind;
        InputShape = options.InputShape;
        DType = options.DType;
        BatchSize = options.BatchSize;
    }

    public string Name { get; }

    public Fingerprint Fingerprint { get; private set; }

    public InputKind InputKind { get; }

    public IReadOnlyList<long> InputShape { get; protected set; }

    public int Dim { get; private set; }

    public EmbeddingDType DType { get; }

    public int BatchSize { get; }

    public string Source { get; }

    protected ResolvedEncoderOptions Options { get; }

    /// <summary>What the fingerprint hashes, besides content hashes of files (for logs and tests).</summary>
    public string CanonicalDescription { get; private set; } = "";

    protected bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Sets the output dim and computes the fingerprint; called once by the constructor of a subclass.</summary>
    protected void Complete(int dim, string canonicalModel, params ReadOnlyMemory<byte>[] content)
    {
        Dim = dim;
        var o = Options;
        var description =
            $"embedcache-encoder/v1;{canonicalModel};input={o.InputKind}{TensorFeatureBatch.FormatShape(InputShape)};" +
            (o.InputKind == InputKind.Text
                ? $"maxlen={o.MaxLength};toolong={(o.TruncateTooLong ? "truncate" : "reject")};padding={(o.PadToMaxLength ? "max_length" : "longest")};"
                : "") +
            $"pooling={o.Pooling};normalize={o.Normalize};dim={dim};dtype={o.DType}";
        Fingerprint = Fingerprint.Compute(description, content);
        CanonicalDescription = description;
    }

    public abstract void Encode(FeatureBatch features, Span<float> output, CancellationToken cancellationToken = default);

    /// <summary>The checks every Encode starts with; returns false for an empty batch.</summary>
    protected bool CheckEncodeArguments(FeatureBatch features, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(features);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var count = features.Count;
        if (count == 0)
            return false;
        var needed = (long)count * Dim;
        if (output.Length < needed)
            throw new ArgumentException($"output holds {output.Length} floats; {count} items × dim {Dim} = {needed} needed", nameof(output));
        return true;
    }

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
        var bad = FeatureChecks.IndexOfNonFinite(batch.Values);
        if (bad >= 0)
        {
            var value = batch.Values[bad];
            throw new InvalidFeaturesException(bad / batch.ItemLength,
                $"value {bad % batch.ItemLength} is {(float.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf")}; features must be finite");
        }

        return batch;
    }

    /// <summary>
    /// Image encoders: decodes encoded images into [N, 3, H, W] floats (<see cref="ImagePreprocessing"/>); a
    /// ready float tensor batch of the input shape is taken as it is. Other encoders: <see cref="PrepareTensors"/>.
    /// </summary>
    protected TensorFeatureBatch PrepareImagesOrTensors(FeatureBatch features)
    {
        if (features is not ImageFeatureBatch images)
            return PrepareTensors(features);
        if (Options.Image is not { } preprocessing)
            throw new InvalidFeaturesException(InvalidFeaturesException.WholeBatch,
                $"encoder '{Name}' takes {InputKind} features, not encoded images");
        int height = (int)InputShape[1], width = (int)InputShape[2];
        var itemLength = 3 * height * width;
        var data = new float[checked(images.Count * itemLength)];
        for (var i = 0; i < images.Count; i++)
            preprocessing.Decode(images.Images[i].Span, height, width, data.AsSpan(i * itemLength, itemLength), i);
        return new TensorFeatureBatch(data, InputShape);
    }

    protected static string Describe(FeatureBatch features) => features switch
    {
        TextFeatureBatch => "text",
        TensorFeatureBatch t => $"float tensors of shape {TensorFeatureBatch.FormatShape(t.ItemShape)}",
        ImageFeatureBatch => "encoded images",
        _ => features.GetType().Name,
    };
}
