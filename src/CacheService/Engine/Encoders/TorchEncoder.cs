using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// The encode loop every TorchSharp encoder shares: validate the whole batch first, then for each slice of at
/// most <see cref="EncoderBase.BatchSize"/> items one dispose scope, one forward under <c>inference_mode</c> on
/// the calling thread, optional L2 normalisation, and one block copy of the result into the caller's span.
/// The model is shared by all callers without a lock: it is in eval mode, its parameters are never written
/// after load, and libtorch's inference-mode and dispose-scope state is per thread (tests run 6–8 callers
/// at once and compare bits). <see cref="EncoderBase.Dispose"/> frees the model: call it only once callers have stopped.
/// </summary>
internal abstract class TorchEncoder : EncoderBase
{
    private readonly bool _normalize;

    protected TorchEncoder(string name, ResolvedEncoderOptions options, string source)
        : base(name, options, source)
    {
        _normalize = options.Normalize;
        TorchRuntime.EnsureInitialized();
    }

    public override void Encode(FeatureBatch features, Span<float> output, CancellationToken cancellationToken = default)
    {
        if (!CheckEncodeArguments(features, output))
            return;
        var count = features.Count;
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
}
