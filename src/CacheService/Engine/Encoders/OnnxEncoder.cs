using System.Buffers;
using System.IO.Hashing;
using System.Numerics.Tensors;
using EmbedCache.Engine.Embeddings;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// A model run by ONNX Runtime: published encoders (sentence-transformers, torchvision, Hugging Face exports)
/// mostly ship as ONNX. Text models get int64 (input_ids, attention_mask[, token_type_ids]) [N, L] from a
/// WordPiece vocabulary; tensor and image models get float32 [N, ..InputShape], images decoded and resized
/// by <see cref="ImagePreprocessing"/> and optionally passed through a preprocessing graph first. The output
/// is [N, D] (trailing 1s dropped, e.g. a pooled [N, 512, 1, 1]) or per-token [N, L, D] reduced by Pooling.
/// One <see cref="OnnxModel"/> (session) per encoder, shared by every worker: ORT's Run is thread-safe.
/// Rows are written straight into the caller's buffer when the model outputs [N, D] (no copy).
/// With <c>Load=first-use</c> the session is built on the first Encode; the fingerprint, which hashes the
/// files and the declared Dim, is known from the start either way.
/// </summary>
internal sealed class OnnxEncoder : EncoderBase
{
    private readonly Lazy<OnnxModel> _model;
    private readonly ITextTokenizer? _tokenizer;

    private OnnxEncoder(string name, ResolvedEncoderOptions o, ITextTokenizer? tokenizer, OnnxSessionFactory sessions,
        byte[] modelHash, byte[] preprocessHash)
        : base(name, o, $"onnx:{o.ModelPath}")
    {
        _tokenizer = tokenizer;
        _model = new Lazy<OnnxModel>(() => OnnxModel.Open(name, o, sessions, tokenizer), LazyThreadSafetyMode.ExecutionAndPublication);
        var dim = o.Dim;
        if (!o.LoadOnFirstUse)
        {
            var model = _model.Value;
            if (o.Dim != 0 && o.Dim != model.Dim)
            {
                model.Dispose();
                throw new EncoderLoadException($"encoder '{name}': model '{o.ModelPath}' outputs dim {model.Dim}, but Dim is set to {o.Dim}");
            }

            dim = model.Dim;
            InputShape = model.ItemShape ?? InputShape;
        }

        var tokenizerPart = tokenizer is null ? "" : $";tokenizer={tokenizer.Description}";
        var imagePart = o.Image is null ? "" : $";{o.Image.Description}";
        var names = o.InputKind == InputKind.Text
            ? $"ids={o.InputIdsName ?? "default"},mask={o.AttentionMaskName ?? "default"},types={o.TokenTypeIdsName ?? "default"}"
            : $"input={o.InputName ?? "default"}";
        Complete(dim,
            $"kind=onnx;weights=xxh128;preprocess={(o.PreprocessModelPath is null ? "none" : "xxh128")};{names};output={o.OutputName ?? "default"}{tokenizerPart}{imagePart}",
            modelHash, preprocessHash, tokenizer?.VocabularyHash ?? ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>Whether the session has been built (always, unless Load is first-use and nothing was encoded yet).</summary>
    public bool IsLoaded => _model.IsValueCreated;

    /// <summary>The execution provider the session runs on, e.g. <c>cpu</c> or <c>cuda:0</c> (builds the session).</summary>
    public string ExecutionProvider => _model.Value.ExecutionProvider;

    /// <summary>Hashes the files, builds the tokenizer and (unless Load is first-use) the session; failures name the encoder and file.</summary>
    public static OnnxEncoder Load(string name, ResolvedEncoderOptions o, OnnxSessionFactory sessions)
    {
        var modelHash = HashFile(name, "model", o.ModelPath!);
        var preprocessHash = o.PreprocessModelPath is null ? [] : HashFile(name, "preprocessing model", o.PreprocessModelPath);
        var tokenizer = o.InputKind == InputKind.Text ? TextTokenizer.Create(name, o) : null;
        return new OnnxEncoder(name, o, tokenizer, sessions, modelHash, preprocessHash);
    }

    private static byte[] HashFile(string name, string what, string path)
    {
        if (!File.Exists(path))
            throw new EncoderLoadException($"encoder '{name}': {what} file '{path}' does not exist");
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            var hash = new XxHash128();
            hash.Append(file);
            return hash.GetHashAndReset();
        }
        catch (IOException e)
        {
            throw new EncoderLoadException($"encoder '{name}': cannot read {what} file '{path}': {e.Message}", e);
        }
    }

    public override void Encode(FeatureBatch features, Span<float> output, CancellationToken cancellationToken = default)
    {
        if (!CheckEncodeArguments(features, output))
            return;
        var count = features.Count;
        object prepared = InputKind == InputKind.Text
            ? TokenizedText.Create(_tokenizer!, features, Name, Options.MaxLength, Options.TruncateTooLong, Options.PadToMaxLength)
            : PrepareImagesOrTensors(features);
        cancellationToken.ThrowIfCancellationRequested();

        var model = _model.Value;
        if (model.Dim != Dim)
            throw new EncoderLoadException($"encoder '{Name}': model '{Options.ModelPath}' outputs dim {model.Dim}, but Dim is set to {Dim}");
        var forward = model.FixedBatch ?? BatchSize;
        for (var start = 0; start < count; start += forward)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(forward, count - start);
            var rows = output.Slice(start * Dim, n * Dim);
            if (prepared is TokenizedText text)
                model.RunText(text, start, n, rows);
            else
                model.RunTensors((TensorFeatureBatch)prepared, start, n, rows);
            if (Options.Normalize)
                EmbeddingMath.NormalizeRows(rows, Dim);
        }
    }

    protected override void DisposeModel()
    {
        if (_model.IsValueCreated)
            _model.Value.Dispose();
    }
}

/// <summary>Row-wise reductions on packed float buffers.</summary>
internal static class EmbeddingMath
{
    /// <summary>Divides each row of <paramref name="dim"/> floats by its L2 norm (at least 1e-12, as torch's normalize).</summary>
    public static void NormalizeRows(Span<float> rows, int dim)
    {
        for (var at = 0; at < rows.Length; at += dim)
        {
            var row = rows.Slice(at, dim);
            TensorPrimitives.Divide(row, MathF.Max(TensorPrimitives.Norm(row), 1e-12f), row);
        }
    }

    /// <summary>
    /// Per-token [n, length, dim] → [n, dim]: <c>cls</c> takes the first token, <c>mean</c> averages the tokens
    /// whose mask is non-zero (every token when <paramref name="mask"/> is empty).
    /// </summary>
    public static void Pool(string pooling, ReadOnlySpan<float> hidden, ReadOnlySpan<long> mask, int n, int length, int dim, Span<float> rows)
    {
        for (var i = 0; i < n; i++)
        {
            var row = rows.Slice(i * dim, dim);
            var item = hidden.Slice(i * length * dim, length * dim);
            if (pooling == "cls")
            {
                item[..dim].CopyTo(row);
                continue;
            }

            row.Clear();
            var tokens = 0;
            for (var t = 0; t < length; t++)
            {
                if (!mask.IsEmpty && mask[i * length + t] == 0)
                    continue;
                TensorPrimitives.Add(row, item.Slice(t * dim, dim), row);
                tokens++;
            }

            TensorPrimitives.Divide(row, Math.Max(tokens, 1), row);
        }
    }
}

/// <summary>
/// Session options for every ONNX encoder of a process: threads and graph optimisation per encoder, and the
/// execution provider. CUDA is asked for unless Device is cpu; without it (the CPU build, or no device) the
/// session runs on the CPU after one warning, unless Device is cuda or RequireGpu is set, which makes it a
/// load error.
/// </summary>
public sealed class OnnxSessionFactory
{
    private readonly bool _requireGpu;
    private readonly Action<string, string>? _warnCpuFallback;

    /// <param name="requireGpu">Store:RequireGpu: an encoder that cannot get CUDA is an error, not a fallback.</param>
    /// <param name="warnCpuFallback">Called with (encoder, reason) when an encoder falls back to the CPU.</param>
    public OnnxSessionFactory(bool requireGpu = false, Action<string, string>? warnCpuFallback = null)
    {
        _requireGpu = requireGpu;
        _warnCpuFallback = warnCpuFallback;
    }

    internal (InferenceSession Session, string Provider) Create(string encoder, ResolvedEncoderOptions o, string path)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = o.Threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = o.GraphOptimization switch
            {
                "none" => GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
        };
        var provider = "cpu";
        if (o.Device != "cpu")
        {
            try
            {
                options.AppendExecutionProvider_CUDA(o.DeviceId);
                provider = $"cuda:{o.DeviceId}";
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                var reason = FirstLine(e.Message);
                if (o.Device == "cuda" || _requireGpu)
                    throw new EncoderLoadException(
                        $"encoder '{encoder}': CUDA is required ({(o.Device == "cuda" ? "Device is cuda" : "RequireGpu is true")}) but ONNX Runtime cannot use it: {reason}. " +
                        "Run the CUDA build (-p:TorchBackend=cuda) on a CUDA host, or set Device to auto or cpu.", e);
                _warnCpuFallback?.Invoke(encoder, reason);
            }
        }

        try
        {
            return (new InferenceSession(path, options), provider);
        }
        catch (OnnxRuntimeException e)
        {
            throw new EncoderLoadException($"encoder '{encoder}': '{path}' is not a loadable ONNX model: {FirstLine(e.Message)}", e);
        }
    }

    internal static string FirstLine(string message)
    {
        var end = message.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? message : message[..end].TrimEnd();
    }
}

/// <summary>
/// An open ONNX model: its session (and preprocessing session), which inputs play which role, and the output
/// layout, all checked once with a one-item probe when it is opened.
/// </summary>
internal sealed class OnnxModel : IDisposable
{
    private static readonly RunOptions Run = new();
    private readonly InferenceSession _session;
    private readonly InferenceSession? _preprocess;
    private readonly string _encoder;
    private readonly string _pooling;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly string? _preprocessInput;
    private readonly string? _preprocessOutput;
    private readonly bool _hasMask;
    private readonly bool _hasTypes;
    private readonly long[] _outputTail;
    private readonly ITextTokenizer? _tokenizer;

    private OnnxModel(string encoder, ResolvedEncoderOptions o, InferenceSession session, InferenceSession? preprocess, string provider,
        ITextTokenizer? tokenizer)
    {
        _encoder = encoder;
        _tokenizer = tokenizer;
        _session = session;
        _preprocess = preprocess;
        _pooling = o.Pooling;
        ExecutionProvider = provider;
        var inputs = session.InputMetadata;
        var path = o.ModelPath;

        if (o.InputKind == InputKind.Text)
        {
            var ids = o.InputIdsName ?? (inputs.ContainsKey("input_ids") ? "input_ids" : inputs.FirstOrDefault(i => i.Value.ElementType == typeof(long)).Key);
            var mask = o.AttentionMaskName ?? (inputs.ContainsKey("attention_mask") ? "attention_mask" : null);
            var types = o.TokenTypeIdsName ?? (inputs.ContainsKey("token_type_ids") ? "token_type_ids" : null);
            foreach (var (role, input) in new[] { ("InputIdsName", ids), ("AttentionMaskName", mask), ("TokenTypeIdsName", types) })
            {
                if (input is null)
                    continue;
                if (!inputs.TryGetValue(input, out var meta))
                    throw Error($"has no input '{input}' ({role}); its inputs are {Describe(inputs)}");
                if (meta.ElementType != typeof(long))
                    throw Error($"input '{input}' is {meta.ElementType.Name}, but token ids and masks are fed as int64");
            }

            if (ids is null)
                throw Error($"has no int64 input for token ids; its inputs are {Describe(inputs)} (set InputIdsName)");
            _hasMask = mask is not null;
            _hasTypes = types is not null;
            _inputNames = [ids, .. _hasMask ? new[] { mask! } : [], .. _hasTypes ? new[] { types! } : []];
            var unfed = inputs.Keys.Except(_inputNames).ToList();
            if (unfed.Count > 0)
                throw Error($"input{(unfed.Count > 1 ? "s" : "")} {string.Join(", ", unfed.Select(u => $"'{u}'"))} would not be fed; a text model takes token ids, attention mask and token type ids (name them with InputIdsName, AttentionMaskName, TokenTypeIdsName)");
            FixedBatch = StaticBatch(inputs[ids]);
        }
        else
        {
            var modelInput = o.InputName ?? (inputs.Count == 1 ? inputs.Keys.First() : null)
                ?? throw Error($"has {inputs.Count} inputs ({Describe(inputs)}); set InputName to the one that takes the features");
            if (!inputs.TryGetValue(modelInput, out var meta))
                throw Error($"has no input '{modelInput}' (InputName); its inputs are {Describe(inputs)}");
            if (meta.ElementType != typeof(float))
                throw Error($"input '{modelInput}' is {meta.ElementType.Name}; tensor and image features are float32");
            if (inputs.Count > 1)
                throw Error($"inputs {string.Join(", ", inputs.Keys.Where(k => k != modelInput).Select(k => $"'{k}'"))} would not be fed; a tensor model takes one input");
            _inputNames = [modelInput];
            var fed = meta;
            if (preprocess is not null)
            {
                if (preprocess.InputMetadata.Count != 1 || preprocess.OutputMetadata.Count != 1)
                    throw Error($"preprocessing model '{o.PreprocessModelPath}' must have one input and one output (has {preprocess.InputMetadata.Count} and {preprocess.OutputMetadata.Count})");
                (_preprocessInput, fed) = preprocess.InputMetadata.First();
                _preprocessOutput = preprocess.OutputMetadata.Keys.First();
            }

            ItemShape = ResolveItemShape(o, fed.Dimensions);
            FixedBatch = StaticBatch(fed) ?? StaticBatch(meta);
        }

        var outputs = session.OutputMetadata;
        var output = o.OutputName ?? outputs.Keys.First();
        if (!outputs.ContainsKey(output))
            throw Error($"has no output '{output}' (OutputName); its outputs are {Describe(outputs)}");
        _outputNames = [output];
        if (FixedBatch is { } fixedBatch && fixedBatch != 1)
            throw Error($"takes a fixed batch of {fixedBatch} items; export it with a dynamic batch axis (or a batch of 1)");

        // The probe: one item through the whole path fixes the output layout and checks that everything above fits.
        try
        {
            (Dim, PerToken, _outputTail) = Probe(o);
        }
        catch (OnnxRuntimeException e)
        {
            throw Error($"failed on a one-item {o.InputKind} batch: {OnnxSessionFactory.FirstLine(e.Message)}", e);
        }

        if (PerToken && o.Pooling == "none")
            throw Error($"outputs per-token [N, L, {Dim}]; set Pooling to cls or mean");
        if (!PerToken && o.Pooling != "none")
            throw Error($"outputs [N, {Dim}]; Pooling '{o.Pooling}' needs per-token output [N, L, D] (set Pooling to none)");

        EncoderLoadException Error(string message, Exception? inner = null) =>
            new($"encoder '{encoder}': model '{path}' {message}", inner);
    }

    public int Dim { get; }

    public bool PerToken { get; }

    /// <summary>The model's own item shape for tensor and image models (null for text).</summary>
    public long[]? ItemShape { get; }

    /// <summary>1 when the graph's batch axis is fixed at one item; null when it is dynamic.</summary>
    public int? FixedBatch { get; }

    public string ExecutionProvider { get; }

    public static OnnxModel Open(string encoder, ResolvedEncoderOptions o, OnnxSessionFactory sessions, ITextTokenizer? tokenizer)
    {
        var (session, provider) = sessions.Create(encoder, o, o.ModelPath!);
        InferenceSession? preprocess = null;
        try
        {
            if (o.PreprocessModelPath is not null)
                preprocess = sessions.Create(encoder, o, o.PreprocessModelPath).Session;
            return new OnnxModel(encoder, o, session, preprocess, provider, tokenizer);
        }
        catch
        {
            preprocess?.Dispose();
            session.Dispose();
            throw;
        }
    }

    private (int Dim, bool PerToken, long[] Tail) Probe(ResolvedEncoderOptions o)
    {
        long[]? mask = null;
        long[] shape;
        try
        {
            using var results = o.InputKind == InputKind.Text
                ? RunTextRaw(ProbeText(o), 0, 1, out mask)
                : RunTensorsRaw(new TensorFeatureBatch(new float[ItemLength], ItemShape!), 0, 1);
            shape = results[0].GetTensorTypeAndShape().Shape;
        }
        finally
        {
            if (mask is not null)
                ArrayPool<long>.Shared.Return(mask);
        }

        var dims = shape.AsSpan();
        while (dims.Length > 2 && dims[^1] == 1)
            dims = dims[..^1];
        return dims.Length switch
        {
            2 => (checked((int)dims[1]), false, shape[2..]),
            3 => (checked((int)dims[2]), true, []),
            _ => throw new EncoderLoadException(
                $"encoder '{_encoder}': model '{o.ModelPath}' outputs shape {TensorFeatureBatch.FormatShape(shape)}; expected [N, D] or [N, L, D]"),
        };
    }

    private TokenizedText ProbeText(ResolvedEncoderOptions o) =>
        TokenizedText.Create(_tokenizer ?? throw new InvalidOperationException("text model without a tokenizer"),
            new TextFeatureBatch(["probe"]), _encoder, o.MaxLength, true, o.PadToMaxLength);

    private int ItemLength => (int)ItemShape!.Aggregate(1L, (a, b) => a * b);

    /// <summary>Items [start, start + n) of tokenized text → <paramref name="rows"/> [n, Dim].</summary>
    public void RunText(TokenizedText text, int start, int n, Span<float> rows)
    {
        using var results = RunTextRaw(text, start, n, out var mask);
        try
        {
            var hidden = results[0].GetTensorDataAsSpan<float>();
            if (PerToken)
                EmbeddingMath.Pool(_pooling, hidden, mask.AsSpan(0, n * (hidden.Length / (n * Dim))), n, hidden.Length / (n * Dim), Dim, rows);
            else
                hidden[..(n * Dim)].CopyTo(rows);
        }
        finally
        {
            ArrayPool<long>.Shared.Return(mask);
        }
    }

    private unsafe IDisposableReadOnlyCollection<OrtValue> RunTextRaw(TokenizedText text, int start, int n, out long[] maskCopy)
    {
        var length = text.PaddedLength(start, n);
        var size = n * length;
        var ids = ArrayPool<long>.Shared.Rent(size);
        var mask = ArrayPool<long>.Shared.Rent(size);
        var types = _hasTypes ? ArrayPool<long>.Shared.Rent(size) : null;
        try
        {
            text.Fill(start, n, length, ids, mask);
            types?.AsSpan(0, size).Clear();
            long[] shape = [n, length];
            using var idsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, ids.AsMemory(0, size), shape);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, mask.AsMemory(0, size), shape);
            using var typesValue = types is null ? null : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, types.AsMemory(0, size), shape);
            OrtValue[] values = [idsValue, .. _hasMask ? new[] { maskValue } : [], .. typesValue is null ? [] : new[] { typesValue }];
            var results = _session.Run(Run, _inputNames, values, _outputNames);
            maskCopy = mask;
            mask = null!;
            return results;
        }
        finally
        {
            ArrayPool<long>.Shared.Return(ids);
            if (mask is not null)
                ArrayPool<long>.Shared.Return(mask);
            if (types is not null)
                ArrayPool<long>.Shared.Return(types);
        }
    }

    /// <summary>Items [start, start + n) of a float batch → <paramref name="rows"/> [n, Dim]; [N, D] outputs are written in place.</summary>
    public unsafe void RunTensors(TensorFeatureBatch batch, int start, int n, Span<float> rows)
    {
        if (PerToken)
        {
            using var results = RunTensorsRaw(batch, start, n);
            var hidden = results[0].GetTensorDataAsSpan<float>();
            var length = hidden.Length / (n * Dim);
            EmbeddingMath.Pool(_pooling, hidden, [], n, length, Dim, rows);
            return;
        }

        var itemBytes = batch.ItemLength * sizeof(float);
        var bytes = batch.Bytes.Slice(start * itemBytes, n * itemBytes);
        fixed (byte* input = bytes)
        fixed (float* output = rows)
        {
            using var inputValue = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float,
                [n, .. batch.ItemShape], (IntPtr)input, bytes.Length);
            using var outputValue = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float,
                [n, Dim, .. _outputTail], (IntPtr)output, (long)n * Dim * sizeof(float));
            if (_preprocess is null)
            {
                _session.Run(Run, _inputNames, [inputValue], _outputNames, [outputValue]);
                return;
            }

            using var prepared = _preprocess.Run(Run, [_preprocessInput!], [inputValue], [_preprocessOutput!]);
            _session.Run(Run, _inputNames, [prepared[0]], _outputNames, [outputValue]);
        }
    }

    private unsafe IDisposableReadOnlyCollection<OrtValue> RunTensorsRaw(TensorFeatureBatch batch, int start, int n)
    {
        var itemBytes = batch.ItemLength * sizeof(float);
        var bytes = batch.Bytes.Slice(start * itemBytes, n * itemBytes);
        fixed (byte* input = bytes)
        {
            using var inputValue = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float,
                [n, .. batch.ItemShape], (IntPtr)input, bytes.Length);
            if (_preprocess is null)
                return _session.Run(Run, _inputNames, [inputValue], _outputNames);
            using var prepared = _preprocess.Run(Run, [_preprocessInput!], [inputValue], [_preprocessOutput!]);
            return _session.Run(Run, _inputNames, [prepared[0]], _outputNames);
        }
    }

    private long[] ResolveItemShape(ResolvedEncoderOptions o, int[] modelDims)
    {
        var item = modelDims.Skip(1).Select(d => (long)d).ToArray();
        if (o.InputShape.Length == 0)
        {
            if (item.Length == 0 || item.Any(d => d <= 0))
                throw new EncoderLoadException(
                    $"encoder '{_encoder}': model '{o.ModelPath}' input shape {TensorFeatureBatch.FormatShape(modelDims.Select(d => (long)d).ToArray())} has free dimensions; set InputShape");
            return item;
        }

        var fits = item.Length == o.InputShape.Length && item.Zip(o.InputShape).All(p => p.First <= 0 || p.First == p.Second);
        if (!fits)
            throw new EncoderLoadException(
                $"encoder '{_encoder}': InputShape {TensorFeatureBatch.FormatShape(o.InputShape)} does not fit the model's input [N, {string.Join(", ", item.Select(d => d <= 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]");
        return o.InputShape;
    }

    private static int? StaticBatch(NodeMetadata meta) =>
        meta.Dimensions.Length > 0 && meta.Dimensions[0] > 0 ? meta.Dimensions[0] : null;

    private static string Describe(IReadOnlyDictionary<string, NodeMetadata> nodes) =>
        string.Join(", ", nodes.Select(n => $"'{n.Key}' {n.Value.ElementType.Name} [{string.Join(", ", n.Value.Dimensions.Select((d, i) => d > 0 ? d.ToString(System.Globalization.CultureInfo.InvariantCulture) : n.Value.SymbolicDimensions.ElementAtOrDefault(i) is { Length: > 0 } s ? s : "?"))}]"));

    public void Dispose()
    {
        _preprocess?.Dispose();
        _session.Dispose();
    }
}
