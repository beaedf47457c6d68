using System.Text.RegularExpressions;
using EmbedCache.Engine.Encoders;
using EmbedCache.TestSupport;

namespace EmbedCache.Engine.Tests.Encoders;

/// <summary>Properties that need processes of their own (tests/EncoderProbe run as a child).</summary>
public sealed partial class ProcessLevelEncoderTests
{
    private static readonly string Probe = RepoPaths.BuiltTestProgram("EncoderProbe", "EmbedCache.EncoderProbe");

    [Fact]
    public async Task DefaultEncoders_InTwoSeparateProcesses_GiveBitIdenticalEmbeddingsAndFingerprints()
    {
        using var first = ChildProcess.Start(Probe, ["determinism"]);
        using var second = ChildProcess.Start(Probe, ["determinism"]);

        Assert.Equal(0, await first.WaitForExitAsync("the first determinism probe"));
        Assert.Equal(0, await second.WaitForExitAsync("the second determinism probe"));

        var a = Lines(first.Output);
        var b = Lines(second.Output);
        Assert.Equal(["all-minilm-l6-v2", "random-convnet", "random-minilm", "random-mlp", "resnet18"], a.Select(l => l.Groups["name"].Value));
        Assert.Equal(a.Select(l => l.Value), b.Select(l => l.Value));

        // The fingerprints are also the ones this process computes, and the golden values every machine computes.
        using var registry = EncoderRegistry.Create(EncoderRegistry.Defaults());
        Assert.Equal(registry.All.Select(e => e.Fingerprint.ToString()), a.Select(l => l.Groups["fingerprint"].Value));
        Assert.Equal(["89b6ec9e268f0d8745c8459618817e50", "9b44467b56c71cd085b822053cfafe68", "e7009ac1e51dfb735975af40736d92d6", "ffd9684103aac9a5691448d3e768b030", "36b3dd05af6ac374f5efd784855cb441"],
            a.Select(l => l.Groups["fingerprint"].Value));
    }

    [Fact]
    public async Task TenThousandBatches_DoNotGrowNativeMemoryBeyond16MiB()
    {
        const long boundKiB = 16 * 1024;
        using var probe = ChildProcess.Start(Probe, ["leak", "10000"]);

        Assert.Equal(0, await probe.WaitForExitAsync("the leak probe", TimeSpan.FromMinutes(2)));

        var m = LeakLine().Match(probe.Output);
        Assert.True(m.Success, $"no result line in probe output:\n{probe.Output}");
        var growth = long.Parse(m.Groups["after"].Value) - long.Parse(m.Groups["before"].Value);
        Assert.True(growth < boundKiB, $"RSS grew by {growth} KiB over 10,000 batches (bound {boundKiB} KiB)");
    }

    private static List<Match> Lines(string output) =>
        ProbeLine().Matches(output).ToList();

    [GeneratedRegex(@"^encoder (?<name>\S+) fingerprint (?<fingerprint>[0-9a-f]{32}) items \d+ dim \d+ output [0-9a-f]{32} first [0-9a-f]{8}$", RegexOptions.Multiline)]
    private static partial Regex ProbeLine();

    [GeneratedRegex(@"batches 10000 rss-before-kib (?<before>\d+) rss-after-kib (?<after>\d+)")]
    private static partial Regex LeakLine();
}
