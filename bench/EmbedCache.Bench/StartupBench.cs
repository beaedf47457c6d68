using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using EmbedCache.Bench.Compare;
using EmbedCache.CacheClient;
using SkiaSharp;

namespace EmbedCache.Bench;

/// <summary>
/// What opening the pretrained encoders costs a start: the Release service started with all-minilm-l6-v2 and
/// resnet18 on <c>Load=first-use</c> (the default) and on <c>Load=startup</c>, each a few times: seconds from
/// the process start to its "listening" line, resident memory then, and resident memory after one text and
/// one image lookup (which open whatever is not open yet), with the time those two lookups take.
/// </summary>
public sealed partial class StartupBench : IBench
{
    public string Name => "startup";

    public string Description => "start-up time and memory with the pretrained encoders opened on first use vs at start [--rounds N] [--repo DIR]";

    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var rounds = 3;
        var repo = Directory.GetCurrentDirectory();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--repo": repo = args[i + 1]; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}");
                    return 2;
            }
        }

        var dll = Path.Combine(repo, "src", "CacheService", "bin", "Release", "net10.0", "EmbedCache.CacheService.dll");
        if (!File.Exists(dll))
        {
            Console.Error.WriteLine($"{dll} is missing: dotnet build -c Release src/CacheService");
            return 2;
        }

        Console.WriteLine($"Machine: {MachineInfo.Describe()}; load average at start {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| pretrained models open | start → listening | RSS listening | first text + image lookup | RSS after |");
        Console.WriteLine("|---|---|---|---|---|");
        var image = Picture();
        foreach (var mode in new[] { "first-use", "startup" })
        {
            for (var round = 0; round < rounds; round++)
            {
                var save = Directory.CreateTempSubdirectory("embedcache-startup-").FullName;
                try
                {
                    var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
                    var clock = Stopwatch.StartNew();
                    using var process = Processes.Start("dotnet",
                        [dll, "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={save}",
                         $"--EmbedCache:Encoders:all-minilm-l6-v2:Load={mode}", $"--EmbedCache:Encoders:resnet18:Load={mode}"],
                        line =>
                        {
                            var m = ListeningLine().Match(line);
                            if (m.Success)
                                listening.TrySetResult(new Uri(m.Groups[1].Value));
                        }, Path.GetDirectoryName(dll));
                    var uri = await listening.Task.WaitAsync(TimeSpan.FromMinutes(3), cancellationToken);
                    var ready = clock.Elapsed.TotalSeconds;
                    var rssListening = process.ResidentBytes();

                    using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = uri });
                    var lookups = Stopwatch.StartNew();
                    await client.LookupAsync(["all-minilm-l6-v2"], KeyExtractors.ContentFromFeatures(), KeyExtractors.Texts(["a sentence to embed"]), cancellationToken: cancellationToken);
                    await client.LookupAsync(["resnet18"], KeyExtractors.ContentFromFeatures(), KeyExtractors.Images(image), cancellationToken: cancellationToken);
                    var lookupSeconds = lookups.Elapsed.TotalSeconds;
                    var rssAfter = process.ResidentBytes();
                    await process.StopAsync(TimeSpan.FromSeconds(60));
                    Console.WriteLine(FormattableString.Invariant(
                        $"| {mode} | {ready:0.00} s | {rssListening / (1 << 20):N0} MiB | {lookupSeconds:0.00} s | {rssAfter / (1 << 20):N0} MiB |"));
                }
                finally
                {
                    Directory.Delete(save, recursive: true);
                }
            }
        }

        return 0;
    }

    private static byte[] Picture()
    {
        using var bitmap = new SKBitmap(320, 240);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.SkyBlue);
            using var paint = new SKPaint { Color = SKColors.OrangeRed, IsAntialias = true };
            canvas.DrawCircle(160, 120, 80, paint);
        }

        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    [GeneratedRegex(@"EmbedCache listening: gRPC (http://[0-9.]+:[0-9]+)")]
    private static partial Regex ListeningLine();
}
