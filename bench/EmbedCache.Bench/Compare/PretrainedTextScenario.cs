using System.Diagnostics;
using System.Globalization;
using EmbedCache.CacheClient;
using EmbedCache.Engine.Encoders;
using Microsoft.ML.OnnxRuntime;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The real text model in <c>compare</c>: a prewarm of the shipped fortunes dataset with all-minilm-l6-v2 (ONNX
/// Runtime) against a bare ONNX Runtime session of the same model file and thread settings, fed pre-tokenized,
/// padded batches of the same sentences in this process, at batch 32 and 128; and the trainer on that model,
/// cached vs <c>--no-cache</c>. It runs on a service instance of its own (fortunes and the default encoders, its
/// own SaveDir), after the main one has stopped.
/// </summary>
internal static class PretrainedTextScenario
{
    private const string AllMiniLm = EncoderRegistry.AllMiniLmL6V2;
    private static readonly int[] PretrainedBatches = [32, 128];

    public static async Task RunAsync(CompareReport report, string serviceDll, string trainerDll, string repo, string root, Settings s, CancellationToken token)
    {
        var dataRoot = Path.Combine(root, "data-pretrained");
        var (train, val) = CopyFortunes(Path.Combine(repo, "deploy", "datasets", "fortunes"), Path.Combine(dataRoot, "fortunes"), s.Quick);
        Log($"pretrained text: fortunes, {train.Length:N0} train + {val.Length:N0} val sentences");
        string[] args =
        [
            .. CommonServiceArgs(Path.Combine(root, "save-pretrained"), dataRoot),
            $"--EmbedCache:Encoders:{AllMiniLm}:BatchSize={PretrainedBatches.Max()}", // forward passes as large as the job's batches
        ];
        await using var service = await ServiceInstance.StartAsync(serviceDll, args, token);
        using var client = new EmbedCacheClient(service.Uri);
        using var bare = new BareAllMiniLm(PretrainedBatches.Max());

        (double Ratio, double Rate) worst = (double.MaxValue, 0);
        foreach (var batch in PretrainedBatches)
        {
            // Both sides first run the val split unmeasured (the service's first run also opens the model), then
            // the train split is timed. The bare rates are taken before and after the service's run and averaged.
            await client.DropNamespaceAsync(AllMiniLm, cancellationToken: token);
            await PrewarmAsync(client, "fortunes", AllMiniLm, batch, token, split: "val");
            var batches = bare.Prepare(train, batch);
            using (var warm = bare.Prepare(val, batch))
                bare.RunSession(warm);
            bare.Encode(val, batch, token);

            var sessionBefore = bare.RunSession(batches);
            var encodeBefore = bare.Encode(train, batch, token);
            await Task.Delay(200, token); // this process's runtime threads stop spinning before the service runs
            var prewarm = await PrewarmAsync(client, "fortunes", AllMiniLm, batch, token, split: "train");
            var sessionAfter = bare.RunSession(batches);
            var encodeAfter = bare.Encode(train, batch, token);
            batches.Dispose();

            var session = (sessionBefore + sessionAfter) / 2;
            var encode = (encodeBefore + encodeAfter) / 2;
            var ratio = prewarm.Wall / session;
            if (ratio < worst.Ratio)
                worst = (ratio, prewarm.Wall);
            report.Extra.Add(FormattableString.Invariant(
                $"| prewarm all-minilm-l6-v2 (ONNX Runtime; fortunes train, {train.Length:N0} sentences; batch {batch}, 1 worker) | {prewarm.Wall:N1} sentences/s wall ({prewarm.JobRate:N1} job-reported); job {prewarm.Message} | bare ONNX Runtime session, same model file and threads, pre-tokenized padded batches of the same sentences: {session:N1}/s (mean of {sessionBefore:N1} before and {sessionAfter:N1} after); bare `IEncoder.Encode` (tokenization included): {encode:N1}/s | **{100 * ratio:0}%** of bare ONNX Runtime ({100 * prewarm.Wall / encode:0}% of bare `Encode`) |"));
        }

        report.PretrainedHeadline = FormattableString.Invariant($"prewarm all-minilm-l6-v2: {worst.Rate:N0} sentences/s; {100 * worst.Ratio:0}% of bare ONNX Runtime");

        // Training on the real model: the fill epoch encodes through the service (the namespace is dropped first, so
        // nothing is cached from the runs above); --no-cache runs the same encoder in the trainer every epoch.
        await client.DropNamespaceAsync(AllMiniLm, cancellationToken: token);
        var epochs = s.TrainEpochs.ToString(CultureInfo.InvariantCulture);
        var cachedDir = Path.Combine(root, "train-pretrained-cached");
        var localDir = Path.Combine(root, "train-pretrained-local");
        var cached = await RunTrainerAsync(trainerDll, cachedDir,
            ["train", "--dataset", "fortunes", "--encoder", AllMiniLm, "--epochs", epochs, "--service", service.Uri.ToString().TrimEnd('/')], token);
        var local = await RunTrainerAsync(trainerDll, localDir,
            ["train", "--dataset", "fortunes", "--encoder", AllMiniLm, "--epochs", epochs, "--no-cache", "--data-root", dataRoot], token);
        var cachedEpochs = EpochSeconds(cachedDir);
        var localEpochs = EpochSeconds(localDir);
        var perEpoch = string.Join(" / ", cachedEpochs.Zip(localEpochs, (c, l) => (l / c).ToString("0.0", CultureInfo.InvariantCulture) + "×"));
        report.Extra.Add(FormattableString.Invariant(
            $"| training, {s.TrainEpochs} epochs, all-minilm-l6-v2 (ONNX Runtime), fortunes {train.Length:N0} + {val.Length:N0} sentences: cached (service) | {cached.Wall:0.0} s wall; epochs {cached.Epochs} s | `--no-cache` (encode every epoch, in process): {local.Wall:0.0} s wall; epochs {local.Epochs} s | **{local.Wall / cached.Wall:0.0}×** wall, **{local.Steady / cached.Steady:0.0}×** per steady epoch; per epoch {perEpoch} |"));
    }

    /// <summary>The scenario alone (<c>hotpath pretrained</c>): prints its headline and rows.</summary>
    public static async Task<int> RunAloneAsync(string repo, string root, bool quick, CancellationToken token)
    {
        var s = Settings.For(quick);
        Directory.CreateDirectory(root);
        var report = new CompareReport();
        await RunAsync(report, ServiceDll(repo), TrainerDll(repo), repo, root, s, token);
        Console.WriteLine(report.PretrainedHeadline);
        foreach (var row in report.Extra)
            Console.WriteLine(row);
        return 0;
    }

    /// <summary>
    /// all-minilm-l6-v2 in this process, two ways: a bare <see cref="InferenceSession"/> built by the engine's own
    /// session factory (so the model file, threads, execution mode and graph optimisation are the service's), run on
    /// batches tokenized and padded beforehand exactly as the encoder pads them (to the longest item of the batch,
    /// WordPiece, at most 256 tokens); and the <see cref="IEncoder"/>, whose rate includes tokenization and pooling.
    /// </summary>
    private sealed class BareAllMiniLm : IDisposable
    {
        private readonly ResolvedEncoderOptions _options;
        private readonly ITextTokenizer _tokenizer;
        private readonly InferenceSession _session;
        private readonly IEncoder _encoder;
        private readonly string[] _inputs;
        private readonly string[] _outputs;
        private readonly RunOptions _run = new();

        public BareAllMiniLm(int maxBatch)
        {
            var options = EncoderRegistry.Defaults()[AllMiniLm].Clone();
            options.BatchSize = maxBatch;
            options.Load = "startup";
            _options = options.Resolve();
            _tokenizer = TextTokenizer.Create(AllMiniLm, _options);
            _session = new OnnxSessionFactory().Create(AllMiniLm, _options, _options.ModelPath!).Session;
            _encoder = EncoderRegistry.CreateEncoder(AllMiniLm, options);
            _inputs = new[] { "input_ids", "attention_mask", "token_type_ids" }.Where(_session.InputMetadata.ContainsKey).ToArray();
            _outputs = [_options.OutputName ?? _session.OutputMetadata.Keys.First()];
        }

        /// <summary>The sentences as batches of input tensors (ids, mask, zero token types), ready to run.</summary>
        public Batches Prepare(string[] sentences, int batch)
        {
            var tokenized = TokenizedText.Create(_tokenizer, new TextFeatureBatch(sentences), AllMiniLm, _options.MaxLength, _options.TruncateTooLong, _options.PadToMaxLength);
            var prepared = new Batches(sentences.Length);
            for (var start = 0; start < sentences.Length; start += batch)
            {
                var n = Math.Min(batch, sentences.Length - start);
                var length = tokenized.PaddedLength(start, n);
                var ids = new long[n * length];
                var mask = new long[n * length];
                tokenized.Fill(start, n, length, ids, mask);
                long[] shape = [n, length];
                var values = new List<OrtValue>();
                foreach (var input in _inputs)
                {
                    var data = input == "input_ids" ? ids : input == "attention_mask" ? mask : new long[n * length];
                    values.Add(OrtValue.CreateTensorValueFromMemory(data, shape));
                }

                prepared.Values.Add([.. values]);
            }

            return prepared;
        }

        /// <summary>Sentences/s of the bare session over prepared batches.</summary>
        public double RunSession(Batches batches)
        {
            var clock = Stopwatch.StartNew();
            foreach (var values in batches.Values)
            {
                using var results = _session.Run(_run, _inputs, values, _outputs);
            }

            return batches.Sentences / clock.Elapsed.TotalSeconds;
        }

        /// <summary>Sentences/s of <see cref="IEncoder.Encode"/> over the sentences in batches.</summary>
        public double Encode(string[] sentences, int batch, CancellationToken token)
        {
            var output = new float[batch * _encoder.Dim];
            var clock = Stopwatch.StartNew();
            for (var start = 0; start < sentences.Length; start += batch)
            {
                var chunk = sentences[start..Math.Min(start + batch, sentences.Length)];
                _encoder.Encode(new TextFeatureBatch(chunk), output.AsSpan(0, chunk.Length * _encoder.Dim), token);
            }

            return sentences.Length / clock.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            _encoder.Dispose();
            _session.Dispose();
            _run.Dispose();
        }

        public sealed class Batches(int sentences) : IDisposable
        {
            public int Sentences { get; } = sentences;

            public List<OrtValue[]> Values { get; } = [];

            public void Dispose()
            {
                foreach (var values in Values)
                {
                    foreach (var v in values)
                        v.Dispose();
                }
            }
        }
    }
}
