using System.Globalization;
using System.Text.RegularExpressions;
using EmbedCache.Contract.V1;

namespace EmbedCache.CacheService.Tests;

/// <summary>/metrics over HTTP after real traffic: every series the ops docs name is there with the values the traffic implies.</summary>
public sealed partial class MetricsTests
{
    private const string Mlp = "random-mlp";
    private const int TrainItems = 1438;

    [Fact]
    public async Task Metrics_AfterPrewarmLookupsAndACheckpoint_ReportHitsMissesEncodesTiersLatencyFillProgressAndCheckpointDuration()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var prewarm = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2 };
        prewarm.Splits.Add("train");
        prewarm.Encoders.Add(Mlp);
        var job = (await Contract.PrewarmToEndAsync(contract.Admin, prewarm))[^1];
        await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, 1, 2, 3, 4));
        // The val split was not prewarmed and no features are sent: three misses, nothing encoded.
        await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "val", 0, 1, 2));
        await contract.Admin.CheckpointAsync(new CheckpointRequest());

        var text = await service.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        var samples = Parse(text);

        Assert.Equal(5, Value(samples, "embedcache_lookup_keys_total", ("encoder", Mlp), ("result", "hit")));
        Assert.Equal(3, Value(samples, "embedcache_lookup_keys_total", ("encoder", Mlp), ("result", "miss")));
        Assert.Equal(TrainItems, Value(samples, "embedcache_encoded_total", ("encoder", Mlp)));
        Assert.Equal(TrainItems, Value(samples, "embedcache_namespace_items", ("encoder", Mlp), ("tier", "cpu")));
        Assert.True(Value(samples, "embedcache_namespace_bytes", ("encoder", Mlp), ("where", "memory")) > 0);
        Assert.Equal(TrainItems, Value(samples, "embedcache_tier_items", ("tier", "cpu")));
        Assert.True(Value(samples, "embedcache_tier_bytes", ("tier", "cpu"), ("where", "memory")) >= TrainItems * 128 * 4);
        Assert.True(Value(samples, "embedcache_tier_bytes", ("tier", "cpu"), ("where", "disk")) > 0, "a SaveDir store reports disk bytes");
        Assert.Equal(0, Value(samples, "embedcache_tier_items", ("tier", "disk")));

        Assert.Equal(2, Value(samples, "embedcache_request_duration_seconds_count", ("method", "Lookup")));
        Assert.Equal(2, Value(samples, "embedcache_request_duration_seconds_bucket", ("method", "Lookup"), ("le", "+Inf")));
        Assert.True(Value(samples, "embedcache_request_duration_seconds_sum", ("method", "Lookup")) > 0);
        Assert.Equal(2, Value(samples, "embedcache_requests_total", ("method", "Lookup"), ("code", "OK")));

        Assert.Equal(TrainItems, Value(samples, "embedcache_prewarm_processed", ("job", job.JobId), ("dataset", "digits"), ("state", "completed")));
        Assert.Equal(TrainItems, Value(samples, "embedcache_prewarm_total", ("job", job.JobId)));
        Assert.Equal(TrainItems, Value(samples, "embedcache_prewarm_committed", ("job", job.JobId)));

        // At least the fill's own checkpoint and the admin one, each with a real duration.
        Assert.True(Value(samples, "embedcache_checkpoint_duration_seconds_count") >= 2, text);
        Assert.True(Value(samples, "embedcache_checkpoint_duration_seconds_sum") > 0);
        var lastCheckpoint = Value(samples, "embedcache_last_checkpoint_timestamp_seconds");
        Assert.InRange(lastCheckpoint, DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds());
    }

    [Fact]
    public async Task GpuTier_MetricsAndStatusReportTheSharedBudgetWhatIsReservedAndUsed_AndTheFallback()
    {
        // Host-tensor tables here (no CUDA): the same budget, reservations and counters as on a device. A 1 MiB
        // budget (64 KiB segments) for gpu-mlp (512 B rows) and four encoders of 256 KiB rows, registered in
        // name order: gpu-mlp takes a segment, wide-a..c a row each, and wide-d finds 192 KiB left, less than a row.
        string[] args = ["--EmbedCache:Store:GpuMemoryBytes=1048576", "--EmbedCache:Encoders:gpu-mlp:Kind=random-mlp", "--EmbedCache:Encoders:gpu-mlp:Tier=Gpu"];
        foreach (var (wide, seed) in new[] { ("wide-a", 1), ("wide-b", 2), ("wide-c", 3), ("wide-d", 4) }) // seeds: four models, four namespaces
        {
            args = [.. args, $"--EmbedCache:Encoders:{wide}:Kind=random-mlp", $"--EmbedCache:Encoders:{wide}:Tier=Gpu",
                $"--EmbedCache:Encoders:{wide}:Dim=65536", $"--EmbedCache:Encoders:{wide}:Seed={seed}"];
        }

        await using var service = await InProcessService.StartAsync(null, args);
        var contract = new Contract(service.Channel);
        var prewarm = new PrewarmRequest { Dataset = "digits", BatchSize = 128 };
        prewarm.Splits.Add("train");
        prewarm.Encoders.Add("gpu-mlp");
        Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(contract.Admin, prewarm))[^1].State);
        await contract.Cache.LookupAsync(Contract.Positional("gpu-mlp", "digits", "train", 0, 1, 2, 3, 4));

        var samples = Parse(await service.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
        Assert.Equal(1 << 20, Value(samples, "embedcache_gpu_memory_bytes", ("kind", "budget")));
        // gpu-mlp grew into what was left as the prewarm filled it: the whole budget is reserved now.
        Assert.Equal(1 << 20, Value(samples, "embedcache_gpu_memory_bytes", ("kind", "reserved")));
        Assert.Equal(1, Value(samples, "embedcache_gpu_tier_fallbacks"));
        Assert.Equal(256 << 10, Value(samples, "embedcache_gpu_table_bytes", ("encoder", "gpu-mlp"), ("kind", "reserved")));
        Assert.Equal(256 << 10, Value(samples, "embedcache_gpu_table_bytes", ("encoder", "gpu-mlp"), ("kind", "used"))); // full: it evicts
        Assert.Equal(256 << 10, Value(samples, "embedcache_gpu_table_bytes", ("encoder", "wide-a"), ("kind", "reserved")));
        Assert.Equal(0, Value(samples, "embedcache_gpu_table_errors_total", ("encoder", "gpu-mlp")));
        Assert.Equal(0, Value(samples, "embedcache_gpu_table_off", ("encoder", "gpu-mlp")));
        Assert.Equal(TrainItems, Value(samples, "embedcache_namespace_items", ("encoder", "gpu-mlp"), ("tier", "gpu")));

        using var status = System.Text.Json.JsonDocument.Parse(await service.Http.GetStringAsync(new Uri("/api/status", UriKind.Relative)));
        var gpu = status.RootElement.GetProperty("gpu");
        Assert.False(gpu.GetProperty("cuda").GetBoolean());
        Assert.Equal(1 << 20, gpu.GetProperty("budgetBytes").GetInt64());
        Assert.Equal(1 << 20, gpu.GetProperty("reservedBytes").GetInt64());
        Assert.Equal(1, gpu.GetProperty("fallbacks").GetInt64());
        var tiers = status.RootElement.GetProperty("encoders").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("tier").GetString());
        Assert.Equal(["gpu", "gpu", "gpu", "gpu", "cpu"], new[] { "gpu-mlp", "wide-a", "wide-b", "wide-c", "wide-d" }.Select(n => tiers[n]));
        var mlp = status.RootElement.GetProperty("namespaces").EnumerateArray().Single(n => n.GetProperty("encoder").GetString() == "gpu-mlp");
        Assert.Equal(256 << 10, mlp.GetProperty("gpuReservedBytes").GetInt64());
        Assert.Equal(256 << 10, mlp.GetProperty("gpuBytes").GetInt64());
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    private static List<Sample> Parse(string text)
    {
        var list = new List<Sample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"not a Prometheus sample line: {line}");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match l in LabelPair().Matches(m.Groups["labels"].Value))
                labels[l.Groups[1].Value] = l.Groups[2].Value;
            list.Add(new Sample(m.Groups["name"].Value, labels, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }

        return list;
    }

    /// <summary>The sum over the series of <paramref name="name"/> that carry all the given labels (fails if there is none).</summary>
    private static double Value(List<Sample> samples, string name, params (string Key, string Value)[] labels)
    {
        var matching = samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).ToList();
        Assert.True(matching.Count > 0, $"no series {name}{{{string.Join(',', labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}}");
        return matching.Sum(s => s.Value);
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)( \d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex LabelPair();
}
