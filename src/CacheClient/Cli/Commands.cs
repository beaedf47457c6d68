using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;

namespace EmbedCache.Cli;

/// <summary>The <c>embedcache</c> commands (System.CommandLine: <c>--help</c>, completion, errors naming the option).</summary>
internal static class Commands
{
    public const string DefaultService = "http://127.0.0.1:50051";

    /// <summary>
    /// Parses and runs: bad usage prints the errors and help on <paramref name="error"/> and returns 2;
    /// otherwise the command's exit code. Exceptions from the service propagate to the caller.
    /// </summary>
    public static async Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, bool terminal, CancellationToken cancellationToken)
    {
        var result = Create(new Output(output, terminal)).Parse(args);
        if (result.Action is ParseErrorAction)
        {
            result.Invoke(new InvocationConfiguration { Output = error, Error = error });
            return 2;
        }

        return await result.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellationToken);
    }

    public static RootCommand Create(Output output)
    {
        var service = new Option<Uri>("--service")
        {
            Description = "EmbedCache gRPC address, http(s)://host:port or unix:///path/to.sock ($EMBEDCACHE_SERVICE)",
            HelpName = "url",
            Recursive = true,
            DefaultValueFactory = r => ParseService(Environment.GetEnvironmentVariable("EMBEDCACHE_SERVICE") ?? DefaultService, r),
            CustomParser = r => ParseService(r.Tokens[0].Value, r),
        };
        var apiKey = new Option<string?>("--api-key") { Description = "bearer key for the service (default $EMBEDCACHE_API_KEY)", HelpName = "key", Recursive = true };
        EmbedCacheClient Client(ParseResult r) => new(new EmbedCacheClientOptions
        {
            Address = r.GetRequiredValue(service),
            ApiKey = r.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("EMBEDCACHE_API_KEY"),
        });

        return new RootCommand("Operate an EmbedCache service: encoders, prewarm jobs, stats, checkpoints, spot checks.")
        {
            service,
            apiKey,
            Action("encoders", "List the service's encoders.", [], (r, ct) => EncodersAsync(Client(r), output, ct)),
            Prewarm(Client, output),
            Action("jobs", "List prewarm jobs.", [], (r, ct) => JobsAsync(Client(r), output, ct)),
            Cancel(Client, output),
            Action("stats", "Items, bytes, hits and misses per namespace.", [], (r, ct) => StatsAsync(Client(r), output, ct)),
            Action("checkpoint", "Make everything stored durable now.", [], (r, ct) => CheckpointAsync(Client(r), output, ct)),
            Drop(Client, output),
            Stream(Client, output),
            Lookup(Client, output),
        };
    }

    private static Command Action(string name, string description, Symbol[] symbols, Func<ParseResult, CancellationToken, Task<int>> action)
    {
        var command = new Command(name, description);
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument a:
                    command.Add(a);
                    break;
                case Option o:
                    command.Add(o);
                    break;
            }
        }

        command.SetAction(action);
        return command;
    }

    private static Uri ParseService(string value, ArgumentResult result)
    {
        if (EmbedCacheClientOptions.TryParseAddress(value, out var uri))
            return uri;
        result.AddError($"--service must be an http:// or https:// URL or unix:///path/to.sock (was '{value}')");
        return null!;
    }

    /// <summary>A repeatable option whose values may also be comma-separated: <c>--split a --split b,c</c>.</summary>
    private static Option<string[]> List(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = r => [.. r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
    };

    private static Option<uint> UInt(string name, string description) => new(name) { Description = description, HelpName = "n" };

    private static Command Prewarm(Func<ParseResult, EmbedCacheClient> client, Output output)
    {
        var dataset = new Argument<string>("dataset") { Description = "a registered dataset name, or a path under the service's data root" };
        var split = List("--split", "splits to fill, repeatable or comma-separated (default: all)");
        var encoder = List("--encoder", "encoders to fill with, repeatable or comma-separated (default: all)");
        var batchSize = UInt("--batch-size", "items per encode batch (default: the service's)");
        var workers = UInt("--workers", "parallel encode workers (default: the service's)");
        var detach = new Option<bool>("--detach") { Description = "start the job and print its id without following it" };
        var distributed = new Option<bool>("--distributed")
        {
            Description = "split the job into shards that every node sharing the service's remote tier (Store:Remote) takes a part of",
        };
        return Action("prewarm", "Fill a dataset's embeddings (a job; follows its progress until done).", [dataset, split, encoder, batchSize, workers, detach, distributed],
            async (r, ct) =>
            {
                using var c = client(r);
                var request = new PrewarmRequest
                {
                    Dataset = r.GetRequiredValue(dataset),
                    BatchSize = r.GetValue(batchSize),
                    Workers = r.GetValue(workers),
                    Follow = !r.GetValue(detach),
                    Distributed = r.GetValue(distributed),
                };
                request.Splits.Add(r.GetValue(split) ?? []);
                request.Encoders.Add(r.GetValue(encoder) ?? []);
                return r.GetValue(detach) ? await DetachedAsync(c, request, output, ct) : await FollowAsync(c, request, output, ct);
            });
    }

    private static async Task<int> DetachedAsync(EmbedCacheClient client, PrewarmRequest request, Output output, CancellationToken ct)
    {
        using var call = client.Admin.Prewarm(request, cancellationToken: ct);
        await call.ResponseStream.MoveNext(ct);
        await output.LineAsync($"job {call.ResponseStream.Current.JobId} started");
        return 0;
    }

    private static async Task<int> FollowAsync(EmbedCacheClient client, PrewarmRequest request, Output output, CancellationToken ct)
    {
        var last = await output.FollowAsync($"prewarm {request.Dataset}", client.PrewarmAsync(request, ct));
        if (last is null)
            return 1;
        await output.LineAsync(
            $"job {last.JobId} {Lower(last.State)}: {last.Processed}/{last.Total} processed, {last.Encoded} encoded, {last.Skipped} already cached, {last.Committed} committed" +
            (last.State == JobState.Failed ? $" — {last.Message}" : ""));
        if (last.Cluster is { } cluster)
            await output.LineAsync(Output.Shards(cluster));
        return last.State == JobState.Completed ? 0 : 1;
    }

    private static Command Cancel(Func<ParseResult, EmbedCacheClient> client, Output output)
    {
        var job = new Argument<string>("job-id") { Description = "the job, as prewarm or jobs printed it" };
        return Action("cancel", "Cancel a prewarm job.", [job], async (r, ct) =>
        {
            using var c = client(r);
            var state = await c.CancelJobAsync(r.GetRequiredValue(job), ct);
            await output.LineAsync($"job {state.JobId}: {Lower(state.State)}");
            return 0;
        });
    }

    private static Command Drop(Func<ParseResult, EmbedCacheClient> client, Output output)
    {
        var encoder = new Option<string>("--encoder") { Description = "drop this encoder's current namespace", HelpName = "name" };
        var fingerprint = new Option<string>("--fingerprint") { Description = "drop the namespace of this fingerprint (an encoder's older weights, say)", HelpName = "fp" };
        var command = Action("drop", "Drop a namespace and reclaim its space.", [encoder, fingerprint], async (r, ct) =>
        {
            using var c = client(r);
            var dropped = await c.DropNamespaceAsync(r.GetValue(encoder), r.GetValue(fingerprint), ct);
            await output.LineAsync($"dropped {dropped.ItemsDropped} items, reclaimed {Output.Bytes(dropped.BytesReclaimed)}");
            return 0;
        });
        command.Validators.Add(r =>
        {
            if (r.GetResult(encoder) is null == r.GetResult(fingerprint) is null)
                r.AddError("drop needs --encoder or --fingerprint (one of them)");
        });
        return command;
    }

    private static Command Stream(Func<ParseResult, EmbedCacheClient> client, Output output)
    {
        var dataset = new Argument<string>("dataset");
        var split = new Argument<string>("split");
        var encoder = List("--encoder", "encoders to stream, repeatable or comma-separated");
        encoder.Required = true;
        var batchSize = UInt("--batch-size", "items per batch (default: the service's)");
        var seed = new Option<ulong>("--seed") { Description = "shuffle seed", HelpName = "n" };
        var epoch = UInt("--epoch", "epoch number: with the seed it fixes the order");
        var shuffle = new Option<bool>("--shuffle") { Description = "shuffle the split" };
        var labels = new Option<bool>("--labels") { Description = "include labels" };
        return Action("stream", "Stream a cached split; prints one line per batch.", [dataset, split, encoder, batchSize, seed, epoch, shuffle, labels], async (r, ct) =>
        {
            using var c = client(r);
            var request = new StreamDatasetRequest
            {
                Dataset = r.GetRequiredValue(dataset),
                Split = r.GetRequiredValue(split),
                BatchSize = r.GetValue(batchSize),
                Seed = r.GetValue(seed),
                Epoch = r.GetValue(epoch),
                Shuffle = r.GetValue(shuffle),
                IncludeLabels = r.GetValue(labels),
            };
            request.Encoders.Add(r.GetRequiredValue(encoder));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long items = 0, bytes = 0;
            await foreach (var batch in c.StreamEpochAsync(request, ct))
            {
                items += batch.Indices.Count;
                bytes += batch.Results.Sum(x => (long)x.Embeddings.Length);
                var first = string.Join(' ', batch.Indices.Take(5));
                var groups = batch.Labels?.Groups is { } g ? $" labels {string.Join(' ', g.GroupIds.Take(5))}" : "";
                await output.LineAsync($"batch at {batch.Offset}/{batch.Total}: {batch.Indices.Count} items (first {first}){groups}");
            }

            var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            await output.LineAsync(FormattableString.Invariant($"{items} items, {Output.Bytes((ulong)bytes)} of embeddings in {seconds:0.00}s ({items / seconds:0} items/s)"));
            return 0;
        });
    }

    private static Command Lookup(Func<ParseResult, EmbedCacheClient> client, Output output)
    {
        var dataset = new Argument<string>("dataset");
        var split = new Argument<string>("split");
        var indices = new Argument<ulong[]>("index") { Description = "item indices in the split", Arity = ArgumentArity.OneOrMore };
        var encoder = List("--encoder", "encoders to look up, repeatable or comma-separated");
        encoder.Required = true;
        var labels = new Option<bool>("--labels") { Description = "include labels" };
        return Action("lookup", "Look positional keys up; prints the first values of each.", [dataset, split, indices, encoder, labels], async (r, ct) =>
        {
            using var c = client(r);
            var keys = r.GetRequiredValue(indices);
            var response = await c.LookupAsync(r.GetRequiredValue(encoder), KeyExtractors.Positional(r.GetRequiredValue(dataset), r.GetRequiredValue(split), keys),
                includeLabels: r.GetValue(labels), cancellationToken: ct);
            foreach (var result in response.Results)
            {
                var values = Embeddings.ToFloat32(result);
                for (var i = 0; i < keys.Length; i++)
                {
                    var label = response.Labels?.Groups is { } g && Embeddings.IsFound(response.Labels.Found, i) ? $" label {g.GroupIds[i]}" : "";
                    var text = Embeddings.IsFound(result.Found, i)
                        ? string.Join(' ', values.Skip(i * (int)result.Dim).Take(4).Select(v => v.ToString("0.0000", CultureInfo.InvariantCulture))) + " …"
                        : "not cached";
                    await output.LineAsync($"{result.Encoder}[{keys[i]}]{label}: {text}");
                }
            }

            return 0;
        });
    }

    private static async Task<int> EncodersAsync(EmbedCacheClient client, Output output, CancellationToken ct)
    {
        using (client)
        {
            var rows = (await client.ListEncodersAsync(ct)).Select(e => new[]
            {
                e.Name, e.Fingerprint, e.Dim.ToString(CultureInfo.InvariantCulture), Lower(e.Dtype), Lower(e.Tier), Lower(e.InputKind),
                string.Join('x', e.InputShape), e.Source,
            });
            output.Table(["encoder", "fingerprint", "dim", "dtype", "tier", "input", "shape", "source"], rows);
            return 0;
        }
    }

    private static async Task<int> JobsAsync(EmbedCacheClient client, Output output, CancellationToken ct)
    {
        using (client)
        {
            var rows = (await client.ListJobsAsync(ct)).Select(j => new[]
            {
                j.JobId, Lower(j.State), j.Dataset, string.Join(',', j.Encoders), $"{j.Processed}/{j.Total}", j.Encoded.ToString(CultureInfo.InvariantCulture),
                j.Skipped.ToString(CultureInfo.InvariantCulture), j.Committed.ToString(CultureInfo.InvariantCulture),
                j.Cluster is { } c ? Output.Shards(c) : j.Message,
            });
            output.Table(["job", "state", "dataset", "encoders", "progress", "encoded", "skipped", "committed", "message"], rows);
            return 0;
        }
    }

    private static async Task<int> StatsAsync(EmbedCacheClient client, Output output, CancellationToken ct)
    {
        using (client)
        {
            var stats = await client.GetStatsAsync(ct);
            var rows = stats.Namespaces.Select(n =>
            {
                var lookups = n.Hits + n.Misses;
                return new[]
                {
                    n.Encoder, n.Fingerprint, Lower(n.Tier), n.Items.ToString(CultureInfo.InvariantCulture), Output.Bytes(n.MemoryBytes), Output.Bytes(n.DiskBytes),
                    n.Hits.ToString(CultureInfo.InvariantCulture), n.Misses.ToString(CultureInfo.InvariantCulture),
                    lookups == 0 ? "-" : (100.0 * n.Hits / lookups).ToString("0.0", CultureInfo.InvariantCulture) + "%",
                    n.Encoded.ToString(CultureInfo.InvariantCulture),
                };
            });
            output.Table(["encoder", "fingerprint", "tier", "items", "memory", "disk", "hits", "misses", "hit rate", "encoded"], rows);
            var last = stats.LastCheckpointUnixMs == 0 ? "never" : DateTimeOffset.FromUnixTimeMilliseconds(stats.LastCheckpointUnixMs).ToString("u", CultureInfo.InvariantCulture);
            await output.LineAsync(FormattableString.Invariant($"uptime {stats.UptimeSeconds:0}s; last checkpoint {last}"));
            if (stats.Remote is { Enabled: true } remote)
            {
                await output.LineAsync(FormattableString.Invariant(
                    $"remote tier {string.Join(',', remote.Endpoints)}: {(remote.Connected ? "connected" : "not connected")}, breaker {remote.Breaker}; hits {remote.Hits}, misses {remote.Misses}, corrupt {remote.Corrupt}, errors {remote.Errors} (timeouts {remote.Timeouts}); writes {remote.Written} written, {remote.Queued} queued, {remote.Dropped} dropped") +
                    (remote.LastError.Length > 0 ? $"; last error: {remote.LastError}" : ""));
            }

            return 0;
        }
    }

    private static async Task<int> CheckpointAsync(EmbedCacheClient client, Output output, CancellationToken ct)
    {
        using (client)
        {
            var c = await client.CheckpointAsync(ct);
            await output.LineAsync(FormattableString.Invariant($"checkpoint {c.Token} in {c.DurationMs:0.0} ms"));
            return 0;
        }
    }

    private static string Lower<T>(T value)
        where T : struct, Enum
    {
        var name = value.ToString();
        var cut = name.IndexOf('_', StringComparison.Ordinal);
        return (cut >= 0 ? name[(cut + 1)..] : name).ToLowerInvariant();
    }
}
