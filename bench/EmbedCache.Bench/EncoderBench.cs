using System.Diagnostics;
using System.Globalization;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;

namespace EmbedCache.Bench;

/// <summary>
/// Forward throughput of the built-in encoders (default sizes) at batch 1, 32 and 256: items/s through
/// <see cref="IEncoder.Encode"/> on one thread, including tokenization and the copy into the caller's buffer.
/// MiniLM texts are 126 words, so every item is the full 128 tokens.
/// </summary>
public sealed class EncoderBench : IBench
{
    public string Name => "encoders";

    public string Description => "items/s of the built-in encoders at batch 1, 32, 256 [--seconds N] [--batches 1,32,256] [--encoders minilm,convnet,mlp] [--threads N]; " +
        "--runtimes: ONNX Runtime vs TorchSharp on the same graphs [--batches 1,32,128] [--tokens 128]";

    public Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var seconds = 5.0;
        int[] batches = [1, 32, 256];
        var names = new[] { "random-minilm", "random-convnet", "random-mlp" };
        var threads = 0;
        var runtimes = args.Contains("--runtimes");
        int[]? runtimeBatches = null;
        var tokens = 128;
        args = args.Where(a => a != "--runtimes").ToArray();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--tokens": tokens = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--batches": batches = runtimeBatches = RuntimeComparison.ParseBatches(args[i + 1]); break;
                case "--encoders": names = args[i + 1].Split(','); break;
                case "--threads": threads = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}");
                    return Task.FromResult(2);
            }
        }

        if (runtimes)
            return Task.FromResult(RuntimeComparison.Run(seconds, runtimeBatches ?? [1, 32, 128], tokens, Cli.FindRepo(), cancellationToken));

        // The first encoder sets torch.set_num_threads(cores); --threads overrides it afterwards.
        EncoderRegistry.CreateEncoder("probe", EncoderRegistry.Defaults()["random-mlp"]).Dispose();
        if (threads > 0)
            TorchSharp.torch.set_num_threads(threads);
        Console.WriteLine($"Machine: {MachineInfo.Describe()}; load average at start {MachineInfo.LoadAverage()}");
        Console.WriteLine($"Threads: torch.get_num_threads() = {TorchSharp.torch.get_num_threads()}; one caller thread; ≥ {seconds:0.#} s per cell");
        Console.WriteLine();
        // items per CPU-second (all threads of this process): less sensitive than wall time to other load on the host.
        Console.WriteLine("| encoder | input | dim | batch | items/s | ms/batch | items/CPU-s |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var name in names)
        {
            foreach (var batch in batches)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var options = EncoderRegistry.Defaults()[name].Clone();
                options.BatchSize = batch;
                using var encoder = EncoderRegistry.CreateEncoder(name, options);
                var features = Inputs(encoder, batch);
                var output = new float[batch * encoder.Dim];
                encoder.Encode(features, output, cancellationToken); // warm-up

                var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                var rounds = 0;
                do
                {
                    encoder.Encode(features, output, cancellationToken);
                    rounds++;
                }
                while (clock.Elapsed.TotalSeconds < seconds);
                clock.Stop();
                var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;

                var itemsPerSecond = rounds * batch / clock.Elapsed.TotalSeconds;
                var input = encoder.InputKind == InputKind.Text
                    ? $"text, {encoder.InputShape[0]} tokens"
                    : $"{encoder.InputKind} [{string.Join('×', encoder.InputShape)}]";
                Console.WriteLine(FormattableString.Invariant(
                    $"| {name} | {input} | {encoder.Dim} | {batch} | {itemsPerSecond:#,0.0} | {clock.Elapsed.TotalMilliseconds / rounds:#,0.00} | {rounds * batch / cpuSeconds:#,0.0} |"));
            }
        }

        return Task.FromResult(0);
    }

    private static FeatureBatch Inputs(IEncoder encoder, int count)
    {
        if (encoder.InputKind == InputKind.Text)
        {
            var words = (int)encoder.InputShape[0] - 2;
            var texts = new string[count];
            for (var i = 0; i < count; i++)
                texts[i] = string.Join(' ', Enumerable.Range(0, words).Select(w => $"w{(i * 7919 + w * 104729) % 50000}"));
            return new TextFeatureBatch(texts);
        }

        var itemLength = (int)encoder.InputShape.Aggregate(1L, (a, d) => a * d);
        var random = new Random(17);
        var values = new float[count * itemLength];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)(random.NextDouble() * 2 - 1);
        return new TensorFeatureBatch(values, encoder.InputShape);
    }
}
