using System.Text.Json;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Storage;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Jobs;

/// <summary>
/// Runs prewarm jobs. A job is recorded in the store (and checkpointed) before it starts, so a
/// service that is killed resumes it on the next start; items already stored are skipped, so
/// committed work is never encoded again.
/// </summary>
public sealed partial class JobManager : IAsyncDisposable
{
    private const string IndexKey = "jobs";
    private readonly CacheEngine _engine;
    private readonly JobOptions _options;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PrewarmJob> _jobs = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _concurrency;
    private readonly Lock _lock = new();
    private readonly ClusterPrewarm? _cluster;
    private int _disposed;

    public JobManager(CacheEngine engine, JobOptions? options = null)
    {
        _engine = engine;
        _options = options ?? new JobOptions();
        _logger = engine.LoggerFactory.CreateLogger<JobManager>();
        _concurrency = new SemaphoreSlim(_options.MaxConcurrentJobs);
        // With a remote tier, this node takes shards of distributed jobs started on any node that shares the cluster.
        if (engine.Store.Remote is { } remote)
            _cluster = new ClusterPrewarm(engine, remote, _options, engine.LoggerFactory.CreateLogger<ClusterPrewarm>());
    }

    /// <summary>Starts a job, or returns the running one that does the same work.</summary>
    public PrewarmJob StartOrAttach(PrewarmSpec spec)
    {
        var normalized = Normalize(spec);
        lock (_lock)
        {
            // Disposed: the service is stopping (DisposeAsync waits under this lock for the jobs it saw).
            if (Volatile.Read(ref _disposed) != 0)
                throw new JobsStoppedException();
            foreach (var running in _jobs.Values)
            {
                if (!running.IsFinished && running.Spec.Identity == normalized.Identity)
                    return running;
            }

            var job = new PrewarmJob(Guid.NewGuid().ToString("N")[..12], normalized, _stopping.Token);
            _jobs[job.Id] = job;
            Persist(job);
            job.Completion = Task.Run(() => RunAsync(job));
            return job;
        }
    }

    /// <summary>
    /// Restarts jobs that were queued or running when the service last stopped, and lists the remembered finished
    /// ones again (as they ended: state, message and counts).
    /// </summary>
    public int ResumePersisted()
    {
        var resumed = 0;
        using var lease = _engine.Sessions.Rent();
        foreach (var id in LoadIndex(lease.Session))
        {
            var bytes = lease.Session.GetMetadata(JobKey(id));
            if (bytes is null)
                continue;
            var record = JsonSerializer.Deserialize<JobRecord>(bytes);
            if (record is null)
                continue;
            if (record.State is not (JobState.Queued or JobState.Running))
            {
                lock (_lock)
                {
                    if (!_jobs.ContainsKey(id))
                        _jobs[id] = PrewarmJob.Finished(id, record.Spec, record.State, record.Message ?? record.State.ToString().ToLowerInvariant(),
                            record.Total, record.Processed, record.Encoded, record.Skipped, record.Committed);
                }

                continue;
            }

            lock (_lock)
            {
                if (_jobs.ContainsKey(id))
                    continue;
                var job = new PrewarmJob(id, record.Spec, _stopping.Token);
                _jobs[id] = job;
                job.Completion = Task.Run(() => RunAsync(job));
            }

            Resumed(_logger, id, record.Spec.Dataset);
            resumed++;
        }

        return resumed;
    }

    /// <summary>This node's jobs, and the distributed jobs other nodes started (as the cluster last reported them).</summary>
    public IReadOnlyList<PrewarmJob> List()
    {
        lock (_lock)
        {
            var others = (_cluster?.Views ?? []).Where(v => !_jobs.ContainsKey(v.Id));
            return [.. _jobs.Values.Concat(others).OrderBy(j => j.Id, StringComparer.Ordinal)];
        }
    }

    public PrewarmJob? Get(string id)
    {
        lock (_lock)
            return _jobs.GetValueOrDefault(id) ?? _cluster?.Views.FirstOrDefault(v => v.Id == id);
    }

    private PrewarmSpec Normalize(PrewarmSpec spec)
    {
        var dataset = _engine.Datasets.Resolve(spec.Dataset);
        var splits = spec.Splits.Count == 0 ? dataset.Splits.Order(StringComparer.Ordinal).ToList() : spec.Splits.Distinct().ToList();
        foreach (var split in splits)
        {
            if (!dataset.HasSplit(split))
                throw new InvalidRequestException("splits", $"dataset {Echo.Quote(spec.Dataset)} has no split {Echo.Quote(split)} (splits: {string.Join(", ", dataset.Splits)})");
        }

        List<string> encoders;
        if (spec.Encoders.Count == 0)
        {
            encoders = _engine.Entries.Where(e => FillPipeline.Accepts(e, dataset)).Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
            if (encoders.Count == 0)
                throw new InvalidRequestException("encoders", $"no encoder accepts the features of dataset {Echo.Quote(spec.Dataset)}");
        }
        else
        {
            encoders = spec.Encoders.Distinct().ToList();
            foreach (var name in encoders)
            {
                var entry = _engine.GetEncoder(name);
                if (!FillPipeline.Accepts(entry, dataset))
                    throw new InvalidRequestException("encoders", FillPipeline.Mismatch(entry, dataset)!);
            }
        }

        if (spec.Distributed && _cluster is null)
            throw new InvalidRequestException("distributed", "a distributed prewarm needs a remote tier: set Store:Remote:Endpoints on every node that shares it");
        if (spec.BatchSize is < 0 or > JobOptions.MaxBatchSize)
            throw new InvalidRequestException("batch_size", $"must be between 1 and {JobOptions.MaxBatchSize} (was {spec.BatchSize})");
        if (spec.Workers < 0)
            throw new InvalidRequestException("workers", $"must be positive (was {spec.Workers})");
        if (spec.Workers > _options.MaxWorkers)
            throw new LimitExceededException($"workers: {spec.Workers} workers for one job; the limit is Jobs:MaxWorkers = {_options.MaxWorkers}");
        var batch = spec.BatchSize == 0 ? _options.DefaultBatchSize : spec.BatchSize;
        var workers = spec.Workers == 0 ? 1 : spec.Workers;
        return new PrewarmSpec(spec.Dataset, splits, encoders, batch, workers) { Distributed = spec.Distributed };
    }

    private async Task RunAsync(PrewarmJob job)
    {
        if (job.Spec.Distributed)
        {
            await FollowClusterJobAsync(job);
            return;
        }

        try
        {
            await _concurrency.WaitAsync(job.Token);
        }
        catch (OperationCanceledException)
        {
            Finish(job, job.CancelRequested ? JobState.Cancelled : JobState.Queued, job.CancelRequested ? "cancelled" : "stopped with the service; resumes on restart");
            return;
        }

        try
        {
            await RunToEndAsync(job, "stopped with the service; resumes on restart", async () =>
            {
                job.Start();
                Persist(job);
                // The job record must survive a crash so the job resumes: a checkpoint makes it durable before the first
                // item is read, so a job that has processed anything is one the next start resumes. (Beside the first
                // batches, a checkpoint slowed by load could still be running when the service was killed, and the job
                // was gone after the restart.)
                await job.TimeAsync(JobStage.Checkpoint, () => _engine.Store.CheckpointAsync(job.Token));
                await new FillPipeline(_engine, job, _options).RunAsync();

                job.StopClock();
                var timing = job.Timing();
                Finish(job, JobState.Completed, "completed in " + timing
                    + (job.NotSharedReason is { } why ? $"; not marked complete on the cluster ({why}): prewarm again once it is back" : ""));
                var done = job.Snapshot();
                Completed(_logger, job.Id, done.Encoded, done.Skipped, timing);
            });
        }
        finally
        {
            _concurrency.Release();
        }
    }

    /// <summary>
    /// A distributed job started here: recorded on the cluster (where every node's worker, this one's too, takes its
    /// shards), then followed until it ends there. It holds no slot of <see cref="JobOptions.MaxConcurrentJobs"/>: the
    /// shards run in the nodes' workers.
    /// </summary>
    private Task FollowClusterJobAsync(PrewarmJob job) =>
        RunToEndAsync(job, "stopped with the service; the cluster's nodes go on, and this node follows the job again on restart", async () =>
        {
            if (_cluster is null)
                throw new InvalidOperationException("a distributed job was resumed on a node without a remote tier: set Store:Remote:Endpoints");
            job.Start();
            Persist(job);
            await _cluster.CreateAsync(job);
            var (state, message) = await _cluster.FollowAsync(job);
            job.StopClock();
            Finish(job, state, message);
        });

    /// <summary>
    /// Runs a job's work, which finishes the job itself when it succeeds, and records how it ended otherwise: cancelled,
    /// stopped with the service (left queued, with <paramref name="stopped"/>, so the next start resumes it), or failed.
    /// </summary>
    private async Task RunToEndAsync(PrewarmJob job, string stopped, Func<Task> work)
    {
        try
        {
            await work();
        }
        catch (OperationCanceledException) when (job.CancelRequested)
        {
            Finish(job, JobState.Cancelled, "cancelled");
        }
        catch (OperationCanceledException)
        {
            // Service stopping: leave the record Running so the next start resumes it.
            job.SetState(JobState.Queued, stopped);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Failed(_logger, job.Id, e.Message);
            Finish(job, JobState.Failed, e.Message);
        }
    }

    private void Finish(PrewarmJob job, JobState state, string message)
    {
        job.SetState(state, message);
        if (state != JobState.Queued)
            Persist(job);
    }

    private void Persist(PrewarmJob job)
    {
        using var lease = _engine.Sessions.Rent();
        var session = lease.Session;
        var p = job.Snapshot();
        var record = new JobRecord(job.Id, job.Spec, p.State)
        {
            Message = p.Message, Total = p.Total, Processed = p.Processed, Encoded = p.Encoded, Skipped = p.Skipped, Committed = p.Committed,
        };
        session.PutMetadata(JobKey(job.Id), JsonSerializer.SerializeToUtf8Bytes(record));
        lock (_lock)
        {
            var index = LoadIndex(session);
            if (!index.Contains(job.Id))
            {
                index.Add(job.Id);
                // Keep the index bounded: forget the oldest finished jobs.
                while (index.Count > _options.MaxRememberedJobs)
                    index.RemoveAt(0);
                session.PutMetadata(IndexKey, JsonSerializer.SerializeToUtf8Bytes(index));
            }
        }
    }

    private static List<string> LoadIndex(StoreSession session)
    {
        var bytes = session.GetMetadata(IndexKey);
        return bytes is null ? [] : JsonSerializer.Deserialize<List<string>>(bytes) ?? [];
    }

    private static string JobKey(string id) => $"job\u001f{id}";

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopping.CancelAsync();
        if (_cluster is not null)
            await _cluster.DisposeAsync();
        Task[] running;
        lock (_lock)
            running = _jobs.Values.Select(j => j.Completion).ToArray();
        try
        {
            await Task.WhenAll(running);
        }
        catch (Exception e) when (e is OperationCanceledException or AggregateException)
        {
        }

        _stopping.Dispose();
        _concurrency.Dispose();
    }

    /// <summary>A job as persisted: enough to resume it, or, once finished, to list it after a restart.</summary>
    private sealed record JobRecord(string Id, PrewarmSpec Spec, JobState State)
    {
        public string? Message { get; init; }

        public long Total { get; init; }

        public long Processed { get; init; }

        public long Encoded { get; init; }

        public long Skipped { get; init; }

        public long Committed { get; init; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Resuming prewarm job {JobId} of dataset {Dataset}")]
    private static partial void Resumed(ILogger logger, string jobId, string dataset);

    [LoggerMessage(Level = LogLevel.Information, Message = "Prewarm job {JobId} completed: {Encoded} encoded, {Skipped} already cached, in {Timing}")]
    private static partial void Completed(ILogger logger, string jobId, long encoded, long skipped, string timing);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Prewarm job {JobId} failed: {Reason}")]
    private static partial void Failed(ILogger logger, string jobId, string reason);
}

/// <summary>Limits and defaults for prewarm jobs.</summary>
public sealed class JobOptions
{
    public const int MaxBatchSize = 4096;

    public int DefaultBatchSize { get; set; } = 64;

    public int MaxWorkers { get; set; } = Math.Max(1, Environment.ProcessorCount * 2);

    public int MaxConcurrentJobs { get; set; } = 2;

    /// <summary>Checkpoint at least this often while a job writes, so committed progress advances.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromSeconds(10);

    public int MaxRememberedJobs { get; set; } = 200;
}

/// <summary>A job was asked for after the job manager stopped: the service is shutting down.</summary>
public sealed class JobsStoppedException()
    : EngineException(ErrorKind.Unavailable, "the service is shutting down (prewarm jobs are stopped); retry");
