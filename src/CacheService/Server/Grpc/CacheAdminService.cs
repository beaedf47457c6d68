using System.Diagnostics;
using EmbedCache.Contract.V1;
using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Jobs;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>The ops API: prewarm jobs, stats, checkpoints, dropping namespaces.</summary>
internal sealed class CacheAdminService(CacheEngine engine, JobManager jobs, DateTimeOffset engineStartedAt) : AdminBinding.Base
{
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);

    public override async Task Prewarm(PrewarmRequest request, IServerStreamWriter<PrewarmProgress> responseStream, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Dataset))
            throw new InvalidRequestException("dataset", "must name a registered dataset or a path under the data root");
        var spec = new PrewarmSpec(request.Dataset, [.. request.Splits], [.. request.Encoders],
            checked((int)Math.Min(request.BatchSize, int.MaxValue)), checked((int)Math.Min(request.Workers, int.MaxValue)))
        {
            Distributed = request.Distributed,
        };
        var job = jobs.StartOrAttach(spec);
        var token = context.CancellationToken;

        // The job runs on its own: a caller that goes away stops receiving progress, not the job.
        await responseStream.WriteAsync(ContractMapping.ToContract(job.Snapshot()), token);
        if (!request.Follow)
            return;
        // Until the job ends, or stops with the service (it is then queued to resume on restart: its run is over here).
        while (!job.IsFinished && !job.Completion.IsCompleted)
        {
            // At most one message per interval while running, but the last one as soon as the job ends.
            var change = job.WaitForChangeAsync(token);
            await Task.WhenAll(change, Task.WhenAny(Task.Delay(ProgressInterval, token), job.Completion));
            await responseStream.WriteAsync(ContractMapping.ToContract(job.Snapshot()), token);
        }

        await job.Completion.WaitAsync(token);
        await responseStream.WriteAsync(ContractMapping.ToContract(job.Snapshot()), token);
    }

    public override Task<GetStatsResponse> GetStats(GetStatsRequest request, ServerCallContext context)
    {
        var response = new GetStatsResponse
        {
            UptimeSeconds = (DateTimeOffset.UtcNow - engineStartedAt).TotalSeconds,
            LastCheckpointUnixMs = engine.Store.LastCheckpoint is { } c ? c.Time.ToUnixTimeMilliseconds() : 0,
            LabelItems = (ulong)engine.Store.LabelItems,
            Remote = ContractMapping.ToContract(engine.Store.Remote?.Stats()),
        };
        // Several encoder names may share one namespace (the same model under two names).
        var entries = engine.Entries.ToLookup(e => e.Fingerprint);
        foreach (var ns in engine.Store.ListNamespaces())
        {
            var stats = new NamespaceStats
            {
                Encoder = ns.Encoder,
                Fingerprint = ns.Fingerprint.ToString(),
                Tier = ContractMapping.ToContract(ns.Tier),
                Items = (ulong)ns.Items,
                Bytes = (ulong)(ns.MemoryBytes + ns.DiskBytes),
                MemoryBytes = (ulong)ns.MemoryBytes,
                DiskBytes = (ulong)ns.DiskBytes,
                RemoteHits = (ulong)ns.RemoteHits,
                RemoteCorrupt = (ulong)ns.RemoteCorruptRows,
            };
            foreach (var entry in entries[ns.Fingerprint])
            {
                stats.Hits += (ulong)entry.Hits;
                stats.Misses += (ulong)entry.Misses;
                stats.Encoded += (ulong)entry.Encoded;
            }

            response.Namespaces.Add(stats);
        }

        return Task.FromResult(response);
    }

    public override async Task<CheckpointResponse> Checkpoint(CheckpointRequest request, ServerCallContext context)
    {
        var clock = Stopwatch.StartNew();
        var checkpoint = await engine.Store.CheckpointAsync(context.CancellationToken);
        return new CheckpointResponse { Token = checkpoint.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), DurationMs = clock.Elapsed.TotalMilliseconds };
    }

    public override async Task<DropNamespaceResponse> DropNamespace(DropNamespaceRequest request, ServerCallContext context)
    {
        Fingerprint fingerprint;
        if (!string.IsNullOrEmpty(request.Fingerprint))
        {
            if (!Fingerprint.TryParse(request.Fingerprint, out fingerprint))
                throw new InvalidRequestException("fingerprint", $"must be 32 hex digits (was {Echo.Quote(request.Fingerprint)})");
        }
        else if (!string.IsNullOrEmpty(request.Encoder))
        {
            fingerprint = engine.GetEncoder(request.Encoder).Fingerprint;
        }
        else
        {
            throw new InvalidRequestException("encoder", "name an encoder or a fingerprint to drop");
        }

        if (!engine.Store.ListNamespaces().Any(n => n.Fingerprint == fingerprint))
            throw new RpcException(new Status(StatusCode.NotFound, $"no stored namespace with fingerprint {fingerprint}"));
        var result = await engine.DropNamespaceAsync(fingerprint, context.CancellationToken);
        return new DropNamespaceResponse { ItemsDropped = (ulong)result.Items, BytesReclaimed = (ulong)result.BytesReclaimed };
    }

    public override Task<ListJobsResponse> ListJobs(ListJobsRequest request, ServerCallContext context)
    {
        var response = new ListJobsResponse();
        foreach (var job in jobs.List())
            response.Jobs.Add(ContractMapping.ToContract(job.Snapshot()));
        return Task.FromResult(response);
    }

    public override async Task<CancelJobResponse> CancelJob(CancelJobRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.JobId))
            throw new InvalidRequestException("job_id", "must not be empty");
        var job = jobs.Get(request.JobId) ?? throw new RpcException(new Status(StatusCode.NotFound, $"no job {Echo.Quote(request.JobId)}"));
        job.Cancel();
        try
        {
            await job.Completion.WaitAsync(TimeSpan.FromSeconds(30), context.CancellationToken);
        }
        catch (TimeoutException)
        {
            // Reported as it stands; the job stops at its next batch.
        }

        return new CancelJobResponse { Job = ContractMapping.ToContract(job.Snapshot()) };
    }
}
