using System.Runtime.InteropServices;
using System.Diagnostics;
using TorchSharp;
using static EmbedCache.Trainer.ConsoleProgress;
using static TorchSharp.torch;

namespace EmbedCache.Trainer;

/// <summary>What a finished run leaves behind.</summary>
public sealed record TrainingResult(RunMetrics Metrics, string OutDirectory, string MetricsPath, string PlotPath, string HeadDirectory);

/// <summary>
/// One training run: fill, read the validation split once, then per epoch stream the train split,
/// step the head with Adam, evaluate, report; finally write metrics, plot and head.
/// </summary>
public sealed class TrainingRun
{
    private readonly TrainOptions _options;
    private readonly IEmbeddingSource _source;
    private readonly ConsoleProgress _progress;

    public TrainingRun(TrainOptions options, IEmbeddingSource source, ConsoleProgress progress)
    {
        _options = options;
        _source = source;
        _progress = progress;
    }

    public async Task<TrainingResult> RunAsync(CancellationToken cancellationToken)
    {
        var o = _options;
        var fillClock = Stopwatch.StartNew();
        var ready = await _progress.PhaseAsync("fill", bar =>
            _source.PrepareAsync([o.TrainSplit, o.ValSplit], new FillReport(bar), cancellationToken));
        var fillSeconds = fillClock.Elapsed.TotalSeconds;
        var note = (_source as CachedEmbeddingSource)?.FillNote;
        _progress.Line($"{_source.Kind}: {o.Dataset}/{o.Encoder} dim {ready.Dim}; ready in {Format(fillSeconds, "0.00")}s " +
                       $"(encoded {ready.Encoded}, already cached {ready.AlreadyCached}){(note is null ? "" : $"; {note}")}");

        var comparison = ReadComparison(o.Compare, _source.Kind, o.Dataset, o.Encoder, ready.Fingerprint);
        using var eval = await EvalSet.ReadAsync(_source, o.ValSplit, cancellationToken);
        var loss = ChooseLoss(o.Loss, eval.HasPairs);
        var spec = HeadSpec.For(o.Head, ready.Dim, o.HiddenDim, o.OutputDim);
        using var head = Heads.Create(spec, unchecked((long)o.Seed));
        var baseline = RetrievalMetrics.Evaluate(eval.Rows, eval.Relevance, o.K);
        var untrained = Evaluate(head, eval, o.K);
        _progress.Line($"validation: {eval.Count} items; raw embeddings p@1 {Format(baseline.PrecisionAt1)} R@{baseline.K} {Format(baseline.RecallAtK)}; " +
                       $"untrained {spec.Kind} head p@1 {Format(untrained.PrecisionAt1)}; loss {loss}");

        var metrics = new RunMetrics
        {
            Dataset = o.Dataset,
            Encoder = o.Encoder,
            Source = _source.Kind,
            Fingerprint = ready.Fingerprint,
            Config = new RunConfig(spec.Kind, loss, o.Epochs, o.BatchSize, o.LearningRate, o.Margin, o.Seed, o.K,
                spec.InputDim, spec.HiddenDim, spec.OutputDim, o.NoCache ? null : o.Service.ToString()),
            Fill = new FillMetrics(fillSeconds, ready.Encoded, ready.AlreadyCached, note),
            EvalItems = eval.Count,
            Baseline = ScoreMetrics.From(baseline),
            UntrainedHead = ScoreMetrics.From(untrained),
        };

        using var trainer = new HeadTrainer(head, loss, o.LearningRate, o.Margin);
        for (var epoch = 1; epoch <= o.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            var pass = await _progress.PhaseAsync($"epoch {epoch}/{o.Epochs}", bar => TrainEpochAsync(trainer, epoch, bar, cancellationToken));
            var seconds = clock.Elapsed.TotalSeconds;
            // A cached epoch is a fill only when something was encoded for it: the prewarm before the
            // first epoch (whose time that epoch then carries), or misses the stream filled. On a warm
            // cache no epoch is a fill, so no epoch's JIT warm-up passes for the cost of encoding.
            var prewarmFilled = epoch == 1 && ready.Encoded > 0;
            var isFill = _source.Kind == "cached" && (prewarmFilled || pass.Misses > 0);
            if (isFill && prewarmFilled)
                seconds += fillSeconds;

            var evalClock = Stopwatch.StartNew();
            var scores = Evaluate(head, eval, o.K);
            var evalSeconds = evalClock.Elapsed.TotalSeconds;
            var hitRate = pass.Hits + pass.Misses == 0 ? 0 : (double)pass.Hits / (pass.Hits + pass.Misses);
            if (isFill && prewarmFilled)
                hitRate = (double)ready.AlreadyCached / (ready.Encoded + ready.AlreadyCached);
            metrics.Epochs.Add(new EpochMetrics(epoch, isFill, pass.Loss, scores.PrecisionAt1, scores.RecallAtK, seconds, evalSeconds, hitRate, pass.Items, pass.Batches, pass.DataDigest));
            _progress.Line($"epoch {epoch}/{o.Epochs}{(isFill ? " (fill)" : "")}  loss {Format(pass.Loss)}  p@1 {Format(scores.PrecisionAt1)}  " +
                           $"R@{scores.K} {Format(scores.RecallAtK)}  {Format(seconds, "0.000")}s  hit rate {Format(hitRate * 100, "0.0")}%");
        }

        metrics.Speedups = Speedups(metrics, comparison, o.Compare);
        return WriteOutputs(metrics, head, spec);
    }

    private async Task<EpochPass> TrainEpochAsync(HeadTrainer trainer, int epoch, IPhaseProgress bar, CancellationToken cancellationToken)
    {
        var o = _options;
        double lossSum = 0;
        long lossItems = 0, items = 0, hits = 0, misses = 0;
        var batches = 0;
        // A digest of exactly what this epoch received (order, labels, embedding bits), so runs
        // that share a cache can show they were served identical data.
        var digest = new System.IO.Hashing.XxHash64();
        await foreach (var batch in _source.ReadAsync(new ReadRequest(o.TrainSplit, epoch, o.BatchSize, Shuffle: true, o.Seed), cancellationToken))
        {
            using (batch)
            {
                digest.Append(MemoryMarshal.AsBytes(batch.Indices.AsSpan()));
                if (batch.Groups is not null)
                    digest.Append(MemoryMarshal.AsBytes(batch.Groups.AsSpan()));
                if (batch.Pairs is { } pairs)
                {
                    digest.Append(MemoryMarshal.AsBytes(pairs.A.AsSpan()));
                    digest.Append(MemoryMarshal.AsBytes(pairs.B.AsSpan()));
                    digest.Append(MemoryMarshal.AsBytes(pairs.Scores.AsSpan()));
                }

                digest.Append(MemoryMarshal.AsBytes(batch.RowSpan));
                var batchLoss = trainer.Step(batch);
                if (!double.IsNaN(batchLoss))
                {
                    lossSum += batchLoss * batch.Count;
                    lossItems += batch.Count;
                }

                items += batch.Count;
                hits += batch.Hits;
                misses += batch.Misses;
                batches++;
                bar.Report(batch.Offset + batch.Units, batch.Total, $"loss {Format(lossItems == 0 ? 0 : lossSum / lossItems)}");
            }
        }

        if (batches == 0)
            throw new TrainerException($"split '{o.TrainSplit}' yielded no batches");
        return new EpochPass(lossItems == 0 ? double.NaN : lossSum / lossItems, items, batches, hits, misses,
            Convert.ToHexStringLower(digest.GetCurrentHash()));
    }

    /// <summary>Retrieval scores of the head's embeddings of the evaluation set.</summary>
    public static RetrievalScores Evaluate(nn.Module<Tensor, Tensor> head, EvalSet eval, int k)
    {
        var training = head.training;
        head.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return RetrievalMetrics.Evaluate(head.forward(eval.Rows), eval.Relevance, k);
        }
        finally
        {
            head.train(training);
        }
    }

    public static LossKind ChooseLoss(LossKind? requested, bool hasPairs) => (requested, hasPairs) switch
    {
        (LossKind.Triplet, true) => throw new TrainerException("--loss triplet needs group labels; this dataset has pairs (use contrastive)"),
        ({ } r, _) => r,
        (null, true) => LossKind.Contrastive,
        (null, false) => LossKind.Triplet,
    };

    /// <summary>The --compare run, checked before any training: the other kind of run, same dataset and encoder fingerprint.</summary>
    private static RunMetrics? ReadComparison(string? comparePath, string source, string dataset, string encoder, string fingerprint)
    {
        if (comparePath is null)
            return null;
        RunMetrics other;
        try
        {
            other = RunMetrics.Read(comparePath);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new TrainerException($"--compare {comparePath} is not a trainer metrics.json: {e.Message}");
        }

        if (other.Source == source || other.Source is not ("cached" or "local"))
            throw new TrainerException($"--compare needs the metrics of the other kind of run ({comparePath} is {other.Source}, this run is {source})");
        if (other.Fingerprint != fingerprint || other.Dataset != dataset)
            throw new TrainerException($"--compare {comparePath} is {other.Dataset}/{other.Encoder} fingerprint {other.Fingerprint}; this run is {dataset}/{encoder} fingerprint {fingerprint}");
        return other;
    }

    /// <summary>
    /// The speedup of the cache, stated only against a real uncached measurement: the epochs of the
    /// --compare run. A run's own first epoch is no such measurement (it also pays for JIT warm-up).
    /// </summary>
    private static SpeedupMetrics Speedups(RunMetrics metrics, RunMetrics? other, string? comparePath)
    {
        if (other is null)
            return new SpeedupMetrics();

        var (cached, local) = metrics.Source == "cached" ? (metrics, other) : (other, metrics);
        var cachedSteady = cached.SteadyEpochSeconds();
        var localSteady = local.SteadyEpochSeconds();
        return new SpeedupMetrics
        {
            CachedOverNoCache = cachedSteady is > 0 && localSteady is not null ? localSteady / cachedSteady : null,
            ComparedWith = Path.GetFullPath(comparePath!),
        };
    }

    private TrainingResult WriteOutputs(RunMetrics metrics, nn.Module<Tensor, Tensor> head, HeadSpec spec)
    {
        var dir = Path.GetFullPath(_options.OutDirectory);
        Directory.CreateDirectory(dir);
        var metricsPath = Path.Combine(dir, RunMetrics.FileName);
        metrics.Write(metricsPath);
        var plotPath = Path.Combine(dir, "training.png");
        TrainingPlot.Write(plotPath, metrics);
        if (!TrainingPlot.HasFonts)
            _progress.Line("note: this machine has no fonts, so training.png has lines but no text (install fonts-dejavu-core)");
        Heads.Save(head, spec, dir);

        var s = metrics.Speedups;
        _progress.Line((s.CachedOverNoCache, s.ComparedWith) switch
        {
            ({ } n, _) => $"speedup: cached epochs are {Format(n, "0.0")}x faster than --no-cache epochs ({s.ComparedWith})",
            (null, null) => "speedup: none available (measure one: a --no-cache run, then --compare its metrics.json)",
            (null, { } with) => $"speedup: none available (no cached epoch read a warm cache to compare with {with})",
        });
        var last = metrics.Epochs[^1];
        _progress.Line($"precision@1: {Format(metrics.Baseline.PrecisionAt1)} raw -> {Format(last.PrecisionAt1)} trained; " +
                       $"wrote {metricsPath}, {plotPath}, {Path.Combine(dir, Heads.WeightsFile)}");
        return new TrainingResult(metrics, dir, metricsPath, plotPath, dir);
    }

    /// <summary>Fill progress straight onto the bar (synchronously: no report lands after the phase ended).</summary>
    private sealed class FillReport(IPhaseProgress bar) : IProgress<FillProgress>
    {
        public void Report(FillProgress value) => bar.Report(value.Processed, value.Total, "");
    }

    private readonly record struct EpochPass(double Loss, long Items, int Batches, long Hits, long Misses, string DataDigest);
}

/// <summary>The optimisation step: forward a batch through the head, the loss, Adam.</summary>
public sealed class HeadTrainer : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _head;
    private readonly LossKind _loss;
    private readonly double _margin;
    private readonly optim.Optimizer _optimizer;

    public HeadTrainer(nn.Module<Tensor, Tensor> head, LossKind loss, double learningRate, double margin)
    {
        _head = head;
        _loss = loss;
        _margin = margin;
        _optimizer = optim.Adam(head.parameters(), learningRate);
        head.train();
    }

    /// <summary>One step on one batch; the batch's loss, or NaN when the batch offers nothing to learn from.</summary>
    public double Step(EmbeddingBatch batch)
    {
        using var scope = NewDisposeScope();
        var output = _head.forward(batch.Rows);
        var loss = _loss switch
        {
            LossKind.Triplet => SimilarityLosses.BatchHardTriplet(output,
                tensor(batch.Groups ?? throw new TrainerException("triplet loss needs group labels; the batch has none")), _margin),
            LossKind.Contrastive => Contrastive(output, batch),
            _ => throw new ArgumentOutOfRangeException(nameof(batch), _loss, "unknown loss"),
        };
        if (loss is null)
            return double.NaN;
        _optimizer.zero_grad();
        loss.backward();
        _optimizer.step();
        return loss.item<float>();
    }

    private Tensor? Contrastive(Tensor output, EmbeddingBatch batch)
    {
        if (batch.Pairs is { } p)
            return SimilarityLosses.Contrastive(output, tensor(p.A), tensor(p.B), tensor(p.Scores), _margin);

        // A group batch trained contrastively: every pair in the batch, similar when the groups match.
        var groups = batch.Groups ?? throw new TrainerException("contrastive loss needs pairs or group labels; the batch has neither");
        var n = batch.Count;
        if (n < 2)
            return null;
        var count = n * (n - 1) / 2;
        var a = new long[count];
        var b = new long[count];
        var scores = new float[count];
        var k = 0;
        for (var i = 0; i < n; i++)
        {
            for (var j = i + 1; j < n; j++, k++)
                (a[k], b[k], scores[k]) = (i, j, groups[i] == groups[j] ? 1f : 0f);
        }

        return SimilarityLosses.Contrastive(output, tensor(a), tensor(b), tensor(scores), _margin);
    }

    public void Dispose() => _optimizer.Dispose();
}
