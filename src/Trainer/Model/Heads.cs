using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>Which head sits on top of the frozen encoder.</summary>
public enum HeadKind
{
    /// <summary>Standardise → Linear → ReLU → Linear.</summary>
    Mlp,

    /// <summary>Quaterion's SkipConnectionHead: <c>x + sigmoid(gates) ⊙ Linear(x)</c>.</summary>
    Skip,
}

/// <summary>Everything needed to rebuild a head before loading its weights.</summary>
public sealed record HeadSpec(HeadKind Kind, int InputDim, int HiddenDim, int OutputDim)
{
    public static HeadSpec For(HeadKind kind, int inputDim, int? hiddenDim = null, int? outputDim = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputDim, 1);
        if (kind == HeadKind.Skip)
        {
            // The skip connection adds the input to the output, so the two dims are one.
            if (outputDim is { } o && o != inputDim)
                throw new ArgumentException($"the skip head's output dim is its input dim ({inputDim}); --out-dim {o} does not fit");
            return new HeadSpec(kind, inputDim, inputDim, inputDim);
        }

        return new HeadSpec(kind, inputDim, hiddenDim ?? Math.Max(64, inputDim), outputDim ?? Math.Min(inputDim, 128));
    }
}

/// <summary>Creating, saving and loading heads.</summary>
public static class Heads
{
    public const string WeightsFile = "head.pt";
    public const string SpecFile = "head.json";

    private static readonly JsonSerializerOptions SpecJson = new() { WriteIndented = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>A freshly initialised head; the same seed gives the same weights.</summary>
    public static nn.Module<Tensor, Tensor> Create(HeadSpec spec, long seed)
    {
        torch.manual_seed(seed);
        return spec.Kind switch
        {
            HeadKind.Mlp => new MlpHead(spec.InputDim, spec.HiddenDim, spec.OutputDim),
            HeadKind.Skip => new SkipConnectionHead(spec.InputDim),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, "unknown head"),
        };
    }

    /// <summary>Writes <c>head.pt</c> (TorchSharp state) and <c>head.json</c> (its shape) into <paramref name="directory"/>.</summary>
    public static void Save(nn.Module<Tensor, Tensor> head, HeadSpec spec, string directory)
    {
        Directory.CreateDirectory(directory);
        head.save(Path.Combine(directory, WeightsFile));
        File.WriteAllText(Path.Combine(directory, SpecFile), JsonSerializer.Serialize(spec, SpecJson));
    }

    /// <summary>Rebuilds a head saved by <see cref="Save"/>.</summary>
    public static (nn.Module<Tensor, Tensor> Head, HeadSpec Spec) Load(string directory)
    {
        var spec = JsonSerializer.Deserialize<HeadSpec>(File.ReadAllText(Path.Combine(directory, SpecFile)), SpecJson)
            ?? throw new InvalidDataException($"{Path.Combine(directory, SpecFile)} is empty");
        var head = Create(spec, seed: 0);
        head.load(Path.Combine(directory, WeightsFile));
        head.eval();
        return (head, spec);
    }
}

/// <summary>
/// Standardise → Linear → ReLU → Linear. The input standardisation (BatchNorm without affine terms:
/// batch statistics while training, running ones after) is there because frozen encoders emit
/// uncentred, large-scale rows — the built-in mlp encoder's outputs on digits have column means about
/// twice their spread — and on such rows batch-hard triplet training collapses every output to one
/// direction (loss stuck at the margin); standardised, it trains.
/// </summary>
public sealed class MlpHead : nn.Module<Tensor, Tensor>
{
    private readonly BatchNorm1d _norm;
    private readonly Linear _fc1;
    private readonly Linear _fc2;

    public MlpHead(int inputDim, int hiddenDim, int outputDim)
        : base(nameof(MlpHead))
    {
        _norm = nn.BatchNorm1d(inputDim, affine: false);
        _fc1 = nn.Linear(inputDim, hiddenDim);
        _fc2 = nn.Linear(hiddenDim, outputDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var normed = _norm.forward(input);
        using var hidden = _fc1.forward(normed);
        using var activated = nn.functional.relu(hidden);
        return _fc2.forward(activated);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _norm.Dispose();
            _fc1.Dispose();
            _fc2.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Quaterion's SkipConnectionHead: <c>fc(x) · sigmoid(gates) + x</c>. The gates start at −4, so the
/// head starts close to the identity and training opens only the components that help.
/// </summary>
public sealed class SkipConnectionHead : nn.Module<Tensor, Tensor>
{
    private readonly Linear _fc;
    private readonly Parameter _gates;

    public SkipConnectionHead(int dim)
        : base(nameof(SkipConnectionHead))
    {
        _fc = nn.Linear(dim, dim);
        _gates = new Parameter(torch.full(dim, -4.0f));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var gated = _fc.forward(input).mul(torch.sigmoid(_gates));
        return gated.add(input).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _fc.Dispose();
            _gates.Dispose();
        }

        base.Dispose(disposing);
    }
}
