using System.Diagnostics;
using EmbedCache.Bench.Compare;
using EmbedCache.CacheClient;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench;

/// <summary>
/// Only the restart measurement of <c>compare</c>: fills N Cpu-tier and N Disk-tier embeddings once, then restarts
/// the service on that SaveDir several times and prints, per restart, the time to 'listening', to health SERVING
/// and to the first successful lookup, with the service's own recovery log lines. <c>--cold</c> evicts the SaveDir's
/// files from the kernel's page cache before each restart (posix_fadvise DONTNEED, nothing else is evicted), which is
/// what a restart after a reboot, or on a busy host that evicted the log files, sees.
/// </summary>
public sealed class RestartBench : IBench
{
    public string Name => "restart";

    public string Description => "restart to serving only: [--items N (1000000)] [--restarts N (3)] [--cold] [--repo DIR]";

    public Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var items = int.Parse(Option(args, "--items") ?? "1000000", System.Globalization.CultureInfo.InvariantCulture);
        var restarts = int.Parse(Option(args, "--restarts") ?? "3", System.Globalization.CultureInfo.InvariantCulture);
        return RestartOnlyAsync(items, restarts, args.Contains("--cold"), Option(args, "--repo") ?? FindRepo(), cancellationToken);
    }

    private static async Task<int> RestartOnlyAsync(int items, int restarts, bool cold, string repo, CancellationToken token)
    {
        var root = Path.Combine(Path.GetTempPath(), "embedcache-restart-" + Guid.NewGuid().ToString("N")[..8]);
        var serviceDll = ServiceDll(repo);
        try
        {
            string[] args =
            [
                .. CommonServiceArgs(Path.Combine(root, "save-big"), Path.Combine(root, "data")),
                .. Encoder("bigd", "Disk", "Float32", 1024), .. Encoder("bigc", "Cpu", "Float32", 1024),
                "--EmbedCache:Encoders:bigd:Seed=7", // else both have one fingerprint: one namespace, one tier
            ];
            await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token))
            {
                using var client = new EmbedCacheClient(service.Uri);
                await FillAsync(client, "bigd", items, token);
                await FillAsync(client, "bigc", items, token);
                await client.CheckpointAsync(token);
            }

            Console.WriteLine($"restart to serving, {2 * items:N0} stored ({items:N0} Cpu + {items:N0} Disk); {MachineInfo.Describe()}; load average {MachineInfo.LoadAverage()}");
            for (var run = 1; run <= restarts; run++)
            {
                if (cold)
                    EvictFromPageCache(Path.Combine(root, "save-big"));
                var lines = new List<string>();
                var clock = Stopwatch.StartNew();
                double listening, healthy, serving;
                await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token, line =>
                {
                    lock (lines)
                        lines.Add(FormattableString.Invariant($"  {clock.Elapsed.TotalSeconds,6:0.00} s  {line}"));
                }, ready: false))
                {
                    listening = clock.Elapsed.TotalSeconds;
                    using var client = new EmbedCacheClient(service.Uri);
                    while (await HealthOrNullAsync(client, token) != Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving)
                        await Task.Delay(10, token);
                    healthy = clock.Elapsed.TotalSeconds;
                    serving = await FirstLookupAsync(client, items, clock, token);
                }

                Console.WriteLine(FormattableString.Invariant(
                    $"restart {run}{(cold ? " (SaveDir evicted from the page cache)" : "")}: {listening:0.00} s to 'listening', {healthy:0.00} s to SERVING, {serving:0.00} s to the first successful lookup; load average {MachineInfo.LoadAverage()}"));
                lock (lines)
                {
                    foreach (var line in lines.Where(l => l.Contains("Store", StringComparison.Ordinal) || l.Contains("ecover", StringComparison.Ordinal) || l.Contains("EmbedCache", StringComparison.Ordinal) || l.Contains("Engine", StringComparison.Ordinal)))
                        Console.WriteLine(line);
                }
            }

            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException e)
            {
                Log($"could not remove {root}: {e.Message}");
            }
        }
    }
}
