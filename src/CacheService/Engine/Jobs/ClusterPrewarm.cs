using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Remote;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Jobs;

/// <summary>
/// Distributed prewarm over the remote tier's cluster. A distributed job is cut into shards of whole batches
/// (<see cref="RemoteOptions.ShardItems"/> items of one split each) recorded on the cluster; every node sharing the
/// cluster runs a worker that leases a shard (<c>SET NX PX</c>, renewed at a third of <see cref="RemoteOptions.LeaseMs"/>),
/// fills it with the ordinary <see cref="FillPipeline"/>, waits until its rows and labels are on the cluster, marks it
/// done and releases it. A node that dies stops renewing; its lease lapses and another node takes the shard, skipping
/// every row already on the cluster, so nothing committed (on the cluster) is encoded twice. The node that finishes
/// the last shard marks the splits complete on the cluster. The node the job was started on follows it and reports
/// cluster-wide progress; every node lists it.
/// </summary>
/// <remarks>
/// A node takes shards only of jobs whose dataset it can read and whose encoders it has with the same fingerprints.
/// One shard at a time per node: a shard's encoders already use the node's cores.
/// </remarks>
internal sealed partial class ClusterPrewarm : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);
    private readonly CacheEngine _engine;
    private readonly RemoteCluster _remote;
    private readonly ClusterJobStore _store;
    private readonly JobOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _worker;
    private readonly Task _viewer;
    private readonly TimeSpan _lease;
    private volatile IReadOnlyList<PrewarmJob> _views = [];
    private string? _lastFault;

    public ClusterPrewarm(CacheEngine engine, RemoteCluster remote, JobOptions options, ILogger logger)
    {
        _engine = engine;
        _remote = remote;
        _store = new ClusterJobStore(remote);
        _options = options;
        _logger = logger;
        _lease = TimeSpan.FromMilliseconds(remote.Options.LeaseMs);
        _worker = Task.Run(WorkAsync);
        _viewer = Task.Run(ViewAsync);
    }

    /// <summary>The cluster's jobs as last read (about every half second), for listing on every node.</summary>
    public IReadOnlyList<PrewarmJob> Views => _views;

    /// <summary>Shards of a job: each split cut into runs of whole batches.</summary>
    public static List<ShardRange> Shards(PrewarmSpec spec, IReadOnlyDictionary<string, long> items, int shardItems)
    {
        var size = Math.Max(1, (long)Math.Ceiling((double)shardItems / spec.BatchSize)) * spec.BatchSize;
        var shards = new List<ShardRange>();
        foreach (var split in spec.Splits)
        {
            for (long start = 0; start < items[split]; start += size)
                shards.Add(new ShardRange(split, start, Math.Min(size, items[split] - start)));
        }

        return shards;
    }

    /// <summary>Records the job on the cluster (a job resumed after a restart finds it there and leaves it as it is).</summary>
    public async Task CreateAsync(PrewarmJob job)
    {
        var spec = job.Spec;
        var dataset = _engine.Datasets.Resolve(spec.Dataset);
        var manifest = dataset.Manifest;
        var items = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var split in spec.Splits)
        {
            items[split] = dataset.CountItems(split, job.Token);
            var pairs = manifest.Labels.Kind == DatasetLabelKind.Pair ? dataset.ReadPairs(split, job.Token).Count : 0;
            _engine.Splits.Record(dataset.Name, split, items[split], pairs, manifest.Labels.Kind, manifest.Key.Scheme);
        }

        var shards = Shards(spec, items, _remote.Options.ShardItems);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["spec"] = JsonSerializer.Serialize(spec),
            ["shards"] = JsonSerializer.Serialize(shards),
            ["shardCount"] = Invariant(shards.Count),
            ["total"] = Invariant(items.Values.Sum() * spec.Encoders.Count),
            ["state"] = "running",
            ["message"] = $"running on the cluster: {shards.Count} shards",
            ["coordinator"] = _remote.NodeName,
            ["created"] = Invariant(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
        };
        foreach (var name in spec.Encoders)
            fields["fp:" + name] = _engine.GetEncoder(name).Fingerprint.ToString();
        await _store.CreateAsync(job.Id, fields);
        job.OnCancel = () => _ = CancelAsync(job.Id);
    }

    /// <summary>Follows a job this node started until it ends on the cluster, keeping its counters cluster-wide.</summary>
    public async Task<(JobState State, string Message)> FollowAsync(PrewarmJob job)
    {
        while (true)
        {
            job.Token.ThrowIfCancellationRequested();
            ClusterJobRecord? record;
            try
            {
                record = await _store.GetAsync(job.Id);
            }
            catch (Exception e) when (RemoteCluster.IsClusterFault(e))
            {
                Fault(e);
                await Task.Delay(Poll, job.Token);
                continue;
            }

            if (record is null)
                return (JobState.Failed, "the job is gone from the cluster (flushed?)");
            var (state, message) = Mirror(job, record);
            if (state is not JobState.Running)
                return (state, message);
            await Task.Delay(Poll, job.Token);
        }
    }

    public Task CancelAsync(string id) => _store.SetStateAsync(id, "cancelled", "cancelled");

    /// <summary>Puts a cluster job's counters into <paramref name="job"/>; returns its state and message.</summary>
    private static (JobState State, string Message) Mirror(PrewarmJob job, ClusterJobRecord record)
    {
        var shards = JsonSerializer.Deserialize<List<ShardRange>>(record.Fields.GetValueOrDefault("shards", "[]")) ?? [];
        long processed = 0, encoded = 0, skipped = 0, committed = 0;
        var nodes = new Dictionary<string, (int Done, int Leased, long Encoded, long Skipped)>(StringComparer.Ordinal);
        for (var k = 0; k < shards.Count; k++)
        {
            var p = record.Field($"p:{k}");
            var e = record.Field($"e:{k}");
            var s = record.Field($"s:{k}");
            processed += p;
            encoded += e;
            skipped += s;
            string? node = null;
            if (record.Done.Contains(k))
            {
                committed += p;
                node = record.Fields.GetValueOrDefault($"n:{k}");
            }
            else if (record.Leases.TryGetValue(k, out var owner))
            {
                node = owner;
            }

            if (node is null)
                continue;
            var n = nodes.GetValueOrDefault(node);
            nodes[node] = record.Done.Contains(k) ? (n.Done + 1, n.Leased, n.Encoded + e, n.Skipped + s) : (n.Done, n.Leased + 1, n.Encoded + e, n.Skipped + s);
        }

        var cluster = new ClusterProgress(shards.Count, record.Done.Count, record.Leases.Count,
            nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => new NodeShare(n.Key, n.Value.Done, n.Value.Leased, n.Value.Encoded, n.Value.Skipped)).ToList());
        job.Mirror(record.Field("total"), processed, encoded, skipped, committed, cluster);
        var state = record.State switch
        {
            "completed" => JobState.Completed,
            "failed" => JobState.Failed,
            "cancelled" => JobState.Cancelled,
            _ => JobState.Running,
        };
        var message = record.Fields.GetValueOrDefault("message", record.State);
        if (state == JobState.Running)
            message = $"running on the cluster: {record.Done.Count}/{shards.Count} shards done, {record.Leases.Count} leased, {nodes.Count} node(s)";
        return (state, message);
    }

    private async Task ViewAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var views = new List<PrewarmJob>();
                foreach (var id in await _store.JobIdsAsync())
                {
                    if (await _store.GetAsync(id) is not { } record || Spec(record) is not { } spec)
                        continue;
                    var view = PrewarmJob.Finished(id, spec, JobState.Running, "", 0, 0, 0, 0, 0);
                    var (state, message) = Mirror(view, record);
                    view.SetState(state, message);
                    view.OnCancel = () => _ = CancelAsync(id);
                    views.Add(view);
                }

                _views = views;
            }
            catch (Exception e) when (RemoteCluster.IsClusterFault(e))
            {
                Fault(e);
            }

            try
            {
                await Task.Delay(Poll, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task WorkAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            var took = false;
            try
            {
                foreach (var id in await _store.JobIdsAsync())
                {
                    if (await _store.GetAsync(id) is not { State: "running" } record || Runnable(record) is not { } spec)
                        continue;
                    // Every shard is done but the job is not complete: the node that finished the last one died
                    // before it could say so (or failed to). Completing is idempotent; any node does it.
                    if (record.Done.Count == record.Field("shardCount"))
                    {
                        await CompleteAsync(id, spec, record.Done.Count);
                        continue;
                    }

                    took = await TryRunShardAsync(record, spec);
                    if (took)
                        break;
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A cluster fault, or a job this node cannot complete now: logged once per distinct reason, tried again.
                Fault(e);
            }

            if (took)
                continue;
            try
            {
                await Task.Delay(Poll, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Leases one open shard of the job and runs it; false when every open shard is leased by others.</summary>
    private async Task<bool> TryRunShardAsync(ClusterJobRecord record, PrewarmSpec spec)
    {
        var shards = JsonSerializer.Deserialize<List<ShardRange>>(record.Fields["shards"]) ?? [];
        var open = Enumerable.Range(0, shards.Count).Where(k => !record.Done.Contains(k) && !record.Leases.ContainsKey(k)).ToList();
        if (open.Count == 0)
            return false;
        // Start at a random open shard, so nodes starting together rarely race for the same lease.
        var first = Random.Shared.Next(open.Count);
        for (var j = 0; j < open.Count; j++)
        {
            var k = open[(first + j) % open.Count];
            if (!await _store.TryLeaseAsync(record.Id, k, _remote.NodeName, _lease))
                continue;
            try
            {
                // Another node may have finished it between our read and our lease.
                if ((await _store.GetAsync(record.Id, shards.Count))?.Done.Contains(k) == false)
                    await RunShardAsync(record.Id, spec, shards, k);
            }
            finally
            {
                await _store.ReleaseAsync(record.Id, k, _remote.NodeName).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            return true;
        }

        return false;
    }

    private async Task RunShardAsync(string id, PrewarmSpec spec, List<ShardRange> shards, int k)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var job = new PrewarmJob($"{id}#{k}", spec, run.Token) { Range = shards[k] };
        job.Start();
        ShardStarted(_logger, k, shards.Count, id, shards[k].Split, shards[k].Start, shards[k].Start + shards[k].Count);
        var keeper = KeepLeaseAsync(id, k, job, run);
        var pipeline = new FillPipeline(_engine, job, _options);
        try
        {
            await pipeline.RunAsync();
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested)
        {
            ShardStopped(_logger, k, id, _stopping.IsCancellationRequested ? "the service is stopping" : "its lease was lost or the job cancelled");
            return;
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            ShardFailed(_logger, k, id, e.Message);
            await _store.SetStateAsync(id, "failed", $"shard {k} failed on {_remote.NodeName}: {e.Message}");
            return;
        }
        finally
        {
            await run.CancelAsync();
            await keeper.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        if (!pipeline.Shared)
        {
            ShardStopped(_logger, k, id, job.NotSharedReason ?? "its writes did not reach the cluster");
            return;
        }

        var done = await _store.MarkDoneAsync(id, k, _remote.NodeName, job.Processed, job.Encoded, job.Skipped);
        ShardDone(_logger, k, id, job.Encoded, job.Skipped);
        if (done == shards.Count)
            await CompleteAsync(id, spec, shards.Count);
    }

    /// <summary>Renews the shard's lease and publishes its progress until the run ends; cancels the run when the lease is lost or the job is cancelled.</summary>
    private async Task KeepLeaseAsync(string id, int k, PrewarmJob job, CancellationTokenSource run)
    {
        var every = _lease / 3;
        while (!run.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, run.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                if (!await _store.RenewAsync(id, k, _remote.NodeName, _lease) || (await _store.GetAsync(id, 0))?.State != "running")
                {
                    await run.CancelAsync();
                    return;
                }

                await _store.ReportAsync(id, k, job.Processed, job.Encoded, job.Skipped);
            }
            catch (Exception e) when (RemoteCluster.IsClusterFault(e))
            {
                // The lease outlives a few failed renewals; a node cut off for longer loses it, and the shard is run again elsewhere.
                Fault(e);
            }
        }
    }

    private async Task CompleteAsync(string id, PrewarmSpec spec, int shards)
    {
        var dataset = _engine.Datasets.Resolve(spec.Dataset);
        var fingerprints = spec.Encoders.Select(n => _engine.GetEncoder(n).Fingerprint).ToArray();
        foreach (var split in spec.Splits)
        {
            if (!_engine.Splits.MarkComplete(dataset.Name, split, fingerprints, share: true))
                throw new RemoteUnavailableException($"the cluster did not take split {dataset.Name}/{split}'s manifest");
        }
        var record = await _store.GetAsync(id, shards);
        var created = record?.Field("created") ?? 0;
        var seconds = created > 0 ? (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - created) / 1000.0 : 0;
        var nodes = record is null ? 0 : Enumerable.Range(0, shards).Select(k => record.Fields.GetValueOrDefault($"n:{k}")).Distinct().Count();
        await _store.SetStateAsync(id, "completed", string.Create(CultureInfo.InvariantCulture, $"completed on the cluster: {shards} shards on {nodes} node(s) in {seconds:0.0} s"));
        JobCompleted(_logger, id, shards, nodes);
    }

    /// <summary>The job's spec when this node can run its shards: it reads the dataset and has the encoders with the same fingerprints.</summary>
    private PrewarmSpec? Runnable(ClusterJobRecord record)
    {
        if (Spec(record) is not { } spec)
            return null;
        try
        {
            _engine.Datasets.Resolve(spec.Dataset);
            foreach (var name in spec.Encoders)
            {
                if (_engine.GetEncoder(name).Fingerprint.ToString() != record.Fields.GetValueOrDefault("fp:" + name))
                    return null;
            }

            return spec;
        }
        catch (EngineException)
        {
            return null;
        }
    }

    private static PrewarmSpec? Spec(ClusterJobRecord record)
    {
        try
        {
            return record.Fields.TryGetValue("spec", out var json) ? JsonSerializer.Deserialize<PrewarmSpec>(json) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void Fault(Exception e)
    {
        var message = e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;
        if (Interlocked.Exchange(ref _lastFault, message) != message)
            ClusterFault(_logger, message);
    }

    private static string Invariant(long n) => n.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await Task.WhenAll(_worker, _viewer).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster prewarm: shard {Shard}/{Shards} of job {JobId} (split {Split}, items {Start}..{End}) taken")]
    private static partial void ShardStarted(ILogger logger, int shard, int shards, string jobId, string split, long start, long end);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster prewarm: shard {Shard} of job {JobId} done: {Encoded} encoded, {Skipped} already on the cluster")]
    private static partial void ShardDone(ILogger logger, int shard, string jobId, long encoded, long skipped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster prewarm: shard {Shard} of job {JobId} stopped ({Reason}); it is run again, skipping what reached the cluster")]
    private static partial void ShardStopped(ILogger logger, int shard, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster prewarm: shard {Shard} of job {JobId} failed: {Reason}")]
    private static partial void ShardFailed(ILogger logger, int shard, string jobId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster prewarm: job {JobId} completed: {Shards} shards on {Nodes} node(s)")]
    private static partial void JobCompleted(ILogger logger, string jobId, int shards, int nodes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster prewarm: {Reason}; tried again shortly")]
    private static partial void ClusterFault(ILogger logger, string reason);
}

/// <summary>The cluster did not take a write the job needs (retried on the worker's next round).</summary>
internal sealed class RemoteUnavailableException(string message) : EngineException(ErrorKind.Unavailable, message);
