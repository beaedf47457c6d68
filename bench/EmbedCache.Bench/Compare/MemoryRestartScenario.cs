using System.Diagnostics;
using EmbedCache.CacheClient;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// Resident bytes per stored embedding in the Cpu and the Disk tier, and restart to serving (cold: the SaveDir
/// evicted from the page cache; warm), at <see cref="Settings.BigItems"/> embeddings per tier.
/// </summary>
internal static class MemoryRestartScenario
{
    public static async Task RunAsync(CompareReport report, string serviceDll, string root, string dataRoot, int items, CancellationToken token)
    {
        string[] args =
        [
            .. CommonServiceArgs(Path.Combine(root, "save-big"), dataRoot),
            .. Encoder("bigd", "Disk", "Float32", 1024), .. Encoder("bigc", "Cpu", "Float32", 1024),
            // Another seed: with the same weights both encoders would have one fingerprint, one namespace, one tier.
            "--EmbedCache:Encoders:bigd:Seed=7",
        ];
        // Resident memory is measured after the restart (so the fill's garbage is not counted): RSS of the
        // recovered service after one read of every key of a tier, minus RSS of the same service empty.
        long rss0, rssCpu, rssDisk;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token))
        {
            using var client = new EmbedCacheClient(service.Uri);
            await client.ListEncodersAsync(token);
            await Task.Delay(1000, token);
            rss0 = service.Process.ResidentBytes();
            await FillAsync(client, "bigd", items, token);
            await FillAsync(client, "bigc", items, token);
            await client.CheckpointAsync(token);
        }

        // Cold: the SaveDir's files evicted from the page cache, as after a reboot, so the figure does not depend on
        // what the run did before (recovery reads the whole Cpu-tier log back: warm it is memory speed, cold disk speed).
        EvictFromPageCache(Path.Combine(root, "save-big"));
        var clock = Stopwatch.StartNew();
        double listening, serving;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token, ready: false))
        {
            listening = clock.Elapsed.TotalSeconds;
            using var client = new EmbedCacheClient(service.Uri);
            serving = await FirstLookupAsync(client, items, clock, token);
            await ReadAllAsync(client, "bigc", items, token);
            rssCpu = service.Process.ResidentBytes();
            await ReadAllAsync(client, "bigd", items, token);
            rssDisk = service.Process.ResidentBytes();
        }

        // Warm: right after, the log still in the page cache.
        clock.Restart();
        double warmListening, warmServing;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token, ready: false))
        {
            warmListening = clock.Elapsed.TotalSeconds;
            using var client = new EmbedCacheClient(service.Uri);
            warmServing = await FirstLookupAsync(client, items, clock, token);
        }

        var perCpu = (double)(rssCpu - rss0) / items;
        var perDisk = (double)(rssDisk - rssCpu) / items;
        report.Extra.Add(FormattableString.Invariant(
            $"| resident memory, Cpu tier, {items:N0} × 1,536 B (RSS of the restarted service after reading every key, minus RSS empty) | {perCpu:N0} B/embedding | raw 1,536 B | **{perCpu / RowBytes:0.00}×** raw |"));
        report.Extra.Add(FormattableString.Invariant(
            $"| resident memory, Disk tier (64 MiB window), {items:N0} × 1,536 B | {perDisk:N0} B/embedding | raw 1,536 B | **{perDisk / RowBytes:0.00}×** raw |"));
        report.Extra.Add(FormattableString.Invariant(
            $"| restart to serving, {2 * items:N0} stored embeddings ({items:N0} Cpu + {items:N0} Disk), same SaveDir | **{serving:0.00} s** cold (SaveDir evicted from the page cache), **{warmServing:0.00} s** warm, to the first successful lookup | {listening:0.00} s / {warmListening:0.00} s to 'listening' | target < 5 s |"));
    }
}
