using System.Diagnostics;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The EmbedCache nodes of the remote-tier scenario: the built service as a child process with its own SaveDir, the
/// scenario's data root (every node reads the same one, as nodes on shared storage would) and a remote tier on the
/// scenario's cluster under one key prefix; and what the scenario asks of a node.
/// </summary>
internal sealed class RemoteNode : IAsyncDisposable
{
    /// <summary>The small text dataset each node encodes once, unmeasured, before its timed prewarm (registered under these names).</summary>
    public static readonly string[] WarmDatasets = ["warm1", "warm2", "warm3"];

    private RemoteNode(string name, ServiceInstance service)
    {
        Name = name;
        Service = service;
        Client = new EmbedCacheClient(service.Uri);
    }

    public string Name { get; }

    public ServiceInstance Service { get; }

    public EmbedCacheClient Client { get; }

    /// <param name="shardItems">Store:Remote:ShardItems (items per shard of a distributed prewarm); null: the default.</param>
    public static async Task<RemoteNode> StartAsync(string serviceDll, string root, string dataRoot, string endpoints, string prefix, string name, CancellationToken token, int? shardItems = null)
    {
        string[] args =
        [
            .. CommonServiceArgs(Path.Combine(root, "remote-" + prefix + "-" + name), dataRoot),
            "--EmbedCache:Datasets:vec=vec",
            .. Enumerable.Range(0, RemoteTierScenario.WarmRounds).Select(r => $"--EmbedCache:Datasets:{RemoteTierScenario.WarmVectors(r)}=vecw"),
            .. WarmDatasets.Select(d => $"--EmbedCache:Datasets:{d}=warm"),
            .. Encoder("e32", "Cpu", "Float32", 256),
            $"--EmbedCache:Store:Remote:Endpoints:0={endpoints}",
            $"--EmbedCache:Store:Remote:KeyPrefix={prefix}",
            $"--EmbedCache:Store:Remote:NodeName={name}",
            .. shardItems is { } n ? [$"--EmbedCache:Store:Remote:ShardItems={n}"] : Array.Empty<string>(),
        ];
        var clock = Stopwatch.StartNew();
        var service = await ServiceInstance.StartAsync(serviceDll, args, token);
        Log($"node {name} (prefix {prefix}) serving at {service.Uri} after {clock.Elapsed.TotalSeconds:0.0} s (pid {service.Process.Id})");
        return new RemoteNode(name, service);
    }

    /// <param name="CpuSeconds">User + system CPU time of the nodes asked to measure it, over the job; NaN when none was.</param>
    public sealed record Prewarmed(double Seconds, PrewarmProgress Last, double CpuSeconds)
    {
        public double ItemsPerSecond => Last.Processed / Seconds;

        public double CpuMsPerItem => 1000 * CpuSeconds / Last.Processed;
    }

    /// <summary>User + system CPU seconds the nodes' processes have used so far.</summary>
    public static double CpuSeconds(IEnumerable<RemoteNode> nodes)
    {
        var total = 0.0;
        foreach (var node in nodes)
        {
            if (node.Service.Process.HasExited)
                throw new InvalidOperationException($"node {node.Name} has exited:{Environment.NewLine}{node.Service.Process.Output}");
            using var process = Process.GetProcessById(node.Service.Process.Id);
            total += process.TotalProcessorTime.TotalSeconds;
        }

        return total;
    }

    /// <summary>
    /// A prewarm from the request to the job's completion (wall time on this client); fails unless it completed within
    /// <paramref name="timeout"/>, with the last output lines of this node and of <paramref name="peers"/> (the nodes
    /// sharing a distributed job) in the message.
    /// </summary>
    public async Task<Prewarmed> PrewarmAsync(string dataset, string? split, string encoder, int batch, int workers, CancellationToken token,
        bool distributed = false, TimeSpan? timeout = null, RemoteNode[]? peers = null, RemoteNode[]? cpu = null)
    {
        peers ??= [];
        var request = new PrewarmRequest { Dataset = dataset, BatchSize = (uint)batch, Workers = (uint)workers, Distributed = distributed };
        if (split is not null)
            request.Splits.Add(split);
        request.Encoders.Add(encoder);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
        deadline.CancelAfter(timeout ?? TimeSpan.FromMinutes(10));
        var cpuBefore = cpu is null ? 0 : CpuSeconds(cpu);
        var clock = Stopwatch.StartNew();
        PrewarmProgress? last = null;
        try
        {
            await foreach (var p in Client.PrewarmAsync(request, deadline.Token))
                last = p;
        }
        catch (Exception e) when (e is OperationCanceledException or Grpc.Core.RpcException { StatusCode: Grpc.Core.StatusCode.Cancelled } && !token.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"node {Name}: prewarm of {dataset} for {encoder}{(distributed ? " (distributed)" : "")} did not complete within {clock.Elapsed.TotalSeconds:0} s; last progress: {last}{Logs(peers)}", e);
        }

        clock.Stop();
        var cpuSeconds = cpu is null ? double.NaN : CpuSeconds(cpu) - cpuBefore;
        if (last is null || last.State != JobState.Completed)
            throw new InvalidOperationException($"node {Name}: prewarm of {dataset} for {encoder} ended {last?.State}: {last?.Message}{Logs(peers)}");
        Log($"node {Name}: prewarm {dataset}{(split is null ? "" : "/" + split)} {encoder}{(distributed ? " (distributed)" : "")}: {last.Processed:N0} items in {clock.Elapsed.TotalSeconds:0.00} s, encoded {last.Encoded:N0}, skipped {last.Skipped:N0} ({last.Message})");
        return new Prewarmed(clock.Elapsed.TotalSeconds, last, cpuSeconds);
    }

    /// <summary>One pass over a split through StreamDataset with labels; returns its items, after checking every batch has a row and a label per item.</summary>
    public async Task<long> StreamSplitAsync(string dataset, string split, string encoder, int rowBytes, uint epoch, CancellationToken token)
    {
        var request = new StreamDatasetRequest { Dataset = dataset, Split = split, BatchSize = StreamBatch, Shuffle = true, Seed = 7, Epoch = epoch, IncludeLabels = true };
        request.Encoders.Add(encoder);
        long items = 0, total = 0;
        await foreach (var batch in Client.StreamEpochPooledAsync(request, token))
        {
            var n = batch.Indices.Count;
            if (batch.Results[0].Embeddings.Length != n * rowBytes)
                throw new InvalidOperationException($"node {Name}: a batch of {n} items of {dataset}/{split} came with {batch.Results[0].Embeddings.Length} embedding bytes, not {n * rowBytes}");
            if (batch.Labels?.Groups?.GroupIds.Count != n || Engine.FoundMask.Count(batch.Labels.Found.Span, n) != n)
                throw new InvalidOperationException($"node {Name}: a batch of {n} items of {dataset}/{split} came without a label for every item");
            items += n;
            total = (long)batch.Total;
        }

        if (items != total)
            throw new InvalidOperationException($"node {Name}: streamed {items} items of {dataset}/{split}, whose size is {total}");
        return items;
    }

    /// <summary>This node's counters for <paramref name="encoder"/>'s namespace.</summary>
    public async Task<NamespaceStats> NamespaceAsync(string encoder, CancellationToken token)
    {
        var stats = await Client.GetStatsAsync(token);
        return stats.Namespaces.FirstOrDefault(n => n.Encoder == encoder)
            ?? throw new InvalidOperationException($"node {Name} reports no namespace for {encoder} (it has {string.Join(", ", stats.Namespaces.Select(n => n.Encoder))})");
    }

    public async Task<RemoteTierStats> RemoteAsync(CancellationToken token) => (await Client.GetStatsAsync(token)).Remote;

    public async Task<string> FingerprintAsync(string encoder, CancellationToken token) =>
        (await Client.ListEncodersAsync(token)).Single(e => e.Name == encoder).Fingerprint;

    private string Logs(RemoteNode[] peers) =>
        string.Concat(new[] { this }.Concat(peers).Select(n => $"{Environment.NewLine}--- node {n.Name}'s last output lines:{Environment.NewLine}{n.Service.Process.Output}"));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Service.DisposeAsync();
    }
}
