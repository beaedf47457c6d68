using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EmbedCache.Engine.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// A user model saved with <c>torch.jit.save</c>. Tensor models get one float32 [N, ..InputShape] argument;
/// text models get (input_ids, attention_mask), both int64 [N, L], from a WordPiece vocabulary or the
/// hashing tokenizer. The output — a tensor, or the first tensor of a tuple/list — is [N, D], or [N, L, D]
/// reduced by Pooling (cls | mean). D is probed once at load with a one-item batch. TorchScript's
/// forward is safe to call from several threads at once, so the module is shared without a lock.
/// </summary>
internal sealed class TorchScriptEncoder : TorchEncoder
{
    private readonly jit.ScriptModule _module;
    private readonly ITextTokenizer? _tokenizer;
    private readonly bool _perToken;

    private TorchScriptEncoder(string name, ResolvedEncoderOptions o, jit.ScriptModule module, ITextTokenizer? tokenizer,
        byte[] modelHash)
        : base(name, o, $"torchscript:{o.ModelPath}")
    {
        _module = module;
        _tokenizer = tokenizer;
        int dim;
        bool perToken;
        try
        {
            (dim, perToken) = Probe();
        }
        catch (Exception e) when (e is not EncoderLoadException)
        {
            throw new EncoderLoadException(
                $"encoder '{name}': model '{o.ModelPath}' failed on a one-item {o.InputKind} batch of shape {TensorFeatureBatch.FormatShape(o.InputShape)}: {FirstLine(e.Message)}", e);
        }

        _perToken = perToken;
        if (o.Dim != 0 && o.Dim != dim)
            throw new EncoderLoadException($"encoder '{name}': model '{o.ModelPath}' outputs dim {dim}, but Dim is set to {o.Dim}");
        var tokenizerPart = tokenizer is null ? "" : $";tokenizer={tokenizer.Description}";
        var imagePart = o.Image is null ? "" : $";{o.Image.Description}";
        Complete(dim, $"kind=torchscript;weights=xxh128{tokenizerPart}{imagePart}", modelHash, tokenizer?.VocabularyHash ?? ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>Loads the model (and vocabulary) and probes its output dim; failures name the encoder and file.</summary>
    public static TorchScriptEncoder Load(string name, ResolvedEncoderOptions o)
    {
        var path = o.ModelPath!;
        if (!File.Exists(path))
            throw new EncoderLoadException($"encoder '{name}': model file '{path}' does not exist");

        var tokenizer = o.InputKind == InputKind.Text ? TextTokenizer.Create(name, o) : null;

        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException e)
        {
            throw new EncoderLoadException($"encoder '{name}': cannot read model file '{path}': {e.Message}", e);
        }

        TorchRuntime.EnsureInitialized();
        jit.ScriptModule module;
        try
        {
            module = jit.load(bytes, DeviceType.CPU);
        }
        catch (Exception e) when (e is ExternalException or ArgumentException or InvalidOperationException)
        {
            throw new EncoderLoadException($"encoder '{name}': '{path}' is not a loadable TorchScript model: {FirstLine(e.Message)}", e);
        }

        module.eval();
        try
        {
            return new TorchScriptEncoder(name, o, module, tokenizer, XxHash128.Hash(bytes));
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private (int Dim, bool PerToken) Probe()
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var o = Options;
        var raw = o.InputKind == InputKind.Text
            ? Call(TokenizedText.Create(_tokenizer!, new TextFeatureBatch(["probe"]), Name, o.MaxLength, true, o.PadToMaxLength).ToTensors(0, 1))
            : Call(zeros([1, .. o.InputShape], ScalarType.Float32));
        var shape = raw.shape;
        switch (raw.dim())
        {
            case 2 when o.Pooling == "none":
                return (checked((int)shape[1]), false);
            case 2:
                throw new EncoderLoadException(
                    $"encoder '{Name}': model '{o.ModelPath}' outputs [N, D] = {TensorFeatureBatch.FormatShape(shape)}; Pooling '{o.Pooling}' needs per-token output [N, L, D] (set Pooling to none)");
            case 3 when o.Pooling != "none":
                return (checked((int)shape[2]), true);
            case 3:
                throw new EncoderLoadException(
                    $"encoder '{Name}': model '{o.ModelPath}' outputs per-token [N, L, D] = {TensorFeatureBatch.FormatShape(shape)}; set Pooling to cls or mean");
            default:
                throw new EncoderLoadException(
                    $"encoder '{Name}': model '{o.ModelPath}' outputs shape {TensorFeatureBatch.FormatShape(shape)}; expected [N, D] or [N, L, D]");
        }
    }

    protected override object Prepare(FeatureBatch features) => InputKind == InputKind.Text
        ? TokenizedText.Create(_tokenizer!, features, Name, Options.MaxLength, Options.TruncateTooLong, Options.PadToMaxLength)
        : PrepareImagesOrTensors(features);

    protected override Tensor Forward(object prepared, int start, int count)
    {
        if (prepared is TokenizedText text)
        {
            var (ids, mask) = text.ToTensors(start, count);
            var y = Call((ids, mask));
            return _perToken ? Pooling.Apply(Options.Pooling, y, mask) : y;
        }

        var output = Call(ToTensor((TensorFeatureBatch)prepared, start, count));
        return _perToken ? Pooling.Apply(Options.Pooling, output, ones(output.shape[0], output.shape[1], dtype: ScalarType.Int64)) : output;
    }

    private Tensor Call((Tensor Ids, Tensor Mask) text) => FirstTensor(_module.call(text.Ids, text.Mask));

    private Tensor Call(Tensor input) => FirstTensor(_module.call(input));

    private Tensor FirstTensor(object? result)
    {
        switch (result)
        {
            case Tensor t:
                return t;
            case Tensor[] { Length: > 0 } list:
                return list[0];
            case ITuple tuple when tuple.Length > 0:
                return FirstTensor(tuple[0]);
            case object[] items:
                foreach (var item in items)
                {
                    if (item is Tensor found)
                        return found;
                }

                break;
        }

        throw new InvalidOperationException($"model '{Options.ModelPath}' returned {result?.GetType().Name ?? "null"}, not a tensor");
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? message : message[..end].TrimEnd();
    }

    protected override void DisposeModel() => _module.Dispose();
}
