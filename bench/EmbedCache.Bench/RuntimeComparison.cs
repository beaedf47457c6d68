using System.Diagnostics;
using System.Globalization;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;

namespace EmbedCache.Bench;

/// <summary>
/// <c>encoders --runtimes</c>: ONNX Runtime against TorchSharp where the same graph runs both ways, items/s through
/// <see cref="IEncoder.Encode"/> at the same batch size. Three pairs: the test fixtures exported from one PyTorch
/// module both ways (tensor_model.pt/.onnx, token_model.pt/.onnx: identical weights), and the MiniLM shape —
/// random-minilm (TorchSharp: 6 layers, hidden 384, 12 heads, random weights, hashing tokenizer) against
/// all-minilm-l6-v2 (ONNX Runtime, the same architecture, WordPiece) at the same token length. Every MiniLM item
/// is exactly that many tokens under both tokenizers (checked), so both run the same [batch, length] shapes.
/// Both runtimes get one intra-op thread per core (TorchRuntime, and the ONNX session's IntraOpNumThreads). The
/// two sides of a cell take turns (4 turns each, a pause between so that neither runtime's spinning worker
/// threads run into the other's turn), so a change in the host's load falls on both.
/// </summary>
internal static class RuntimeComparison
{
    private const int Turns = 4;

    private sealed record Pair(string Graph, string Input, Func<int, EncoderOptions> Torch, Func<int, EncoderOptions> Onnx, Func<IEncoder, int, FeatureBatch> Inputs);

    public static int Run(double seconds, int[] batches, int tokens, string repo, CancellationToken token)
    {
        var data = Path.Combine(repo, "tests", "Engine.Tests", "Encoders", "TestData");
        string Data(string file) => Path.Combine(data, file);
        var vocabWords = File.ReadLines(Data("vocab.txt")).Where(w => w.Length > 0 && w.All(char.IsAsciiLetterLower)).ToArray();
        var miniLm = EncoderRegistry.Defaults()[EncoderRegistry.AllMiniLmL6V2];

        Pair[] pairs =
        [
            new("tensor_model (conv 3→6 + linear → 12; test fixture)", "FloatTensor [3×8×8]",
                b => new EncoderOptions { Kind = EncoderOptions.KindTorchScript, ModelPath = Data("tensor_model.pt"), InputKind = InputKind.FloatTensor, InputShape = [3, 8, 8], BatchSize = b },
                b => new EncoderOptions { Kind = EncoderOptions.KindOnnx, ModelPath = Data("tensor_model.onnx"), InputKind = InputKind.FloatTensor, BatchSize = b },
                (_, n) => RandomTensors(n, 3 * 8 * 8, [3, 8, 8])),
            new("token_model (one attention layer, hidden 32; test fixture)", "text, 16 tokens",
                b => new EncoderOptions { Kind = EncoderOptions.KindTorchScript, ModelPath = Data("token_model.pt"), InputKind = InputKind.Text, VocabPath = Data("vocab.txt"), MaxLength = 16, Pooling = "mean", Normalize = true, BatchSize = b },
                b => new EncoderOptions { Kind = EncoderOptions.KindOnnx, ModelPath = Data("token_model.onnx"), InputKind = InputKind.Text, VocabPath = Data("vocab.txt"), MaxLength = 16, Pooling = "mean", Normalize = true, BatchSize = b },
                (_, n) => Sentences(n, 16, vocabWords)),
            new("MiniLM: 6 layers, hidden 384, 12 heads (random-minilm vs all-minilm-l6-v2)", $"text, {tokens} tokens",
                b => new EncoderOptions { Kind = EncoderOptions.KindMiniLm, MaxLength = tokens, BatchSize = b },
                b =>
                {
                    var o = miniLm.Clone();
                    o.MaxLength = tokens;
                    o.BatchSize = b;
                    o.Load = "startup";
                    return o;
                },
                (_, n) => Sentences(n, tokens, CommonWords)),
        ];

        EncoderRegistry.CreateEncoder("probe", EncoderRegistry.Defaults()["random-mlp"]).Dispose(); // TorchRuntime: set_num_threads(cores)
        Console.WriteLine($"Machine: {MachineInfo.Describe()}; load average at start {MachineInfo.LoadAverage()}");
        Console.WriteLine($"Threads: TorchSharp torch.get_num_threads() = {TorchSharp.torch.get_num_threads()}, ONNX Runtime IntraOpNumThreads = {Environment.ProcessorCount}; one caller thread; {Turns} alternating turns per side, ≥ {seconds:0.#} s per side");
        Console.WriteLine();
        Console.WriteLine("| graph | input | batch | TorchSharp items/s | ONNX Runtime items/s | ORT ÷ TorchSharp |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var pair in pairs)
        {
            foreach (var batch in batches)
            {
                token.ThrowIfCancellationRequested();
                var (torchOptions, onnxOptions) = (pair.Torch(batch), pair.Onnx(batch));
                using var torch = EncoderRegistry.CreateEncoder("torch", torchOptions);
                using var onnx = EncoderRegistry.CreateEncoder("onnx", onnxOptions);
                var features = pair.Inputs(torch, batch);
                if (torch.InputKind == InputKind.Text)
                    CheckTokenLength(pair, batch, features, torchOptions, onnxOptions);
                var (torchRate, onnxRate) = Alternate(torch, onnx, features, seconds, token);
                Console.WriteLine(FormattableString.Invariant(
                    $"| {pair.Graph} | {pair.Input} | {batch} | {torchRate:#,0.0} | {onnxRate:#,0.0} | {onnxRate / torchRate:0.00}× |"));
            }
        }

        return 0;
    }

    /// <summary>Items/s of each encoder over the same features, in alternating turns after one warm-up call each.</summary>
    private static (double A, double B) Alternate(IEncoder a, IEncoder b, FeatureBatch features, double seconds, CancellationToken token)
    {
        var output = new float[features.Count * Math.Max(a.Dim, b.Dim)];
        a.Encode(features, output.AsSpan(0, features.Count * a.Dim), token);
        b.Encode(features, output.AsSpan(0, features.Count * b.Dim), token);
        var items = new long[2];
        var time = new double[2];
        IEncoder[] sides = [a, b];
        for (var turn = 0; turn < Turns; turn++)
        {
            for (var s = 0; s < 2; s++)
            {
                Thread.Sleep(100); // the other runtime's worker threads stop spinning
                var encoder = sides[s];
                var clock = Stopwatch.StartNew();
                do
                {
                    encoder.Encode(features, output.AsSpan(0, features.Count * encoder.Dim), token);
                    items[s] += features.Count;
                }
                while (clock.Elapsed.TotalSeconds < seconds / Turns);
                time[s] += clock.Elapsed.TotalSeconds;
            }
        }

        return (items[0] / time[0], items[1] / time[1]);
    }

    /// <summary>Both tokenizers give every item exactly the pair's token length (so both runtimes see the same shapes).</summary>
    private static void CheckTokenLength(Pair pair, int batch, FeatureBatch features, EncoderOptions torchOptions, EncoderOptions onnxOptions)
    {
        foreach (var (options, side) in new[] { (torchOptions, "TorchSharp"), (onnxOptions, "ONNX") })
        {
            var o = options.Resolve();
            var tokenized = TokenizedText.Create(TextTokenizer.Create(side, o), features, side, o.MaxLength, o.TruncateTooLong, o.PadToMaxLength);
            for (var i = 0; i < batch; i++)
            {
                if (tokenized.Ids(i).Length != o.MaxLength)
                    throw new InvalidOperationException($"{pair.Graph}, {side}: item {i} is {tokenized.Ids(i).Length} tokens, not {o.MaxLength}");
            }
        }
    }

    private static TensorFeatureBatch RandomTensors(int count, int itemLength, long[] shape)
    {
        var random = new Random(17);
        var values = new float[count * itemLength];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)((random.NextDouble() * 2) - 1);
        return new TensorFeatureBatch(values, shape);
    }

    /// <summary><paramref name="count"/> different texts of more words than <paramref name="tokens"/> (so every item truncates to it).</summary>
    private static TextFeatureBatch Sentences(int count, int tokens, string[] words)
    {
        var random = new Random(23);
        var texts = new string[count];
        for (var i = 0; i < count; i++)
            texts[i] = string.Join(' ', Enumerable.Range(0, tokens + 8).Select(_ => words[random.Next(words.Length)]));
        return new TextFeatureBatch(texts);
    }

    /// <summary>Common lower-case English words (one hashing token each, one or more WordPiece tokens).</summary>
    private static readonly string[] CommonWords =
    [
        "the", "cache", "model", "reads", "every", "epoch", "once", "and", "then", "serves", "it", "from", "memory", "fast",
        "a", "train", "runs", "on", "two", "cores", "with", "small", "batches", "of", "text", "while", "service", "stores",
        "each", "vector", "for", "later", "use", "by", "other", "workers", "in", "same", "cluster", "when", "data", "changes",
        "new", "keys", "are", "written", "after", "old", "ones", "expire", "so", "nothing", "stale", "is", "ever", "returned",
    ];

    /// <summary>Parses a comma-separated list of batch sizes.</summary>
    public static int[] ParseBatches(string text) =>
        text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
}
