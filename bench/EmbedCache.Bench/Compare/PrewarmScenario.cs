using System.Diagnostics;
using System.Text.Json;
using EmbedCache.CacheClient;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// Prewarm against the bare encoder in this process at the same batch size: the MiniLM-shaped encoder over the text2
/// dataset, and the mlp prewarm of the vector dataset (<c>e32</c>, timed when the run filled the cache).
/// </summary>
internal static class PrewarmScenario
{
    public const int MiniLmBatch = 32;

    /// <summary>Workers of the mlp prewarms.</summary>
    public const int FillWorkers = 2;

    /// <param name="prewarm">The run's timed prewarm of <c>e32</c>, with <see cref="FillWorkers"/> workers.</param>
    public static async Task RunAsync(CompareReport report, EmbedCacheClient client, PrewarmResult prewarm, string dataRoot, Settings s, CancellationToken token)
    {
        // Prewarm vs the bare encoder at the same batch size: the MiniLM-shaped encoder (the cost a cache exists
        // to avoid; its forward pass dominates) and the tiny mlp (which measures the fill pipeline itself).
        // Both sides first encode the val split unmeasured (the first forward passes allocate libtorch's buffers and
        // JIT the tokenizer), then the train split is timed.
        await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: 1, split: "val");
        // The bare encoder runs before and after the prewarm and the two are averaged, so a drift in the host's
        // speed during the comparison falls on both sides.
        var bareBefore = BareMiniLm(dataRoot, MiniLmBatch, token);
        var text = await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: 1, split: "train");
        var bareAfter = BareMiniLm(dataRoot, MiniLmBatch, token);
        var bareText = (bareBefore + bareAfter) / 2;
        report.Extra.Add(FormattableString.Invariant(
            $"| prewarm minilm (6 layers, 384; batch {MiniLmBatch}, 1 worker), {s.PrewarmSentences:N0} sentences (after {s.PrewarmSentences / 3:N0} unmeasured) | {text.Wall:N1} items/s wall ({text.JobRate:N1} job-reported); job {text.Message} | bare `IEncoder.Encode` of the same sentences at batch {MiniLmBatch}, in the bench process: {bareText:N1} items/s (mean of {bareBefore:N1} before and {bareAfter:N1} after) | **{100 * text.Wall / bareText:0}%** of the bare encoder |"));
        var bare = BareEncoder(s.Items, 256, token);
        report.Extra.Add(FormattableString.Invariant(
            $"| prewarm e32 (mlp 64→384, batch 256, {FillWorkers} workers of 1 libtorch thread), {s.Items:N0} items, SaveDir on disk | {prewarm.Wall:N0} items/s wall ({prewarm.JobRate:N0} job-reported); job {prewarm.Message} | bare `IEncoder.Encode` at batch 256 ({Environment.ProcessorCount} libtorch threads): {bare:N0} items/s | **{100 * prewarm.Wall / bare:0}%** of the bare encoder (a 0.1 ms encoder: this is the fill pipeline's own speed) |"));
    }

    /// <summary>The same mlp encoder (seed 42, 64 → 384) in this process: items/s through Encode at the prewarm's batch size.</summary>
    private static double BareEncoder(int items, int batch, CancellationToken token)
    {
        using var encoder = EncoderRegistry.CreateEncoder("e32", new EncoderOptions { Kind = EncoderOptions.KindMlp, Dim = Dim, BatchSize = batch });
        var random = new Random(3);
        var values = new float[batch * InputLength];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)random.NextDouble();
        var features = new TensorFeatureBatch(values, [InputLength]);
        var output = new float[batch * Dim];
        encoder.Encode(features, output, token); // warm-up
        var clock = Stopwatch.StartNew();
        var done = 0;
        while (done < items)
        {
            encoder.Encode(features, output, token);
            done += batch;
        }

        return done / clock.Elapsed.TotalSeconds;
    }

    /// <summary>The built-in minilm encoder in this process: sentences/s through Encode over the text2 train split.</summary>
    public static double BareMiniLm(string dataRoot, int batch, CancellationToken token)
    {
        string[] Sentences(string split) => File.ReadLines(Path.Combine(dataRoot, "text2", split + ".jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)
            .ToArray();
        var options = EncoderRegistry.Defaults()["random-minilm"];
        options.BatchSize = batch;
        using var encoder = EncoderRegistry.CreateEncoder("random-minilm", options);
        var output = new float[batch * encoder.Dim];
        void EncodeAll(string[] sentences)
        {
            for (var i = 0; i < sentences.Length; i += batch)
            {
                var chunk = sentences[i..Math.Min(i + batch, sentences.Length)];
                encoder.Encode(new TextFeatureBatch(chunk), output.AsSpan(0, chunk.Length * encoder.Dim), token);
            }
        }

        EncodeAll(Sentences("val")); // warm-up, as the service's is
        var train = Sentences("train");
        var clock = Stopwatch.StartNew();
        EncodeAll(train);
        return train.Length / clock.Elapsed.TotalSeconds;
    }
}
