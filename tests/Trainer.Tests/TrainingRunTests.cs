using System.Text.Json;
using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

public sealed class TrainingRunTests
{
    private const int Dim = 32;

    private static InMemoryEmbeddingSource Synthetic()
    {
        var centres = InMemoryEmbeddingSource.Centres(classes: 6, informative: 4, seed: 1);
        return new InMemoryEmbeddingSource(Dim, new()
        {
            ["train"] = InMemoryEmbeddingSource.Clustered(600, Dim, 6, 4, noise: 1.5, seed: 2, centres),
            ["val"] = InMemoryEmbeddingSource.Clustered(240, Dim, 6, 4, noise: 1.5, seed: 3, centres),
        });
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
            Assert.True(doc.RootElement.GetProperty("speedups").TryGetProperty("cachedOverFill", out _));
            Assert.Equal("triplet", doc.RootElement.GetProperty("config").GetProperty("loss").GetString());
        }

        Assert.True(new FileInfo(result.PlotPath).Length > 100);
        var (head, _) = Heads.Load(result.HeadDirectory);
        using (head)
        using (var eval = await EvalSet.ReadAsync(source, "val", CancellationToken.None))
            Assert.Equal(last.PrecisionAt1, TrainingRun.Evaluate(head, eval, 5).PrecisionAt1, 10);
        Assert.Contains("epoch 8/8", output.ToString(), StringComparison.Ordinal);
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
    public void ChooseLoss_FollowsTheLabelsUnlessOverridden()
    {
        Assert.Equal(LossKind.Triplet, TrainingRun.ChooseLoss(null, hasPairs: false));
        Assert.Equal(LossKind.Contrastive, TrainingRun.ChooseLoss(null, hasPairs: true));
        Assert.Equal(LossKind.Contrastive, TrainingRun.ChooseLoss(LossKind.Contrastive, hasPairs: false));
        Assert.Throws<TrainerException>(() => TrainingRun.ChooseLoss(LossKind.Triplet, hasPairs: true));
    }
}
