using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Jobs;
using EmbedCache.Engine.Remote;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// The status page on the HTTP port: <c>/</c> serves one static HTML page (an embedded resource,
/// plain JS, no build step) that polls <c>/api/status</c>, a JSON snapshot of encoders, tiers,
/// hit rate, fill jobs and the running totals the page turns into a throughput chart.
/// </summary>
public static class StatusEndpoints
{
    private const string PageResource = "EmbedCache.Server.StatusPage.index.html";

    public static void MapStatusPage(this WebApplication app)
    {
        var page = LoadPage();
        app.MapGet("/", () => Results.Content(page, "text/html; charset=utf-8"));
        app.MapGet("/api/status", (EngineHost host) =>
        {
            try
            {
                return Results.Json(Snapshot(host));
            }
            catch (ServiceUnavailableException e)
            {
                return Results.Problem(e.Reason, statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        });
    }

    private static string LoadPage()
    {
        using var stream = typeof(StatusEndpoints).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"embedded resource {PageResource} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    internal static ServiceStatus Snapshot(EngineHost host)
    {
        var engine = host.Engine;
        var jobs = host.Jobs;
        var now = DateTimeOffset.UtcNow;

        var encoders = new List<EncoderStatus>();
        long hits = 0, misses = 0, encoded = 0;
        foreach (var e in engine.Entries)
        {
            encoders.Add(new EncoderStatus(e.Name, e.Fingerprint.ToString(), e.Dim, Lower(e.DType), Lower(e.Tier),
                e.Encoder.InputKind.ToString(), e.Hits, e.Misses, e.Encoded));
            hits += e.Hits;
            misses += e.Misses;
            encoded += e.Encoded;
        }

        encoders.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));

        var namespaces = new List<NamespaceStatus>();
        var tiers = new Dictionary<Tier, (int Namespaces, long Items, long Memory, long Disk)>();
        foreach (var ns in engine.Store.ListNamespaces())
        {
            namespaces.Add(new NamespaceStatus(ns.Encoder, ns.Fingerprint.ToString(), Lower(ns.Tier), ns.Registered, ns.Items,
                ns.GpuBytes, ns.MemoryBytes, ns.DiskBytes, ns.Hits, ns.Misses, ns.GpuReservedBytes, ns.GpuErrors, ns.GpuTableOff));
            tiers.TryGetValue(ns.Tier, out var t);
            tiers[ns.Tier] = (t.Namespaces + 1, t.Items + ns.Items, t.Memory + ns.MemoryBytes + ns.GpuBytes, t.Disk + ns.DiskBytes);
        }

        var tierList = new List<TierStatus>();
        foreach (var tier in (ReadOnlySpan<Tier>)[Tier.Gpu, Tier.Cpu, Tier.Disk])
        {
            if (tiers.TryGetValue(tier, out var t))
                tierList.Add(new TierStatus(Lower(tier), t.Namespaces, t.Items, t.Memory, t.Disk));
        }

        var jobList = new List<JobStatus>();
        foreach (var job in jobs.List())
        {
            var p = job.Snapshot();
            jobList.Add(new JobStatus(p.Id, p.Spec.Dataset, p.Spec.Splits, p.Spec.Encoders, Lower(p.State), p.Total, p.Processed,
                p.Encoded, p.Skipped, p.Committed, p.ItemsPerSecond, p.EtaSeconds, p.Message) { Cluster = p.Cluster });
        }

        var checkpoint = engine.Store.LastCheckpoint is { } c
            ? new CheckpointStatus(c.Version, c.Time, c.Persistent, c.Duration.TotalMilliseconds)
            : null;
        var lookups = hits + misses;
        var saveDir = engine.Store.SaveDir;
        var (gpuBudget, gpuReserved) = engine.Store.GpuMemory;
        return new ServiceStatus(now, (now - host.StartedAt).TotalSeconds, hits, misses, lookups == 0 ? null : (double)hits / lookups,
            encoded, encoders, tierList, namespaces, jobList, checkpoint,
            new SaveDirStatus(engine.Store.Persistent, saveDir.Failing, saveDir.WriteErrors, saveDir.LastCause),
            new GpuStatus(engine.Store.CudaAvailable, gpuBudget, gpuReserved, engine.Store.GpuTierFallbacks))
        {
            Remote = engine.Store.Remote?.Stats() is { } r
                ? new RemoteStatus(r.Endpoints, r.Connected, r.Breaker switch { BreakerState.Open => "open", BreakerState.HalfOpen => "half_open", _ => "closed" },
                    r.BreakerOpened, r.Hits, r.Misses, r.Corrupt, r.Errors, r.Timeouts, r.Written, r.WritesQueued, r.QueueBytes, r.Dropped, r.LastError, r.LastErrorAt)
                : null,
        };
    }

    private static string Lower<T>(T value)
        where T : struct, Enum => value.ToString().ToLowerInvariant();
}

/// <summary>The <c>/api/status</c> document. Counters are totals since start; the page derives rates from successive polls.</summary>
public sealed record ServiceStatus(
    DateTimeOffset Time, double UptimeSeconds, long Hits, long Misses, double? HitRate, long Encoded,
    IReadOnlyList<EncoderStatus> Encoders, IReadOnlyList<TierStatus> Tiers, IReadOnlyList<NamespaceStatus> Namespaces,
    IReadOnlyList<JobStatus> Jobs, CheckpointStatus? LastCheckpoint, SaveDirStatus SaveDir, GpuStatus Gpu)
{
    /// <summary>The remote tier (Store:Remote), or null without one.</summary>
    public RemoteStatus? Remote { get; init; }
}

/// <summary>
/// The remote tier: the cluster's endpoints, whether the client is connected, the circuit breaker (closed, open,
/// half_open) and how often it opened, reads of rows the local tiers missed (hits, misses, values failing their
/// checksum), errors and timeouts, and the write-behind queue (written, queued, dropped when full).
/// </summary>
public sealed record RemoteStatus(
    IReadOnlyList<string> Endpoints, bool Connected, string Breaker, long BreakerOpened, long Hits, long Misses, long Corrupt,
    long Errors, long Timeouts, long Written, long Queued, long QueueBytes, long Dropped, string? LastError, DateTimeOffset? LastErrorAt);

/// <summary>
/// The Gpu tier: whether its tables are on a CUDA device (else host tensors), the device budget shared by all Gpu
/// namespaces, what their tables reserved of it, and how many Gpu namespaces got none and use the Cpu tier.
/// </summary>
public sealed record GpuStatus(bool Cuda, long BudgetBytes, long ReservedBytes, long Fallbacks);

public sealed record EncoderStatus(string Name, string Fingerprint, int Dim, string Dtype, string Tier, string Input, long Hits, long Misses, long Encoded);

public sealed record TierStatus(string Tier, int Namespaces, long Items, long MemoryBytes, long DiskBytes);

public sealed record NamespaceStatus(
    string Encoder, string Fingerprint, string Tier, bool Registered, long Items, long GpuBytes, long MemoryBytes, long DiskBytes, long Hits, long Misses,
    long GpuReservedBytes, long GpuErrors, bool GpuTableOff);

public sealed record JobStatus(
    string Id, string Dataset, IReadOnlyList<string> Splits, IReadOnlyList<string> Encoders, string State, long Total, long Processed,
    long Encoded, long Skipped, long Committed, double ItemsPerSecond, double? EtaSeconds, string Message)
{
    /// <summary>A distributed job's shards and nodes (its counters are then cluster-wide); null for a local job.</summary>
    public ClusterProgress? Cluster { get; init; }
}

/// <param name="Failing">True while log writes to the SaveDir fail and are retried (full or read-only file system).</param>
public sealed record SaveDirStatus(bool Persistent, bool Failing, long WriteErrors, string? LastError);

public sealed record CheckpointStatus(long Version, DateTimeOffset Time, bool Persistent, double DurationMs);
