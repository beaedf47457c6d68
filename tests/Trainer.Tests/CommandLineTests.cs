using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

public sealed class CommandLineTests
{
    private static TrainOptions Parse(params string[] args) => CommandLine.ParseTrain(args, _ => null);

    [Fact]
    public void ParseTrain_OnlyRequired_GivesTheDocumentedDefaults()
    {
        var o = Parse("--dataset", "digits", "--encoder", "random-mlp");

        Assert.Equal(("digits", "random-mlp"), (o.Dataset, o.Encoder));
        Assert.Equal(new Uri("http://127.0.0.1:50051"), o.Service);
        Assert.Equal((10, 64, HeadKind.Mlp, (LossKind?)null), (o.Epochs, o.BatchSize, o.Head, o.Loss));
        Assert.False(o.NoCache);
        Assert.Null(o.DataRoot);
        Assert.Equal((1e-3, 0.5, 42UL, 5), (o.LearningRate, o.Margin, o.Seed, o.K));
        Assert.Equal(Path.Combine("trainer-out", "digits-random-mlp"), o.OutDirectory);
    }

    [Fact]
    public void ParseTrain_EveryOption_IsRead()
    {
        var o = Parse("--dataset=digits", "--encoder", "random-convnet", "--service", "http://h:1", "--epochs", "3", "--batch-size", "64",
            "--head", "skip", "--loss", "contrastive", "--lr", "0.01", "--seed", "9", "--k", "10", "--margin", "0.3", "--out", "/tmp/x");

        Assert.Equal(new Uri("http://h:1"), o.Service);
        Assert.Equal((3, 64, HeadKind.Skip, (LossKind?)LossKind.Contrastive), (o.Epochs, o.BatchSize, o.Head, o.Loss));
        Assert.Equal((0.01, 0.3, 9UL, 10, "/tmp/x"), (o.LearningRate, o.Margin, o.Seed, o.K, o.OutDirectory));
    }

    [Fact]
    public void ParseTrain_NoCache_TakesADataRootOrFindsTheRepositorysDatasets()
    {
        var given = Parse("--dataset", "d", "--encoder", "e", "--no-cache", "--data-root", "/data");
        var found = Parse("--dataset", "d", "--encoder", "e", "--no-cache");

        Assert.True(given.NoCache);
        Assert.Equal("/data", given.DataRoot);
        Assert.Equal(Path.Combine("trainer-out", "d-e-nocache"), given.OutDirectory);
        Assert.Equal(CommandLine.DefaultDataRoot(Directory.GetCurrentDirectory()), found.DataRoot);
        Assert.Equal(Path.Combine(RepoPaths.Root, "deploy", "datasets"), CommandLine.DefaultDataRoot(Path.Combine(RepoPaths.Root, "src", "Trainer")));
    }

    [Fact]
    public void ParseTrain_DataRootWithoutNoCache_IsAUsageError()
    {
        Assert.Throws<UsageException>(() => Parse("--dataset", "d", "--encoder", "e", "--data-root", "/data"));
    }

    [Fact]
    public void ParseTrain_ServiceFromEnvironment_WhenNotGiven()
    {
        var o = CommandLine.ParseTrain(["--dataset", "d", "--encoder", "e"], name => name == "EMBEDCACHE_SERVICE" ? "http://svc:9" : null);

        Assert.Equal(new Uri("http://svc:9"), o.Service);
    }

    [Theory]
    [InlineData("unknown option --epoch", "--dataset", "d", "--encoder", "e", "--epoch", "3")]
    [InlineData("--epochs must be an integer", "--dataset", "d", "--encoder", "e", "--epochs", "three")]
    [InlineData("--epochs must be an integer", "--dataset", "d", "--encoder", "e", "--epochs", "0")]
    [InlineData("--head must be mlp or skip", "--dataset", "d", "--encoder", "e", "--head", "cnn")]
    [InlineData("--loss must be triplet or contrastive", "--dataset", "d", "--encoder", "e", "--loss", "arcface")]
    [InlineData("--dataset is required", "--encoder", "e")]
    [InlineData("--lr needs a value", "--dataset", "d", "--encoder", "e", "--lr")]
    [InlineData("unexpected argument 'extra'", "--dataset", "d", "--encoder", "e", "extra")]
    [InlineData("--seed given twice", "--dataset", "d", "--encoder", "e", "--seed", "1", "--seed", "2")]
    [InlineData("--service must be an http", "--dataset", "d", "--encoder", "e", "--service", "localhost")]
    public void ParseTrain_BadInput_IsAUsageErrorNamingIt(string message, params string[] args)
    {
        var e = Assert.Throws<UsageException>(() => Parse(args));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }
}
