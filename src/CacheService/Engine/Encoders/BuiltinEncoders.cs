using EmbedCache.Engine.Embeddings;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Encoders;

/// <summary>The built-in MiniLM-shaped text encoder (hashing tokenizer, seeded weights).</summary>
internal sealed class MiniLmEncoder : TorchEncoder
{
    private readonly MiniLmModel _model;
    private readonly HashingTokenizer _tokenizer;

    public MiniLmEncoder(string name, ResolvedEncoderOptions o)
        : base(name, o, $"builtin:minilm seed={o.Seed}")
    {
        _tokenizer = new HashingTokenizer(o.VocabBuckets);
        _model = new MiniLmModel(o);
        SeededInit.Apply(_model, o.Seed);
        Complete(o.Hidden,
            $"kind=minilm;init=splitmix64-v1;seed={o.Seed};layers={o.Layers};hidden={o.Hidden};heads={o.Heads};" +
            $"intermediate={o.Intermediate};positions={o.MaxLength};act=gelu;norm=post-ln;tokenizer={_tokenizer.Description}");
    }

    internal TokenizedText Tokenize(FeatureBatch features) =>
        TokenizedText.Create(_tokenizer, features, Name, Options.MaxLength, Options.TruncateTooLong, Options.PadToMaxLength);

    protected override object Prepare(FeatureBatch features) => Tokenize(features);

    protected override Tensor Forward(object prepared, int start, int count)
    {
        var (ids, mask) = ((TokenizedText)prepared).ToTensors(start, count);
        return _model.call(ids, mask);
    }

    protected override void DisposeModel() => _model.Dispose();
}

/// <summary>The built-in conv net (image tensors) and MLP (float vectors), seeded weights.</summary>
internal sealed class TensorModelEncoder : TorchEncoder
{
    private readonly nn.Module<Tensor, Tensor> _model;

    public TensorModelEncoder(string name, ResolvedEncoderOptions o)
        : base(name, o, $"builtin:{o.Kind} seed={o.Seed}")
    {
        string architecture;
        if (o.Kind == EncoderOptions.KindConvNet)
        {
            _model = new ConvNetModel(o);
            architecture = $"kind=convnet;init=splitmix64-v1;seed={o.Seed};width={o.Width};stages=3;act=relu;pool=max2,max2,mean";
        }
        else
        {
            _model = new MlpModel(o);
            architecture = $"kind=mlp;init=splitmix64-v1;seed={o.Seed};layers={o.Layers};hidden={o.Hidden};act=gelu";
        }

        SeededInit.Apply(_model, o.Seed);
        Complete(o.Dim, architecture);
    }

    protected override object Prepare(FeatureBatch features) => PrepareTensors(features);

    protected override Tensor Forward(object prepared, int start, int count) =>
        _model.call(ToTensor((TensorFeatureBatch)prepared, start, count));

    protected override void DisposeModel() => _model.Dispose();
}
