using System.Diagnostics;
using FASTER.core;
using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Takes the store's checkpoints: a FASTER checkpoint of each of the three stores, started together while writes are
/// shut out (so the counts it records are exact), committed by one manifest once all are durable; periodically, on
/// demand, after a drop and on dispose. Holds the admin lock that serialises checkpoints and drops.
/// </summary>
internal sealed class CheckpointCoordinator : IDisposable
{
    private readonly KvStore[] _stores;
    private readonly PutGate _gate;
    private readonly SaveDirHealth _saveDir;
    private readonly NamespaceRegistry _namespaces;
    private readonly Func<long> _labelItems;
    private readonly Action<StoreCheckpoint> _published;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _periodic;
    private Manifest? _manifest;
    private long _version;
    private StoreCheckpoint? _lastCheckpoint;
    private InFlightCheckpoint? _inFlight;

    /// <param name="manifest">The checkpoint recovered at open, or null.</param>
    /// <param name="labelItems">The counted records, read while writes are shut out.</param>
    /// <param name="published">Told of each committed checkpoint.</param>
    public CheckpointCoordinator(string root, bool persistent, KvStore[] stores, PutGate gate, SaveDirHealth saveDir, NamespaceRegistry namespaces,
        Manifest? manifest, Func<long> labelItems, Action<StoreCheckpoint> published, ILogger logger)
    {
        Root = root;
        Persistent = persistent;
        _stores = stores;
        _gate = gate;
        _saveDir = saveDir;
        _namespaces = namespaces;
        _labelItems = labelItems;
        _published = published;
        _logger = logger;
        _manifest = manifest;
        if (manifest is not null)
        {
            _version = manifest.Version;
            _lastCheckpoint = new StoreCheckpoint(manifest.Version, manifest.Time, true);
        }
    }

    private string Root { get; }

    private bool Persistent { get; }

    /// <summary>Serialises checkpoints and drops.</summary>
    public SemaphoreSlim Admin { get; } = new(1, 1);

    /// <summary>The last committed checkpoint (recovered at open, or taken since); null before the first.</summary>
    public StoreCheckpoint? LastCheckpoint => Volatile.Read(ref _lastCheckpoint);

    /// <summary>Starts the periodic checkpoints (with a SaveDir and a positive interval).</summary>
    public void StartPeriodic(TimeSpan interval)
    {
        if (Persistent && interval > TimeSpan.Zero)
            _periodic = Task.Run(() => CheckpointPeriodicallyAsync(interval, _stop.Token));
    }

    /// <summary>Stops the periodic checkpoints and waits for a running one.</summary>
    public void StopPeriodic()
    {
        _stop.Cancel();
        try
        {
            _periodic?.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Takes a checkpoint of all three FASTER stores and commits it. Everything written before the call is durable
    /// when the task completes. Memory-only stores only count the version.
    /// </summary>
    public async Task<StoreCheckpoint> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        await Admin.WaitAsync(cancellationToken);
        try
        {
            return await CheckpointCoreAsync();
        }
        finally
        {
            Admin.Release();
        }
    }

    /// <summary>How long log writes may keep failing while a checkpoint waits on them before it gives up and reports it.</summary>
    private static readonly TimeSpan WriteFailureGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The FASTER checkpoints of one store checkpoint: started together, committed by one manifest once all three
    /// are durable. Kept across calls when the SaveDir failed under them, so the next call can commit it.
    /// </summary>
    private sealed record InFlightCheckpoint(Dictionary<string, Guid> Tokens, Task[] Tasks, List<ManifestNamespace> Namespaces, long LabelItems, long FileErrorMark);

    /// <summary>Takes and commits a checkpoint; the caller holds <see cref="Admin"/>.</summary>
    public async Task<StoreCheckpoint> CheckpointCoreAsync()
    {
        var clock = Stopwatch.StartNew();
        if (!Persistent)
        {
            var memoryOnly = new StoreCheckpoint(Interlocked.Increment(ref _version), DateTimeOffset.UtcNow, false, clock.Elapsed);
            Publish(memoryOnly);
            return memoryOnly;
        }

        // A checkpoint the SaveDir failed under is still running in FASTER (its log writes are being retried):
        // it must finish before another can start. Commit it if it does.
        if (_inFlight is { } earlier)
        {
            var complete = await AwaitDurableAsync(earlier);
            _inFlight = null;

            // One whose checkpoint files failed to write is unusable: the new checkpoint below supersedes it.
            if (complete)
                Commit(earlier, clock);
        }

        var stores = _stores;
        var tokens = new Dictionary<string, Guid>();
        var tasks = new Task[stores.Length];
        var fileMark = _saveDir.CheckpointFileMark;
        List<ManifestNamespace> namespaces;
        long labelItems;

        // Shut writes out while the FASTER versions switch: counts taken now are exactly what the checkpoints hold.
        await _gate.CloseAsync();
        try
        {
            namespaces = _namespaces.Snapshot();
            labelItems = _labelItems();
            var before = new long[stores.Length];
            for (var i = 0; i < stores.Length; i++)
            {
                var kv = stores[i].Kv;
                before[i] = kv.CurrentVersion;
                if (!kv.TryInitiateFullCheckpoint(out var token, CheckpointType.FoldOver))
                    throw new InvalidOperationException($"the {stores[i].Name} store refused to start a checkpoint (one is already running)");
                tokens[stores[i].Name] = token;
                tasks[i] = kv.CompleteCheckpointAsync().AsTask();
            }

            for (var i = 0; i < stores.Length; i++)
            {
                while (stores[i].Kv.CurrentVersion <= before[i] && !tasks[i].IsCompleted)
                    await Task.Delay(1);
            }
        }
        finally
        {
            _gate.Open();
        }

        var started = new InFlightCheckpoint(tokens, tasks, namespaces, labelItems, fileMark);
        bool filesWritten;
        try
        {
            filesWritten = await AwaitDurableAsync(started);
        }
        catch (SaveDirWriteException)
        {
            _inFlight = started;
            throw;
        }

        if (!filesWritten)
            throw WriteFailure();
        return Commit(started, clock);
    }

    /// <summary>
    /// Waits for the FASTER checkpoints; throws if the SaveDir keeps failing their log writes. False when they
    /// finished but one of their checkpoint files failed to write (FASTER does not notice that itself).
    /// </summary>
    private async Task<bool> AwaitDurableAsync(InFlightCheckpoint checkpoint)
    {
        var all = Task.WhenAll(checkpoint.Tasks);
        var failing = new Stopwatch();
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(100));
            if (!_saveDir.Failing)
                failing.Reset();
            else if (!failing.IsRunning)
                failing.Start();
            if (!all.IsCompleted && failing.Elapsed >= WriteFailureGrace)
                throw WriteFailure();
        }

        await all;
        return !_saveDir.CheckpointFilesFailedSince(checkpoint.FileErrorMark);
    }

    private SaveDirWriteException WriteFailure() => new(
        $"SaveDir {Root} cannot be written ({_saveDir.LastCause ?? "write failed"}; {_saveDir.RetryingWrites} log writes waiting, {_saveDir.WriteErrors} failed writes so far): the checkpoint was not committed; {LatestDurable}. " +
        "The store keeps serving from memory and retries its log writes; free space (or make the SaveDir writable) and checkpoint again.");

    /// <summary>What a failed checkpoint leaves durable, for its error message.</summary>
    private string LatestDurable => _manifest is null ? "nothing has been committed yet" : $"checkpoint {_manifest.Version} stays the latest durable one";

    private StoreCheckpoint Commit(InFlightCheckpoint done, Stopwatch clock)
    {
        var stores = _stores;
        var manifest = new Manifest(_version + 1, DateTimeOffset.UtcNow, done.Tokens, done.Namespaces, done.LabelItems);
        try
        {
            manifest.Write(Root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The FASTER checkpoints are durable; only the commit failed. The next checkpoint commits them first.
            _inFlight = done;
            throw new SaveDirWriteException($"SaveDir {Root} cannot be written ({StoreDirectory.CauseOf(e)}): the checkpoint was not committed; {LatestDurable}.", e);
        }

        _manifest = manifest;
        _version = manifest.Version;
        foreach (var kv in stores)
            kv.PurgeCheckpointsExcept(done.Tokens[kv.Name]);

        var checkpoint = new StoreCheckpoint(manifest.Version, manifest.Time, true, clock.Elapsed);
        StoreLog.Checkpointed(_logger, checkpoint.Version, clock.ElapsedMilliseconds);
        Publish(checkpoint);
        return checkpoint;
    }

    private void Publish(StoreCheckpoint checkpoint)
    {
        Volatile.Write(ref _lastCheckpoint, checkpoint);
        _published(checkpoint);
    }

    private async Task CheckpointPeriodicallyAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    await CheckpointAsync(cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is not ObjectDisposedException)
                {
                    StoreLog.CheckpointFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    public void Dispose()
    {
        Admin.Dispose();
        _stop.Dispose();
    }
}
