using System.Text.RegularExpressions;
using EmbedCache.TestSupport;

namespace EmbedCache.CacheService.Tests;

/// <summary>The built <c>embedcache</c> admin CLI, run as a child process against the real service in this process.</summary>
public sealed class CliTests
{
    private const int TrainItems = 1438;

    private static Task<ProgramRun.Result> Cli(InProcessService service, params string[] args) =>
        ProgramRun.RunAsync("dotnet", [RepoPaths.BuiltAssembly(Path.Combine("CacheClient", "Cli"), "embedcache"), "--service", service.Endpoints.GrpcUri.ToString(), .. args],
            timeout: TimeSpan.FromMinutes(3));

    private static void Succeeded(ProgramRun.Result run) => Assert.True(run.ExitCode == 0, run.ToString());

    [Fact]
    public async Task Cli_Encoders_Prewarm_Jobs_Stats_Lookup_Stream_Checkpoint_Drop_WorkAgainstTheService()
    {
        await using var service = await InProcessService.StartAsync();

        var encoders = await Cli(service, "encoders");
        Succeeded(encoders);
        var mlpRow = Regex.Match(encoders.Output, @"^random-mlp\s+(?<fp>[0-9a-f]{32})\s+128\s+float32\s+cpu\s+floatvector", RegexOptions.Multiline);
        Assert.True(mlpRow.Success, encoders.Output);
        Assert.StartsWith("encoder", encoders.Output, StringComparison.Ordinal);

        var prewarm = await Cli(service, "prewarm", "digits", "--split", "train", "--encoder", "random-mlp", "--batch-size", "128", "--workers", "2");
        Succeeded(prewarm);
        // Redirected output: progress is plain lines (no bar, no escape codes), the last at 100%.
        Assert.Matches(@"(?m)^1438/1438 \(100%\) \d+/s ETA \S+, encoded 1438, cached 0, committed \d+$", prewarm.Output);
        Assert.DoesNotContain('\u001b', prewarm.Output);
        var done = Regex.Match(prewarm.Output, @"job (?<id>\S+) completed: 1438/1438 processed, 1438 encoded, 0 already cached, 1438 committed");
        Assert.True(done.Success, prewarm.Output);

        var jobs = await Cli(service, "jobs");
        Succeeded(jobs);
        Assert.Matches($@"(?m)^{done.Groups["id"].Value}\s+completed\s+digits\s+random-mlp\s+1438/1438\s+1438\s+0\s+1438", jobs.Output);

        var lookup = await Cli(service, "lookup", "digits", "train", "0", "7", "--encoder", "random-mlp", "--labels");
        Succeeded(lookup);
        Assert.Matches(@"(?m)^random-mlp\[0\] label \d+: -?\d\.\d{4} ", lookup.Output);
        Assert.Matches(@"(?m)^random-mlp\[7\] label \d+: -?\d\.\d{4} ", lookup.Output);

        var stream = await Cli(service, "stream", "digits", "train", "--encoder", "random-mlp", "--batch-size", "500", "--shuffle", "--seed", "3");
        Succeeded(stream);
        Assert.Equal(3, Regex.Count(stream.Output, @"(?m)^batch at \d+/1438: \d+ items"));
        Assert.Matches(@"(?m)^1438 items, ", stream.Output);

        var stats = await Cli(service, "stats");
        Succeeded(stats);
        // Two looked up, then the whole split streamed: every one a hit.
        Assert.True(Regex.IsMatch(stats.Output, $@"(?m)^random-mlp\s+{mlpRow.Groups["fp"].Value}\s+cpu\s+{TrainItems}\s+\S+ \S+\s+\S+ \S+\s+{TrainItems + 2}\s+0\s+100\.0%\s+{TrainItems}"), stats.Output);
        Assert.Matches(@"uptime \d+s; last checkpoint \d{4}-", stats.Output);

        var checkpoint = await Cli(service, "checkpoint");
        Succeeded(checkpoint);
        Assert.Matches(@"^checkpoint \d+ in \d+\.\d ms", checkpoint.Output);

        var drop = await Cli(service, "drop", "--encoder", "random-mlp");
        Succeeded(drop);
        Assert.Matches($@"^dropped {TrainItems} items, reclaimed ", drop.Output);
        var after = await Cli(service, "lookup", "digits", "train", "0", "--encoder", "random-mlp");
        Assert.Contains("random-mlp[0]: not cached", after.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_PrewarmDetached_ThenCancel_CancelsTheRunningJob()
    {
        // A dataset a hundred times digits' train split, filled one item per batch: still running when cancelled.
        using var data = new TempDirectory("cli-data");
        var big = Directory.CreateDirectory(data.Combine("big")).FullName;
        var digits = Path.Combine(RepoPaths.Root, "deploy", "datasets", "digits");
        File.Copy(Path.Combine(digits, "dataset.json"), Path.Combine(big, "dataset.json"));
        var lines = await File.ReadAllLinesAsync(Path.Combine(digits, "train.csv"));
        await File.WriteAllLinesAsync(Path.Combine(big, "train.csv"), [lines[0], .. Enumerable.Repeat(lines[1..], 100).SelectMany(x => x)]);
        File.Copy(Path.Combine(digits, "val.csv"), Path.Combine(big, "val.csv"));
        await using var service = await InProcessService.StartAsync(null, $"--EmbedCache:DataRoot={data.Path}", "--EmbedCache:Datasets:big=big");

        var started = await Cli(service, "prewarm", "big", "--split", "train", "--encoder", "random-mlp", "--batch-size", "1", "--workers", "1", "--detach");
        Succeeded(started);
        var id = Regex.Match(started.Output, @"^job (\S+) started").Groups[1].Value;
        Assert.NotEmpty(id);

        var cancel = await Cli(service, "cancel", id);
        Succeeded(cancel);
        Assert.Contains($"job {id}: cancel", cancel.Output, StringComparison.Ordinal);
        await Wait.UntilAsync(async () => Regex.IsMatch((await Cli(service, "jobs")).Output, $@"(?m)^{id}\s+cancelled\s+big\s"), "the job to be listed as cancelled");
        var unknown = await Cli(service, "cancel", "no-such-job");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("NotFound", unknown.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_BadUsage_ExitsTwoWithUsage_AndAnUnreachableServiceExitsOne()
    {
        var cli = RepoPaths.BuiltAssembly(Path.Combine("CacheClient", "Cli"), "embedcache");

        var unknownCommand = await ProgramRun.RunAsync("dotnet", [cli, "frobnicate"]);
        var unknownOption = await ProgramRun.RunAsync("dotnet", [cli, "stats", "--colour"]);
        var badNumber = await ProgramRun.RunAsync("dotnet", [cli, "prewarm", "digits", "--batch-size", "many"]);
        var help = await ProgramRun.RunAsync("dotnet", [cli, "prewarm", "--help"]);
        // Port 1 on loopback: nothing listens there.
        var unreachable = await ProgramRun.RunAsync("dotnet", [cli, "--service", "http://127.0.0.1:1", "stats"]);

        Assert.Equal(2, unknownCommand.ExitCode);
        Assert.Contains("'frobnicate'", unknownCommand.Error, StringComparison.Ordinal);
        Assert.Contains("Usage:", unknownCommand.Error, StringComparison.Ordinal);
        Assert.Contains("embedcache [command] [options]", unknownCommand.Error, StringComparison.Ordinal);
        Assert.Equal(2, unknownOption.ExitCode);
        Assert.Contains("'--colour'", unknownOption.Error, StringComparison.Ordinal);
        Assert.Equal(2, badNumber.ExitCode);
        Assert.Contains("'--batch-size'", badNumber.Error, StringComparison.Ordinal);
        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Contains("embedcache prewarm <dataset> [options]", help.Output, StringComparison.Ordinal);
        Assert.Contains("--detach", help.Output, StringComparison.Ordinal);
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("Unavailable", unreachable.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_OverTheUnixSocket_ListsTheEncoders_AndARelativeSocketPathIsBadUsage()
    {
        using var dir = new TempDirectory("cli-unix");
        var path = dir.Combine("embedcache.sock");
        await using var service = await InProcessService.StartAsync(null, $"--EmbedCache:UnixSocketPath={path}");
        var cli = RepoPaths.BuiltAssembly(Path.Combine("CacheClient", "Cli"), "embedcache");

        var encoders = await ProgramRun.RunAsync("dotnet", [cli, "--service", $"unix://{path}", "encoders"], timeout: TimeSpan.FromMinutes(3));
        var relative = await ProgramRun.RunAsync("dotnet", [cli, "--service", "unix:embedcache.sock", "encoders"]);

        Succeeded(encoders);
        Assert.Matches(@"(?m)^random-mlp\s+[0-9a-f]{32}\s+128\s+float32\s+cpu\s+floatvector", encoders.Output);
        Assert.Equal(2, relative.ExitCode);
        Assert.Contains("--service must be an http:// or https:// URL or unix:///path/to.sock (was 'unix:embedcache.sock')", relative.Error, StringComparison.Ordinal);
    }
}
