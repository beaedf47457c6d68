using System.Globalization;
using EmbedCache.Client;
using EmbedCache.Contract.V1;

namespace EmbedCache.Cli;

/// <summary>The <c>embedcache</c> commands.</summary>
internal static class Commands
{
    public const string Usage = """
        usage: embedcache [--service URL] [--api-key KEY] <command> [options]

          encoders                               list the service's encoders
          prewarm <dataset> [--split S]... [--encoder E]... [--batch-size N] [--workers N] [--detach]
                                                 fill a dataset's embeddings (a job; progress until done)
          jobs                                   list prewarm jobs
          cancel <job-id>                        cancel a prewarm job
          stats                                  items, bytes, hits and misses per namespace
          checkpoint                             make everything stored durable now
          drop (--encoder E | --fingerprint F)   drop a namespace and reclaim its space
          stream <dataset> <split> --encoder E [--batch-size N] [--seed N] [--epoch N] [--shuffle] [--labels]
                                                 stream a cached split; prints one line per batch
          lookup <dataset> <split> <index>... --encoder E [--labels]
                                                 look positional keys up; prints the first values of each

        --service defaults to $EMBEDCACHE_SERVICE or http://127.0.0.1:50051; --api-key to $EMBEDCACHE_API_KEY.
        """;

    private static readonly HashSet<string> Flags = ["detach", "shuffle", "labels", "help"];
    private static readonly HashSet<string> Options = ["service", "api-key", "split", "encoder", "batch-size", "workers", "seed", "epoch", "fingerprint"];

    public static async Task<int> RunAsync(string[] args, TextWriter output, CancellationToken cancellationToken)
    {
        var a = Arguments.Parse(args, Flags, Options);
        if (a.Flag("help") || a.Positional.Count == 0)
        {
            await output.WriteLineAsync(Usage);
            return a.Positional.Count == 0 && !a.Flag("help") ? 2 : 0;
        }

        var options = new EmbedCacheClientOptions
        {
            Address = new Uri(a.Value("service") ?? Environment.GetEnvironmentVariable("EMBEDCACHE_SERVICE") ?? "http://127.0.0.1:50051"),
            ApiKey = a.Value("api-key") ?? Environment.GetEnvironmentVariable("EMBEDCACHE_API_KEY"),
        };
        using var client = new EmbedCacheClient(options);
        var command = a.Positional[0];
        var rest = a.Positional.Skip(1).ToList();
        return command switch
        {
            "encoders" => await EncodersAsync(client, output, cancellationToken),
            "prewarm" => await PrewarmAsync(client, a, rest, output, cancellationToken),
            "jobs" => await JobsAsync(client, output, cancellationToken),
            "cancel" => await CancelAsync(client, rest, output, cancellationToken),
            "stats" => await StatsAsync(client, output, cancellationToken),
            "checkpoint" => await CheckpointAsync(client, output, cancellationToken),
            "drop" => await DropAsync(client, a, output, cancellationToken),
            "stream" => await StreamAsync(client, a, rest, output, cancellationToken),
            "lookup" => await LookupAsync(client, a, rest, output, cancellationToken),
            _ => throw new UsageException($"unknown command '{command}'"),
        };
    }

    private static async Task<int> EncodersAsync(EmbedCacheClient client, TextWriter output, CancellationToken ct)
    {
        var rows = (await client.ListEncodersAsync(ct)).Select(e => new[]
        {
            e.Name, e.Fingerprint, e.Dim.ToString(CultureInfo.InvariantCulture), Lower(e.Dtype), Lower(e.Tier), Lower(e.InputKind),
            string.Join('x', e.InputShape), e.Source,
        });
        await Table.WriteAsync(output, ["encoder", "fingerprint", "dim", "dtype", "tier", "input", "shape", "source"], rows);
        return 0;
    }

    private static async Task<int> PrewarmAsync(EmbedCacheClient client, Arguments a, List<string> rest, TextWriter output, CancellationToken ct)
    {
        if (rest.Count != 1)
            throw new UsageException("prewarm needs one dataset (a registered name or a path under the data root)");
        var request = new PrewarmRequest
        {
            Dataset = rest[0],
            BatchSize = a.UInt("batch-size", 0),
            Workers = a.UInt("workers", 0),
            Follow = !a.Flag("detach"),
        };
        request.Splits.Add(a.Values("split"));
        request.Encoders.Add(a.Values("encoder"));
        if (a.Flag("detach"))
        {
            using var call = client.Admin.Prewarm(request, cancellationToken: ct);
            await call.ResponseStream.MoveNext(ct);
            await output.WriteLineAsync($"job {call.ResponseStream.Current.JobId} started");
            return 0;
        }

        PrewarmProgress? last = null;
        var bar = new ProgressBar(output);
        await foreach (var p in client.PrewarmAsync(request, ct))
        {
            last = p;
            bar.Draw(p);
        }

        bar.Finish();
        if (last is null)
            return 1;
        await output.WriteLineAsync(
            $"job {last.JobId} {Lower(last.State)}: {last.Processed}/{last.Total} processed, {last.Encoded} encoded, {last.Skipped} already cached, {last.Committed} committed" +
            (last.State == JobState.Failed ? $" — {last.Message}" : ""));
        return last.State == JobState.Completed ? 0 : 1;
    }

    private static async Task<int> JobsAsync(EmbedCacheClient client, TextWriter output, CancellationToken ct)
    {
        var rows = (await client.ListJobsAsync(ct)).Select(j => new[]
        {
            j.JobId, Lower(j.State), j.Dataset, string.Join(',', j.Encoders), $"{j.Processed}/{j.Total}", j.Encoded.ToString(CultureInfo.InvariantCulture),
            j.Skipped.ToString(CultureInfo.InvariantCulture), j.Committed.ToString(CultureInfo.InvariantCulture), j.Message,
        });
        await Table.WriteAsync(output, ["job", "state", "dataset", "encoders", "progress", "encoded", "skipped", "committed", "message"], rows);
        return 0;
    }

    private static async Task<int> CancelAsync(EmbedCacheClient client, List<string> rest, TextWriter output, CancellationToken ct)
    {
        if (rest.Count != 1)
            throw new UsageException("cancel needs a job id");
        var job = await client.CancelJobAsync(rest[0], ct);
        await output.WriteLineAsync($"job {job.JobId}: {Lower(job.State)}");
        return 0;
    }

    private static async Task<int> StatsAsync(EmbedCacheClient client, TextWriter output, CancellationToken ct)
    {
        var stats = await client.GetStatsAsync(ct);
        var rows = stats.Namespaces.Select(n =>
        {
            var lookups = n.Hits + n.Misses;
            return new[]
            {
                n.Encoder, n.Fingerprint, Lower(n.Tier), n.Items.ToString(CultureInfo.InvariantCulture), Table.Bytes(n.MemoryBytes), Table.Bytes(n.DiskBytes),
                n.Hits.ToString(CultureInfo.InvariantCulture), n.Misses.ToString(CultureInfo.InvariantCulture),
                lookups == 0 ? "-" : (100.0 * n.Hits / lookups).ToString("0.0", CultureInfo.InvariantCulture) + "%",
                n.Encoded.ToString(CultureInfo.InvariantCulture),
            };
        });
        await Table.WriteAsync(output, ["encoder", "fingerprint", "tier", "items", "memory", "disk", "hits", "misses", "hit rate", "encoded"], rows);
        var last = stats.LastCheckpointUnixMs == 0 ? "never" : DateTimeOffset.FromUnixTimeMilliseconds(stats.LastCheckpointUnixMs).ToString("u", CultureInfo.InvariantCulture);
        await output.WriteLineAsync($"uptime {stats.UptimeSeconds:0}s; last checkpoint {last}");
        return 0;
    }

    private static async Task<int> CheckpointAsync(EmbedCacheClient client, TextWriter output, CancellationToken ct)
    {
        var c = await client.CheckpointAsync(ct);
        await output.WriteLineAsync($"checkpoint {c.Token} in {c.DurationMs:0.0} ms");
        return 0;
    }

    private static async Task<int> DropAsync(EmbedCacheClient client, Arguments a, TextWriter output, CancellationToken ct)
    {
        var encoder = a.Value("encoder");
        var fingerprint = a.Value("fingerprint");
        if (encoder is null == fingerprint is null)
            throw new UsageException("drop needs --encoder or --fingerprint");
        var r = await client.DropNamespaceAsync(encoder, fingerprint, ct);
        await output.WriteLineAsync($"dropped {r.ItemsDropped} items, reclaimed {Table.Bytes(r.BytesReclaimed)}");
        return 0;
    }

    private static async Task<int> StreamAsync(EmbedCacheClient client, Arguments a, List<string> rest, TextWriter output, CancellationToken ct)
    {
        if (rest.Count != 2)
            throw new UsageException("stream needs a dataset and a split");
        var encoders = a.Values("encoder");
        if (encoders.Count == 0)
            throw new UsageException("stream needs --encoder");
        var request = new StreamDatasetRequest
        {
            Dataset = rest[0],
            Split = rest[1],
            BatchSize = a.UInt("batch-size", 0),
            Seed = a.ULong("seed", 0),
            Epoch = a.UInt("epoch", 0),
            Shuffle = a.Flag("shuffle"),
            IncludeLabels = a.Flag("labels"),
        };
        request.Encoders.Add(encoders);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long items = 0, bytes = 0;
        await foreach (var batch in client.StreamEpochAsync(request, ct))
        {
            items += batch.Indices.Count;
            bytes += batch.Results.Sum(r => (long)r.Embeddings.Length);
            var first = string.Join(' ', batch.Indices.Take(5));
            var labels = batch.Labels?.Groups is { } g ? $" labels {string.Join(' ', g.GroupIds.Take(5))}" : "";
            await output.WriteLineAsync($"batch at {batch.Offset}/{batch.Total}: {batch.Indices.Count} items (first {first}){labels}");
        }

        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        await output.WriteLineAsync($"{items} items, {Table.Bytes((ulong)bytes)} of embeddings in {seconds:0.00}s ({items / seconds:0} items/s)");
        return 0;
    }

    private static async Task<int> LookupAsync(EmbedCacheClient client, Arguments a, List<string> rest, TextWriter output, CancellationToken ct)
    {
        if (rest.Count < 3)
            throw new UsageException("lookup needs a dataset, a split and at least one index");
        var encoders = a.Values("encoder");
        if (encoders.Count == 0)
            throw new UsageException("lookup needs --encoder");
        var indices = rest.Skip(2).Select(i => ulong.TryParse(i, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v : throw new UsageException($"'{i}' is not an item index")).ToList();
        var response = await client.LookupAsync(encoders, KeyExtractors.Positional(rest[0], rest[1], indices), includeLabels: a.Flag("labels"), cancellationToken: ct);
        foreach (var r in response.Results)
        {
            var values = Embeddings.ToFloat32(r);
            for (var i = 0; i < indices.Count; i++)
            {
                var label = response.Labels?.Groups is { } g && Embeddings.IsFound(response.Labels.Found, i) ? $" label {g.GroupIds[i]}" : "";
                var text = Embeddings.IsFound(r.Found, i)
                    ? string.Join(' ', values.Skip(i * (int)r.Dim).Take(4).Select(v => v.ToString("0.0000", CultureInfo.InvariantCulture))) + " …"
                    : "not cached";
                await output.WriteLineAsync($"{r.Encoder}[{indices[i]}]{label}: {text}");
            }
        }

        return 0;
    }

    private static string Lower<T>(T value)
        where T : struct, Enum
    {
        var name = value.ToString();
        var cut = name.IndexOf('_', StringComparison.Ordinal);
        return (cut >= 0 ? name[(cut + 1)..] : name).ToLowerInvariant();
    }
}
