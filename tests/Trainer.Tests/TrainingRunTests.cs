using System.Text.Json;
using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

public sealed class TrainingRunTests
{
    private const int Dim = 32;

    private static InMemoryEmbeddingSource Synthetic(string kind = "cached", string fingerprint = "in-memory", bool warm = false)
    {
        var centres = InMemoryEmbeddingSource.Centres(classes: 6, informative: 4, seed: 1);
        return new InMemoryEmbeddingSource(Dim, new()
        {
            ["train"] = InMemoryEmbeddingSource.Clustered(600, Dim, 6, 4, noise: 1.5, seed: 2, centres),
            ["val"] = InMemoryEmbeddingSource.Clustered(240, Dim, 6, 4, noise: 1.5, seed: 3, centres),
        }, kind, fingerprint, warm);
    }

    [Fact]
    public async Task ShortRun_OnClusteredEmbeddings_ImprovesPrecisionAt1OverTheUntrainedHead()
    {
        using var dir = new TempDirectory("run");
        var options = new TrainOptions { Dataset = "synthetic", Encoder = "mem", Epochs = 8, BatchSize = 96, LearningRate = 3e-3, Seed = 5, Out = dir.Path };
        var output = new StringWriter();
        await using var source = Synthetic();

        var result = await new TrainingRun(options, source, new ConsoleProgress(output, redraw: false)).RunAsync(CancellationToken.None);

        var m = result.Metrics;
        var last = m.Epochs[^1];
        Assert.Equal(8, m.Epochs.Count);
        Assert.Equal(LossKind.Triplet, m.Config.Loss);
        Assert.True(last.PrecisionAt1 > m.UntrainedHead.PrecisionAt1 + 0.2,
            $"p@1 untrained {m.UntrainedHead.PrecisionAt1:0.000}, trained {last.PrecisionAt1:0.000}\n{output}");
        Assert.True(last.PrecisionAt1 > m.Baseline.PrecisionAt1 + 0.2, $"raw {m.Baseline.PrecisionAt1:0.000}, trained {last.PrecisionAt1:0.000}");
        Assert.True(last.Loss < m.Epochs[0].Loss, $"loss {m.Epochs[0].Loss} → {last.Loss}");
        Assert.True(m.Epochs[0].Fill);
        Assert.All(m.Epochs.Skip(1), e => Assert.False(e.Fill));
        Assert.All(m.Epochs, e => Assert.Equal(600, e.Items));
        Assert.Equal(1.0, m.Epochs[1].HitRate);
        Assert.Equal(1, source.Prepared);

        // Outputs: the metrics parse back, the head loads and reproduces the last evaluation.
        var written = RunMetrics.Read(result.MetricsPath);
        Assert.Equal(last.PrecisionAt1, written.Epochs[^1].PrecisionAt1);
        using (var doc = JsonDocument.Parse(File.ReadAllText(result.MetricsPath)))
        {
            // No --compare: no speedup is claimed.
            Assert.False(doc.RootElement.GetProperty("speedups").TryGetProperty("cachedOverNoCache", out _));
            Assert.Equal("triplet", doc.RootElement.GetProperty("config").GetProperty("loss").GetString());
        }

        Assert.True(new FileInfo(result.PlotPath).Length > 100);
        var (head, _) = Heads.Load(result.HeadDirectory);
        using (head)
        using (var eval = await EvalSet.ReadAsync(source, "val", CancellationToken.None))
            Assert.Equal(last.PrecisionAt1, TrainingRun.Evaluate(head, eval, 5).PrecisionAt1, 10);
        Assert.Contains("epoch 8/8", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("epoch 1/8 (fill)", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("speedup: none available", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WarmCache_NoEpochIsAFill_AndNoSpeedupIsClaimedWithoutACompareRun()
    {
        using var dir = new TempDirectory("warm");
        var options = new TrainOptions { Dataset = "synthetic", Encoder = "mem", Epochs = 3, BatchSize = 100, Out = dir.Path };
        var output = new StringWriter();
        await using var source = Synthetic(warm: true);

        var m = (await new TrainingRun(options, source, new ConsoleProgress(output, redraw: false)).RunAsync(CancellationToken.None)).Metrics;

        Assert.All(m.Epochs, e => Assert.False(e.Fill));
        Assert.All(m.Epochs, e => Assert.Equal(1.0, e.HitRate));
        Assert.Equal(m.Epochs.Average(e => e.Seconds), m.SteadyEpochSeconds());
        Assert.Null(m.Speedups.CachedOverNoCache);
        Assert.DoesNotContain("(fill)", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("epoch 1/3  loss", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("speedup: none available", output.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("faster", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ContrastiveOnGroups_SkipHead_TrainsAndWritesOutputs()
    {
        using var dir = new TempDirectory("run");
        var options = new TrainOptions
        {
            Dataset = "synthetic", Encoder = "mem", Epochs = 5, BatchSize = 64, Head = HeadKind.Skip, Loss = LossKind.Contrastive,
            LearningRate = 5e-2, Out = dir.Path,
        };
        await using var source = Synthetic();

        var output = new StringWriter();
        var result = await new TrainingRun(options, source, new ConsoleProgress(output, redraw: false)).RunAsync(CancellationToken.None);

        Assert.Equal(LossKind.Contrastive, result.Metrics.Config.Loss);
        Assert.Equal(Dim, result.Metrics.Config.OutputDim);
        Assert.True(result.Metrics.Epochs[^1].PrecisionAt1 > result.Metrics.UntrainedHead.PrecisionAt1,
            $"{result.Metrics.UntrainedHead.PrecisionAt1} → {result.Metrics.Epochs[^1].PrecisionAt1}\n{output}");
        Assert.True(File.Exists(Path.Combine(dir.Path, Heads.WeightsFile)));
    }

    [Fact]
    public async Task Compare_WithALocalRunOfTheSameEncoder_RecordsTheRatioOfSteadyEpochTimes()
    {
        using var dir = new TempDirectory("compare");
        TrainOptions Options(string sub, string? compare = null) =>
            new() { Dataset = "synthetic", Encoder = "mem", Epochs = 3, BatchSize = 100, Out = dir.Combine(sub), Compare = compare };
        RunMetrics local;
        await using (var source = Synthetic("local"))
            local = (await new TrainingRun(Options("local"), source, new ConsoleProgress(TextWriter.Null, false)).RunAsync(CancellationToken.None)).Metrics;
        var localMetrics = dir.Combine("local", RunMetrics.FileName);

        await using var cachedSource = Synthetic("cached");
        var output = new StringWriter();
        var cached = (await new TrainingRun(Options("cached", localMetrics), cachedSource, new ConsoleProgress(output, false)).RunAsync(CancellationToken.None)).Metrics;

        // A local run has no fill epoch: all its epochs are steady.
        Assert.All(local.Epochs, e => Assert.False(e.Fill));
        Assert.Equal(local.Epochs.Average(e => e.Seconds), local.SteadyEpochSeconds());
        var expected = local.SteadyEpochSeconds() / cached.Epochs.Skip(1).Average(e => e.Seconds);
        Assert.Equal(expected!.Value, cached.Speedups.CachedOverNoCache!.Value, 9);
        Assert.Equal(Path.GetFullPath(localMetrics), cached.Speedups.ComparedWith);
        Assert.Contains("faster than --no-cache epochs", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(cached.Speedups.CachedOverNoCache, RunMetrics.Read(dir.Combine("cached", RunMetrics.FileName)).Speedups.CachedOverNoCache);
    }

    [Fact]
    public async Task Compare_WithAnotherEncodersRun_IsRefused()
    {
        using var dir = new TempDirectory("compare");
        await using (var source = Synthetic("local", fingerprint: "other-weights"))
        {
            await new TrainingRun(new TrainOptions { Dataset = "synthetic", Encoder = "mem", Epochs = 1, Out = dir.Combine("local") },
                source, new ConsoleProgress(TextWriter.Null, false)).RunAsync(CancellationToken.None);
        }

        await using var cachedSource = Synthetic("cached");
        var options = new TrainOptions { Dataset = "synthetic", Encoder = "mem", Epochs = 1, Out = dir.Combine("cached"), Compare = dir.Combine("local", RunMetrics.FileName) };

        var e = await Assert.ThrowsAsync<TrainerException>(() => new TrainingRun(options, cachedSource, new ConsoleProgress(TextWriter.Null, false)).RunAsync(CancellationToken.None));

        Assert.Contains("other-weights", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChooseLoss_FollowsTheLabelsUnlessOverridden()
    {
        Assert.Equal(LossKind.Triplet, TrainingRun.ChooseLoss(null, hasPairs: false));
        Assert.Equal(LossKind.Contrastive, TrainingRun.ChooseLoss(null, hasPairs: true));
        Assert.Equal(LossKind.Contrastive, TrainingRun.ChooseLoss(LossKind.Contrastive, hasPairs: false));
        Assert.Throws<TrainerException>(() => TrainingRun.ChooseLoss(LossKind.Triplet, hasPairs: true));
    }
}
