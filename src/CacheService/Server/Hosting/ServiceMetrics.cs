using EmbedCache.Engine.Jobs;
using Prometheus;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// Prometheus metrics at /metrics. Request latency and outcomes are observed as calls finish;
/// cache, store and job figures are read from the engine on each scrape, so the hot path does
/// no metric work beyond what the engine counts anyway. One registry per host (tests run several).
/// </summary>
public sealed class ServiceMetrics
{
    private readonly Histogram _requestDuration;
    private readonly Counter _requests;
    private readonly Counter _lookups;
    private readonly Counter _encoded;
    private readonly Gauge _items;
    private readonly Gauge _bytes;
    private readonly Gauge _jobProcessed;
    private readonly Gauge _jobTotal;
    private readonly Gauge _jobCommitted;
    private readonly Gauge _lastCheckpoint;
    private readonly Gauge _tierItems;
    private readonly Gauge _tierBytes;
    private readonly Counter _saveDirErrors;
    private readonly Gauge _saveDirFailing;
    private readonly Gauge _gpuBytes;
    private readonly Gauge _gpuTableBytes;
    private readonly Counter _gpuTableErrors;
    private readonly Gauge _gpuTableOff;
    private readonly Gauge _gpuFallbacks;
    private readonly Gauge _sharedRings;
    private readonly Counter _sharedStreams;
    private readonly Counter _remoteReads;
    private readonly Counter _remoteErrors;
    private readonly Counter _remoteWrites;
    private readonly Gauge _remoteQueue;
    private readonly Gauge _remoteBreaker;
    private readonly Counter _remoteBreakerOpened;

    public ServiceMetrics(EngineHost host, Grpc.SharedStreams shared)
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        _requestDuration = factory.CreateHistogram("embedcache_request_duration_seconds", "gRPC call duration, by method.",
            new HistogramConfiguration { LabelNames = ["method"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        _requests = factory.CreateCounter("embedcache_requests_total", "gRPC calls by method and status code.",
            new CounterConfiguration { LabelNames = ["method", "code"] });
        _lookups = factory.CreateCounter("embedcache_lookup_keys_total", "Keys looked up, by encoder and result (hit or miss).",
            new CounterConfiguration { LabelNames = ["encoder", "result"] });
        _encoded = factory.CreateCounter("embedcache_encoded_total", "Items encoded (read-through and prewarm), by encoder.",
            new CounterConfiguration { LabelNames = ["encoder"] });
        _items = factory.CreateGauge("embedcache_namespace_items", "Stored embeddings per namespace.",
            new GaugeConfiguration { LabelNames = ["encoder", "fingerprint", "tier"] });
        _bytes = factory.CreateGauge("embedcache_namespace_bytes", "Bytes per namespace, in memory or on disk.",
            new GaugeConfiguration { LabelNames = ["encoder", "fingerprint", "tier", "where"] });
        _jobProcessed = factory.CreateGauge("embedcache_prewarm_processed", "Embeddings processed by a prewarm job.",
            new GaugeConfiguration { LabelNames = ["job", "dataset", "state"] });
        _jobTotal = factory.CreateGauge("embedcache_prewarm_total", "Embeddings a prewarm job covers.",
            new GaugeConfiguration { LabelNames = ["job", "dataset", "state"] });
        _jobCommitted = factory.CreateGauge("embedcache_prewarm_committed", "Embeddings of a prewarm job made durable.",
            new GaugeConfiguration { LabelNames = ["job", "dataset", "state"] });
        _lastCheckpoint = factory.CreateGauge("embedcache_last_checkpoint_timestamp_seconds", "Unix time of the last completed checkpoint.");
        CheckpointDuration = factory.CreateHistogram("embedcache_checkpoint_duration_seconds", "Checkpoint duration.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        _tierItems = factory.CreateGauge("embedcache_tier_items", "Stored embeddings per tier (all namespaces in it).",
            new GaugeConfiguration { LabelNames = ["tier"] });
        _tierBytes = factory.CreateGauge("embedcache_tier_bytes", "Bytes per tier, in memory or on disk.",
            new GaugeConfiguration { LabelNames = ["tier", "where"] });
        _saveDirErrors = factory.CreateCounter("embedcache_savedir_write_errors_total",
            "Writes to the SaveDir that failed (full or read-only file system, I/O errors); log writes are retried.");
        _saveDirFailing = factory.CreateGauge("embedcache_savedir_failing",
            "1 while log writes to the SaveDir are failing and being retried: nothing newer than the last checkpoint can become durable.");
        _gpuBytes = factory.CreateGauge("embedcache_gpu_memory_bytes",
            "Device memory of the Gpu tier: the budget (Store:GpuMemoryBytes, shared by all Gpu namespaces) and what tables reserved of it.",
            new GaugeConfiguration { LabelNames = ["kind"] });
        _gpuTableBytes = factory.CreateGauge("embedcache_gpu_table_bytes", "Device bytes of a namespace's Gpu table: reserved, and used by rows.",
            new GaugeConfiguration { LabelNames = ["encoder", "fingerprint", "kind"] });
        _gpuTableErrors = factory.CreateCounter("embedcache_gpu_table_errors_total",
            "Device errors of a Gpu table (each request was served from the store instead).",
            new CounterConfiguration { LabelNames = ["encoder", "fingerprint"] });
        _gpuTableOff = factory.CreateGauge("embedcache_gpu_table_off", "1 once repeated device errors switched a namespace's Gpu table off.",
            new GaugeConfiguration { LabelNames = ["encoder", "fingerprint"] });
        _gpuFallbacks = factory.CreateGauge("embedcache_gpu_tier_fallbacks",
            "Gpu-tier namespaces that got no device memory (budget spent or the device refused) and are served from the Cpu tier.");
        _sharedRings = factory.CreateGauge("embedcache_shared_memory_rings", "Shared-memory epoch streams open now (one ring each).");
        _sharedStreams = factory.CreateCounter("embedcache_shared_memory_streams_total", "Shared-memory epoch streams opened since start.");
        _remoteReads = factory.CreateCounter("embedcache_remote_reads_total",
            "Rows the local tiers missed, read from the remote tier, by result: hit, miss, corrupt (failed its checksum: treated as a miss, never served).",
            new CounterConfiguration { LabelNames = ["result"] });
        _remoteErrors = factory.CreateCounter("embedcache_remote_errors_total", "Remote tier calls that failed, by kind (timeout, or any other error).",
            new CounterConfiguration { LabelNames = ["kind"] });
        _remoteWrites = factory.CreateCounter("embedcache_remote_writes_total", "Writes to the remote tier (write-behind), by outcome: written, dropped (queue full).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _remoteQueue = factory.CreateGauge("embedcache_remote_write_queue", "Writes waiting for the remote tier: entries and bytes.",
            new GaugeConfiguration { LabelNames = ["unit"] });
        _remoteBreaker = factory.CreateGauge("embedcache_remote_breaker_open", "1 while the remote tier's circuit breaker skips the cluster (open or probing), else 0.");
        _remoteBreakerOpened = factory.CreateCounter("embedcache_remote_breaker_opened_total", "Times the remote tier's circuit breaker opened.");
        DotNetStats.Register(Registry);
        Registry.AddBeforeCollectCallback(() => Collect(host, shared));
        // Checkpoints are taken inside the store (periodic, after fills, admin, shutdown); the store
        // reports each one with its duration. The engine exists once it has started (after recovery).
        host.Ready.ContinueWith(ready =>
        {
            try
            {
                if (ready.IsCompletedSuccessfully)
                    host.Engine.Store.CheckpointCompleted += (_, c) => CheckpointDuration.Observe(c.Duration.TotalSeconds);
            }
            catch (ServiceUnavailableException)
            {
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public CollectorRegistry Registry { get; }

    public Histogram CheckpointDuration { get; }

    public void ObserveRequest(string method, string code, double seconds)
    {
        _requestDuration.WithLabels(method).Observe(seconds);
        _requests.WithLabels(method, code).Inc();
    }

    private void Collect(EngineHost host, Grpc.SharedStreams shared)
    {
        // Shared-memory streams are the host's, not the engine's: reported while the engine is still starting too.
        _sharedRings.Set(shared.Open);
        _sharedStreams.IncTo(shared.Total);

        Engine.Caching.CacheEngine engine;
        JobManager jobs;
        try
        {
            engine = host.Engine;
            jobs = host.Jobs;
        }
        catch (ServiceUnavailableException)
        {
            return;
        }

        foreach (var e in engine.Entries)
        {
            _lookups.WithLabels(e.Name, "hit").IncTo(e.Hits);
            _lookups.WithLabels(e.Name, "miss").IncTo(e.Misses);
            _encoded.WithLabels(e.Name).IncTo(e.Encoded);
        }

        Span<long> tierItems = stackalloc long[4];
        Span<long> tierMemory = stackalloc long[4];
        Span<long> tierDisk = stackalloc long[4];
        foreach (var ns in engine.Store.ListNamespaces())
        {
            var t = (int)ns.Tier;
            tierItems[t] += ns.Items;
            tierMemory[t] += ns.MemoryBytes + ns.GpuBytes;
            tierDisk[t] += ns.DiskBytes;
            var fp = ns.Fingerprint.ToString();
            var tier = ns.Tier.ToString().ToLowerInvariant();
            _items.WithLabels(ns.Encoder, fp, tier).Set(ns.Items);
            _bytes.WithLabels(ns.Encoder, fp, tier, "memory").Set(ns.MemoryBytes);
            _bytes.WithLabels(ns.Encoder, fp, tier, "disk").Set(ns.DiskBytes);
            if (ns.Tier == Engine.Embeddings.Tier.Gpu)
            {
                _gpuTableBytes.WithLabels(ns.Encoder, fp, "reserved").Set(ns.GpuReservedBytes);
                _gpuTableBytes.WithLabels(ns.Encoder, fp, "used").Set(ns.GpuBytes);
                _gpuTableErrors.WithLabels(ns.Encoder, fp).IncTo(ns.GpuErrors);
                _gpuTableOff.WithLabels(ns.Encoder, fp).Set(ns.GpuTableOff ? 1 : 0);
            }
        }

        var (gpuBudget, gpuReserved) = engine.Store.GpuMemory;
        _gpuBytes.WithLabels("budget").Set(gpuBudget);
        _gpuBytes.WithLabels("reserved").Set(gpuReserved);
        _gpuFallbacks.Set(engine.Store.GpuTierFallbacks);

        foreach (var tier in (ReadOnlySpan<Engine.Embeddings.Tier>)[Engine.Embeddings.Tier.Gpu, Engine.Embeddings.Tier.Cpu, Engine.Embeddings.Tier.Disk])
        {
            var name = tier.ToString().ToLowerInvariant();
            _tierItems.WithLabels(name).Set(tierItems[(int)tier]);
            _tierBytes.WithLabels(name, "memory").Set(tierMemory[(int)tier]);
            _tierBytes.WithLabels(name, "disk").Set(tierDisk[(int)tier]);
        }

        foreach (var job in jobs.List())
        {
            var p = job.Snapshot();
            var state = p.State.ToString().ToLowerInvariant();
            _jobProcessed.WithLabels(p.Id, p.Spec.Dataset, state).Set(p.Processed);
            _jobTotal.WithLabels(p.Id, p.Spec.Dataset, state).Set(p.Total);
            _jobCommitted.WithLabels(p.Id, p.Spec.Dataset, state).Set(p.Committed);
        }

        if (engine.Store.Remote?.Stats() is { } remote)
        {
            _remoteReads.WithLabels("hit").IncTo(remote.Hits);
            _remoteReads.WithLabels("miss").IncTo(remote.Misses);
            _remoteReads.WithLabels("corrupt").IncTo(remote.Corrupt);
            _remoteErrors.WithLabels("timeout").IncTo(remote.Timeouts);
            _remoteErrors.WithLabels("other").IncTo(Math.Max(0, remote.Errors - remote.Timeouts));
            _remoteWrites.WithLabels("written").IncTo(remote.Written);
            _remoteWrites.WithLabels("dropped").IncTo(remote.Dropped);
            _remoteQueue.WithLabels("entries").Set(Math.Max(0, remote.WritesQueued));
            _remoteQueue.WithLabels("bytes").Set(Math.Max(0, remote.QueueBytes));
            _remoteBreaker.Set(remote.Breaker == Engine.Remote.BreakerState.Closed ? 0 : 1);
            _remoteBreakerOpened.IncTo(remote.BreakerOpened);
        }

        _saveDirErrors.IncTo(engine.Store.SaveDir.WriteErrors);
        _saveDirFailing.Set(engine.Store.SaveDir.Failing ? 1 : 0);
        if (engine.Store.LastCheckpoint is { } c)
            _lastCheckpoint.Set(c.Time.ToUnixTimeMilliseconds() / 1000.0);
    }
}
