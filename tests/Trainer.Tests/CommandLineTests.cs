using EmbedCache.CacheClient;
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
    [InlineData("--epoch", "--dataset", "d", "--encoder", "e", "--epoch", "3")]
    [InlineData("--epochs must be an integer ≥ 1 (was 'three')", "--dataset", "d", "--encoder", "e", "--epochs", "three")]
    [InlineData("--epochs must be an integer ≥ 1 (was '0')", "--dataset", "d", "--encoder", "e", "--epochs", "0")]
    [InlineData("--head must be mlp or skip (was 'cnn')", "--dataset", "d", "--encoder", "e", "--head", "cnn")]
    [InlineData("--loss must be triplet or contrastive (was 'arcface')", "--dataset", "d", "--encoder", "e", "--loss", "arcface")]
    [InlineData("--lr must be a number", "--dataset", "d", "--encoder", "e", "--lr", "-1")]
    [InlineData("--seed must be a non-negative integer", "--dataset", "d", "--encoder", "e", "--seed", "-3")]
    [InlineData("'--dataset'", "--encoder", "e")]
    [InlineData("'--lr'", "--dataset", "d", "--encoder", "e", "--lr")]
    [InlineData("'extra'", "--dataset", "d", "--encoder", "e", "extra")]
    [InlineData("'--seed'", "--dataset", "d", "--encoder", "e", "--seed", "1", "--seed", "2")]
    [InlineData("--service must be an http", "--dataset", "d", "--encoder", "e", "--service", "localhost")]
    [InlineData("--compare file '/no/such/metrics.json' does not exist", "--dataset", "d", "--encoder", "e", "--compare", "/no/such/metrics.json")]
    public void ParseTrain_BadInput_IsAUsageErrorNamingIt(string named, params string[] args)
    {
        var e = Assert.Throws<UsageException>(() => Parse(args));

        Assert.Contains(named, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ParseTrain_BadServiceInTheEnvironment_IsAUsageErrorNamingIt()
    {
        var e = Assert.Throws<UsageException>(() => CommandLine.ParseTrain(["--dataset", "d", "--encoder", "e"], name => name == "EMBEDCACHE_SERVICE" ? "svc:9" : null));

        Assert.Contains("--service must be an http:// or https:// URL or unix:///path/to.sock (was 'svc:9')", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("unix:///run/embedcache.sock")]
    [InlineData("unix:/run/embedcache.sock")]
    public void ParseTrain_AUnixSocketService_IsTakenAsTheClientsAddress(string service)
    {
        var options = Parse("--dataset", "d", "--encoder", "e", "--service", service);

        Assert.Equal("/run/embedcache.sock", new EmbedCacheClientOptions { Address = options.Service }.UnixSocketPath);
    }

    private static async Task<(int Exit, string Output, string Error, List<TrainOptions> Trained)> Run(params string[] args)
    {
        var trained = new List<TrainOptions>();
        var root = CommandLine.Create(_ => null,
            (o, _) =>
            {
                trained.Add(o);
                return Task.FromResult(0);
            },
            (_, _, _) => Task.FromResult(0));
        var (output, error) = (new StringWriter(), new StringWriter());
        var exit = await CommandLine.InvokeAsync(root, args, output, error);
        return (exit, output.ToString(), error.ToString(), trained);
    }

    [Fact]
    public async Task Invoke_Train_RunsTheTrainActionWithTheParsedOptions()
    {
        var (exit, _, error, trained) = await Run("train", "--dataset", "digits", "--encoder", "random-mlp", "--epochs", "2");

        Assert.Equal(0, exit);
        Assert.Equal("", error);
        Assert.Equal(2, Assert.Single(trained).Epochs);
    }

    [Theory]
    [InlineData("--epochs", "train", "--dataset", "d", "--encoder", "e", "--epochs", "x")]
    [InlineData("--colour", "train", "--dataset", "d", "--encoder", "e", "--colour")]
    [InlineData("frobnicate", "frobnicate")]
    [InlineData("--service", "check", "--service", "ftp://h")]
    public async Task Invoke_BadUsage_ExitsTwo_NamingTheBadOption_WithHelpOnStderr(string named, params string[] args)
    {
        var (exit, output, error, trained) = await Run(args);

        Assert.Equal(2, exit);
        Assert.Empty(trained);
        Assert.Equal("", output);
        Assert.Contains(named, error, StringComparison.Ordinal);
        Assert.Contains("Usage:", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invoke_Help_ListsTheCommands_AndTrainHelpListsEveryOptionWithItsDefault()
    {
        var root = await Run("--help");
        var train = await Run("train", "--help");
        var none = await Run();

        Assert.Equal((0, 0, 0), (root.Exit, train.Exit, none.Exit));
        Assert.Contains("train", root.Output, StringComparison.Ordinal);
        Assert.Contains("check", root.Output, StringComparison.Ordinal);
        Assert.Equal(root.Output, none.Output);
        foreach (var option in (string[])["--dataset", "--encoder", "--service", "--api-key", "--epochs", "--batch-size", "--head", "--hidden", "--out-dim",
                     "--loss", "--margin", "--lr", "--seed", "--k", "--train-split", "--val-split", "--out", "--no-cache", "--data-root", "--compare"])
            Assert.Contains(option, train.Output, StringComparison.Ordinal);
        Assert.Matches(@"--epochs <n>\s+epochs \[default: 10\]", train.Output);
        Assert.Contains("--head <mlp|skip>", train.Output, StringComparison.Ordinal);
        Assert.Contains("[default: http://127.0.0.1:50051/]", train.Output, StringComparison.Ordinal);
        Assert.Empty(train.Trained);
    }

    [Fact]
    public async Task Invoke_SuggestDirective_CompletesTheWordsAnOptionTakes()
    {
        var head = await Run("[suggest:19]", "train --head ");

        Assert.Equal(0, head.Exit);
        Assert.Equal(["mlp", "skip"], head.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
