using System.Diagnostics;

namespace EmbedCache.Engine.Jobs;

public enum JobState
{
    Queued = 1,
    Running = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
}

/// <summary>What to fill: a dataset's splits for some encoders, in batches, with N encoder workers.</summary>
public sealed record PrewarmSpec(string Dataset, IReadOnlyList<string> Splits, IReadOnlyList<string> Encoders, int BatchSize, int Workers)
{
    /// <summary>Split into shards leased through the remote tier's cluster, so every node sharing it encodes a part.</summary>
    public bool Distributed { get; init; }

    /// <summary>Two requests for the same work attach to one running job.</summary>
    internal string Identity => $"{Dataset}\u001f{string.Join(',', Splits.Order(StringComparer.Ordinal))}\u001f{string.Join(',', Encoders.Order(StringComparer.Ordinal))}\u001f{Distributed}";
}

/// <summary>A point-in-time view of a job, as reported to callers.</summary>
public sealed record JobProgress(
    string Id, PrewarmSpec Spec, JobState State, long Total, long Processed, long Encoded, long Skipped,
    long Committed, double ItemsPerSecond, double? EtaSeconds, string Message)
{
    /// <summary>Shards and nodes of a distributed job (counters above are then cluster-wide); null for a local job.</summary>
    public ClusterProgress? Cluster { get; init; }
}

/// <summary>A distributed job's shards, and what each node has done of it.</summary>
public sealed record ClusterProgress(int Shards, int ShardsDone, int ShardsLeased, IReadOnlyList<NodeShare> Nodes);

/// <summary>One node's part of a distributed job: shards finished and leased now, embeddings encoded and skipped.</summary>
public sealed record NodeShare(string Node, int ShardsDone, int ShardsLeased, long Encoded, long Skipped);

/// <summary>Items <c>[Start, Start + Count)</c> of one split: a shard of a distributed prewarm.</summary>
public sealed record ShardRange(string Split, long Start, long Count);

/// <summary>Where a prewarm's time goes, summed over its threads (the stages overlap, so they add up to more than the wall time).</summary>
public enum JobStage
{
    /// <summary>Reading the dataset, storing labels, checking which items are already stored.</summary>
    Read,

    /// <summary>The encoder's forward passes, including tokenization and the dtype conversion.</summary>
    Encode,

    /// <summary>Writing encoded rows to the store.</summary>
    Write,

    /// <summary>Checkpoints taken by the job (its record, while running, and at the end).</summary>
    Checkpoint,
}

/// <summary>
/// A running or finished prewarm. Counters are in embeddings (items × encoders). Progress changes
/// wake <see cref="WaitForChangeAsync"/> so streams report without polling.
/// </summary>
public sealed class PrewarmJob
{
    private readonly Stopwatch _clock = new();
    private readonly CancellationTokenSource _cancel;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _total;
    private long _processed;
    private long _encoded;
    private long _skipped;
    private long _committed;
    private long _encodedAtStart;
    private readonly long[] _stageTicks = new long[4];
    private volatile JobState _state = JobState.Queued;
    private volatile string _message = "queued";

    internal PrewarmJob(string id, PrewarmSpec spec, CancellationToken stopping)
    {
        Id = id;
        Spec = spec;
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    /// <summary>A job that finished before the service last restarted, as it was persisted.</summary>
    internal static PrewarmJob Finished(string id, PrewarmSpec spec, JobState state, string message, long total, long processed, long encoded, long skipped, long committed)
    {
        var job = new PrewarmJob(id, spec, CancellationToken.None)
        {
            _total = total,
            _processed = processed,
            _encoded = encoded,
            _skipped = skipped,
            _committed = committed,
            _encodedAtStart = processed, // no rate: nothing ran in this process
            _state = state,
            _message = message,
        };
        return job;
    }

    public string Id { get; }

    public PrewarmSpec Spec { get; }

    /// <summary>The shard this run fills (a node's part of a distributed job); null: the whole spec.</summary>
    internal ShardRange? Range { get; init; }

    /// <summary>Shards and nodes, for a distributed job (set as the cluster reports them).</summary>
    internal ClusterProgress? Cluster { get; private set; }

    /// <summary>Called by <see cref="Cancel"/> besides cancelling this process's run (a distributed job tells the cluster).</summary>
    internal Action? OnCancel { get; set; }

    public JobState State => _state;

    public bool IsFinished => _state is JobState.Completed or JobState.Failed or JobState.Cancelled;

    /// <summary>Completes when the job has finished (in any state) or the service stops.</summary>
    public Task Completion { get; internal set; } = Task.CompletedTask;

    internal CancellationToken Token => _cancel.Token;

    internal bool CancelRequested { get; private set; }

    public void Cancel()
    {
        CancelRequested = true;
        OnCancel?.Invoke();
        _cancel.Cancel();
    }

    /// <summary>Takes a distributed job's cluster-wide counters (processed and the rest are absolute there).</summary>
    internal void Mirror(long total, long processed, long encoded, long skipped, long committed, ClusterProgress cluster)
    {
        Interlocked.Exchange(ref _total, total);
        Interlocked.Exchange(ref _processed, processed);
        Interlocked.Exchange(ref _encoded, encoded);
        Interlocked.Exchange(ref _skipped, skipped);
        Interlocked.Exchange(ref _committed, committed);
        // The rate counts embeddings encoded, cluster-wide.
        Interlocked.Exchange(ref _encodedAtStart, skipped);
        Cluster = cluster;
        Changed();
    }

    public JobProgress Snapshot()
    {
        var processed = Interlocked.Read(ref _processed);
        var total = Interlocked.Read(ref _total);
        var seconds = _clock.Elapsed.TotalSeconds;
        var work = processed - Interlocked.Read(ref _encodedAtStart);
        var rate = seconds > 0 ? work / seconds : 0;
        double? eta = IsFinished ? 0 : rate > 0 ? (total - processed) / rate : null;
        return new JobProgress(Id, Spec, _state, total, processed, Interlocked.Read(ref _encoded),
            Interlocked.Read(ref _skipped), Interlocked.Read(ref _committed), rate, eta, _message) { Cluster = Cluster };
    }

    /// <summary>Completes at the next change of progress or state.</summary>
    public Task WaitForChangeAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _changed).Task.WaitAsync(cancellationToken);

    internal void SetTotal(long total)
    {
        Interlocked.Exchange(ref _total, total);
        Changed();
    }

    internal void Start()
    {
        _clock.Start();
        SetState(JobState.Running, "running");
    }

    internal void AddSkipped(long n)
    {
        Interlocked.Add(ref _skipped, n);
        Interlocked.Add(ref _processed, n);
        // Skipped items take no encoder time: keep them out of the rate.
        Interlocked.Add(ref _encodedAtStart, n);
        Changed();
    }

    internal void AddEncoded(long n)
    {
        Interlocked.Add(ref _encoded, n);
        Interlocked.Add(ref _processed, n);
        Changed();
    }

    internal long Processed => Interlocked.Read(ref _processed);

    internal long Encoded => Interlocked.Read(ref _encoded);

    internal long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Adds the time since <paramref name="startTimestamp"/> (a <see cref="Stopwatch.GetTimestamp"/>) to a stage.</summary>
    internal void AddStageTime(JobStage stage, long startTimestamp) =>
        Interlocked.Add(ref _stageTicks[(int)stage], Stopwatch.GetTimestamp() - startTimestamp);

    /// <summary>Runs <paramref name="work"/> and adds its time to a stage.</summary>
    internal async Task TimeAsync(JobStage stage, Func<Task> work)
    {
        var start = Stopwatch.GetTimestamp();
        await work().ConfigureAwait(false);
        AddStageTime(stage, start);
    }

    /// <summary>Seconds spent in a stage so far.</summary>
    public double StageSeconds(JobStage stage) => (double)Interlocked.Read(ref _stageTicks[(int)stage]) / Stopwatch.Frequency;

    /// <summary>"5.3 s: encode 4.6 s, read 0.1 s, write 0.1 s, checkpoint 0.4 s" — the job's wall time and its stages.</summary>
    public string Timing() => FormattableString.Invariant(
        $"{_clock.Elapsed.TotalSeconds:0.0} s: encode {StageSeconds(JobStage.Encode):0.0} s, read {StageSeconds(JobStage.Read):0.0} s, write {StageSeconds(JobStage.Write):0.0} s, checkpoint {StageSeconds(JobStage.Checkpoint):0.0} s");

    /// <summary>Why the job's splits were completed on this node only, not on the cluster; null when they were shared (or there is no cluster).</summary>
    public string? NotSharedReason { get; private set; }

    internal void NotShared(string reason) => NotSharedReason = reason;

    internal void SetCommitted(long n)
    {
        Interlocked.Exchange(ref _committed, n);
        Changed();
    }

    internal void StopClock() => _clock.Stop();

    internal void SetState(JobState state, string message)
    {
        _state = state;
        _message = message;
        if (state is JobState.Completed or JobState.Failed or JobState.Cancelled)
            _clock.Stop();
        Changed();
    }

    private void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
