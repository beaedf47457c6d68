using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// Fills a built-in model's parameters from our own seeded generator (SplitMix64 per parameter, keyed by seed
/// and parameter name), so the weights are the same bits on every machine and every libtorch version —
/// not dependent on libtorch's initialisers or its random generator.
/// </summary>
internal static class SeededInit
{
    public static void Apply(nn.Module module, int seed)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in module.named_parameters())
        {
            var values = new float[parameter.numel()];
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            if (name.Contains("norm", StringComparison.OrdinalIgnoreCase))
            {
                Array.Fill(values, leaf == "weight" ? 1f : 0f);
            }
            else
            {
                var shape = parameter.shape;
                var fanIn = 1L;
                for (var i = 1; i < shape.Length; i++)
                    fanIn *= shape[i];
                // Uniform with the standard deviation of the usual initialisers: 0.02 for embeddings and
                // biases (BERT), 1/sqrt(fan_in) for weights (LeCun), so activations keep their scale.
                var std = shape.Length < 2 || name.Contains("embed", StringComparison.OrdinalIgnoreCase) ? 0.02 : 1 / Math.Sqrt(fanIn);
                Fill(values, seed, name, (float)(std * Math.Sqrt(3)));
            }

            parameter.bytes = MemoryMarshal.AsBytes(values.AsSpan());
        }

        module.eval();
    }

    private static void Fill(Span<float> values, int seed, string name, float bound)
    {
        var state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ XxHash3.HashToUInt64(Encoding.UTF8.GetBytes(name));
        for (var i = 0; i < values.Length; i++)
        {
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            var unit = (z >> 40) * (1.0f / (1 << 24)); // [0, 1) in 2^-24 steps: exact in float32
            values[i] = (2 * unit - 1) * bound;
        }
    }
}

/// <summary>A BERT encoder layer: post-LN self-attention and GELU feed-forward (MiniLM's layout).</summary>
internal sealed class TransformerLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear qkv;
    private readonly Linear attn_out;
    private readonly LayerNorm attn_norm;
    private readonly Linear ff_in;
    private readonly Linear ff_out;
    private readonly LayerNorm ff_norm;
    private readonly long _heads;

    public TransformerLayer(string name, int hidden, int heads, int intermediate)
        : base(name)
    {
        _heads = heads;
        qkv = nn.Linear(hidden, 3 * hidden);
        attn_out = nn.Linear(hidden, hidden);
        attn_norm = nn.LayerNorm(hidden, eps: 1e-12);
        ff_in = nn.Linear(hidden, intermediate);
        ff_out = nn.Linear(intermediate, hidden);
        ff_norm = nn.LayerNorm(hidden, eps: 1e-12);
        RegisterComponents();
    }

    /// <param name="x">[N, L, H]</param>
    /// <param name="keep">bool [N, 1, 1, L]: true for real tokens.</param>
    public override Tensor forward(Tensor x, Tensor keep)
    {
        var (n, l, h) = (x.shape[0], x.shape[1], x.shape[2]);
        var parts = qkv.call(x).view(n, l, 3, _heads, h / _heads).permute(2, 0, 3, 1, 4).unbind(0);
        var attended = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], keep);
        var merged = attended.transpose(1, 2).reshape(n, l, h);
        x = attn_norm.call(x + attn_out.call(merged));
        return ff_norm.call(x + ff_out.call(nn.functional.gelu(ff_in.call(x))));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            qkv.Dispose();
            attn_out.Dispose();
            attn_norm.Dispose();
            ff_in.Dispose();
            ff_out.Dispose();
            ff_norm.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>MiniLM-shaped text encoder: token + position embeddings, LayerNorm, N BERT layers, then pooling.</summary>
internal sealed class MiniLmModel : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding token_embed;
    private readonly Embedding position_embed;
    private readonly LayerNorm embed_norm;
    private readonly ModuleList<TransformerLayer> layers;
    private readonly bool _cls;

    public MiniLmModel(ResolvedEncoderOptions o)
        : base("minilm")
    {
        token_embed = nn.Embedding(o.VocabBuckets, o.Hidden);
        position_embed = nn.Embedding(o.MaxLength, o.Hidden);
        embed_norm = nn.LayerNorm(o.Hidden, eps: 1e-12);
        layers = nn.ModuleList<TransformerLayer>();
        for (var i = 0; i < o.Layers; i++)
            layers.Add(new TransformerLayer($"layer{i}", o.Hidden, o.Heads, o.Intermediate));
        _cls = o.Pooling == "cls";
        RegisterComponents();
    }

    /// <param name="ids">int64 [N, L]</param>
    /// <param name="mask">int64 [N, L]: 1 for real tokens, 0 for padding.</param>
    /// <returns>[N, H]</returns>
    public override Tensor forward(Tensor ids, Tensor mask)
    {
        var (n, l) = (ids.shape[0], ids.shape[1]);
        var positions = arange(l, ScalarType.Int64);
        var x = embed_norm.call(token_embed.call(ids) + position_embed.call(positions));
        var keep = mask.to(ScalarType.Bool).view(n, 1, 1, l);
        foreach (var layer in layers)
            x = layer.call(x, keep);
        return _cls ? x.select(1, 0) : Pooling.Mean(x, mask);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            token_embed.Dispose();
            position_embed.Dispose();
            embed_norm.Dispose();
            layers.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>Small conv net for C×H×W images: three conv stages (ReLU, 2×2 max-pool after the first two), global average pool, linear head.</summary>
internal sealed class ConvNetModel : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Conv2d conv3;
    private readonly Linear head;

    public ConvNetModel(ResolvedEncoderOptions o)
        : base("convnet")
    {
        var w = o.Width;
        conv1 = nn.Conv2d(o.InputShape[0], w, 3, padding: 1);
        conv2 = nn.Conv2d(w, 2 * w, 3, padding: 1);
        conv3 = nn.Conv2d(2 * w, 4 * w, 3, padding: 1);
        head = nn.Linear(4 * w, o.Dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = nn.functional.max_pool2d(nn.functional.relu(conv1.call(x)), [2, 2]);
        x = nn.functional.max_pool2d(nn.functional.relu(conv2.call(x)), [2, 2]);
        x = nn.functional.relu(conv3.call(x));
        x = x.mean([2L, 3L]);
        return head.call(x);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            conv1.Dispose();
            conv2.Dispose();
            conv3.Dispose();
            head.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>MLP for float vectors: Layers × (Linear, GELU) then a linear head.</summary>
internal sealed class MlpModel : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> hidden;
    private readonly Linear head;

    public MlpModel(ResolvedEncoderOptions o)
        : base("mlp")
    {
        hidden = nn.ModuleList<Linear>();
        var width = o.InputShape[0];
        for (var i = 0; i < o.Layers; i++)
        {
            hidden.Add(nn.Linear(width, o.Hidden));
            width = o.Hidden;
        }

        head = nn.Linear(width, o.Dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var layer in hidden)
            x = nn.functional.gelu(layer.call(x));
        return head.call(x);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            hidden.Dispose();
            head.Dispose();
        }

        base.Dispose(disposing);
    }
}

internal static class Pooling
{
    /// <summary>Mean over real tokens: x [N, L, D], mask int64 [N, L] → [N, D].</summary>
    public static Tensor Mean(Tensor x, Tensor mask)
    {
        var weights = mask.unsqueeze(-1).to(x.dtype);
        return (x * weights).sum(1) / weights.sum(1).clamp_min(1);
    }

    /// <summary>x [N, L, D] → [N, D] by <c>cls</c> (first token) or <c>mean</c>.</summary>
    public static Tensor Apply(string pooling, Tensor x, Tensor mask) => pooling switch
    {
        "cls" => x.select(1, 0),
        "mean" => Mean(x, mask),
        _ => throw new ArgumentOutOfRangeException(nameof(pooling), pooling, "pooling must be cls or mean"),
    };
}
