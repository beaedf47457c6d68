using System.Diagnostics;
using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Jobs;
using EmbedCache.Engine.Storage;
using EmbedCache.Server.Configuration;
using Microsoft.Extensions.Options;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// Owns the engine for the life of the host: opens the store (recovering the last checkpoint), loads the encoders
/// and resumes unfinished prewarm jobs; on shutdown stops jobs (they resume on the next start) and checkpoints the
/// store.
/// </summary>
/// <remarks>
/// Start-up runs in the background, so the listeners open at once: a large store takes seconds to recover (its Cpu
/// tier is read back into memory), and an orchestrator should see a live process that reports NOT_SERVING meanwhile
/// rather than closed ports. Until <see cref="Ready"/> completes, <see cref="Unavailable"/> says why, health checks
/// fail with that reason and trainer and admin calls answer UNAVAILABLE with it. A start-up error stops the host,
/// and <see cref="EmbedCacheHost.RunAsync"/> reports it as one line with exit code 2.
/// </remarks>
public sealed partial class EngineHost(
    IOptions<EmbedCacheOptions> options, IHostEnvironment environment, IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory, ILogger<EngineHost> logger)
    : IHostedService, IAsyncDisposable
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _startCancel = new();
    private readonly Stopwatch _startClock = new();
    private Task _starting = Task.CompletedTask;
    private EmbeddingStore? _store;
    private EncoderRegistry? _encoders;
    private CacheEngine? _engine;
    private JobManager? _jobs;
    private bool _persistent;
    private volatile string _phase = "starting";
    private volatile bool _stopping;
    private int _disposed;

    /// <summary>
    /// Completes when the engine takes requests; faults with the <see cref="StartupException"/> that stopped the host
    /// (then also in <see cref="StartupFailure"/>), or is cancelled when the host stopped first.
    /// </summary>
    public Task Ready => _ready.Task;

    /// <summary>The start-up error that stopped the host, or null.</summary>
    public StartupException? StartupFailure { get; private set; }

    /// <summary>Why the engine takes no requests now (recovering the store, shutting down), or null when it does.</summary>
    public string? Unavailable =>
        _stopping ? "the service is shutting down"
        : _ready.Task.IsCompletedSuccessfully ? null
        : StartupFailure is { } failure ? $"the service failed to start: {failure.Message}"
        : FormattableString.Invariant($"{(_persistent ? "recovering the store" : "starting")} ({_phase}; {_startClock.Elapsed.TotalSeconds:0.0} s so far)");

    /// <summary>The engine; <see cref="ServiceUnavailableException"/> while starting and after stop begins.</summary>
    public CacheEngine Engine => Unavailable is { } reason ? throw new ServiceUnavailableException(reason) : _engine!;

    public JobManager Jobs => Unavailable is { } reason ? throw new ServiceUnavailableException(reason) : _jobs!;

    public DateTimeOffset StartedAt { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var root = environment.ContentRootPath;
        var storeOptions = o.ToStoreOptions(root);
        _persistent = storeOptions.SaveDir is not null;
        var location = o.DescribeStore(root);
        StoreLocation(logger, location);
        _startClock.Start();
        _starting = Task.Factory.StartNew(() => StartEngine(o, storeOptions, root), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    private void StartEngine(EmbedCacheOptions o, StoreOptions storeOptions, string root)
    {
        try
        {
            // Recovering the store (reading its log back) and building the encoders (libtorch start-up, weights)
            // are independent: do them at once, which shortens a restart by whichever is shorter.
            var loading = Task.Run(() => EncoderRegistry.Create(o.Encoders, loggerFactory, o.Store.RequireGpu));
            try
            {
                _phase = storeOptions.SaveDir is { } dir ? $"opening {dir}" : "opening a memory-only store";
                _store = EmbeddingStore.Open(storeOptions, loggerFactory, phase => _phase = phase, _startCancel.Token);
            }
            catch
            {
                // The store's error is the one to report; the encoders, if they loaded, are not needed.
                ((IAsyncResult)loading).AsyncWaitHandle.WaitOne();
                if (loading.IsCompletedSuccessfully)
                    loading.Result.Dispose();
                throw;
            }

            _phase = "loading the encoders";
            _encoders = loading.GetAwaiter().GetResult();
            var dataRoot = Path.GetFullPath(o.DataRoot, root);
            var tiers = o.Encoders.ToDictionary(kv => kv.Key, kv => kv.Value.Tier, StringComparer.Ordinal);
            _engine = new CacheEngine(_store, _encoders, new DatasetCatalog(o.Datasets, dataRoot), tiers, loggerFactory);
            _jobs = new JobManager(_engine, o.ToJobOptions());
            _phase = "resuming prewarm jobs";
            var resumed = _jobs.ResumePersisted();
            var stale = Grpc.SharedRing.SweepStale(o.SharedMemory.Directory);
            if (stale > 0)
                StaleRingsRemoved(logger, stale, o.SharedMemory.Directory);
            StartedAt = DateTimeOffset.UtcNow;
            EngineReady(logger, _encoders.All.Count, storeOptions.SaveDir ?? "(memory only)", resumed, _startClock.Elapsed.TotalSeconds);
            _ready.TrySetResult();
        }
        catch (OperationCanceledException) when (_startCancel.IsCancellationRequested)
        {
            _ready.TrySetCanceled();
        }
        catch (EngineException e)
        {
            // The engine's own reports (a SaveDir that cannot be opened, an encoder that does not load, a dataset
            // catalog that cannot be built) name the problem: one line is enough.
            Fail(new StartupException(e.Message));
        }
        catch (Exception e)
        {
            StartupCrashed(logger, e);
            Fail(new StartupException($"start-up failed: {e.Message}"));
        }
    }

    private void Fail(StartupException failure)
    {
        StartupFailure = failure;
        _ready.TrySetException(failure);
        lifetime.StopApplication();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        // A stop during start-up ends a wait for the SaveDir's lock; a recovery in progress runs to its end.
        await _startCancel.CancelAsync();
        await _starting;
        if (_jobs is not null)
            await _jobs.DisposeAsync();
        if (_store is not null && _ready.Task.IsCompletedSuccessfully)
        {
            try
            {
                var checkpoint = await _store.CheckpointAsync(cancellationToken);
                ShutdownCheckpoint(logger, checkpoint.Version);
            }
            catch (SaveDirWriteException e)
            {
                ShutdownCheckpointFailed(logger, e.Message);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The host's shutdown timeout ran out (e.g. on requests that would not finish): the store still
                // takes its final checkpoint when it is disposed, right after this.
                ShutdownCheckpointDeferred(logger);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Disposed twice: the container owns this singleton and the hosted-service registration that returns it.
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping = true;
        await _startCancel.CancelAsync();
        await _starting;
        if (_jobs is not null)
            await _jobs.DisposeAsync();
        _engine?.Dispose();
        _encoders?.Dispose();
        _store?.Dispose();
        _startCancel.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Store: {Store}")]
    private static partial void StoreLocation(ILogger logger, string store);

    [LoggerMessage(Level = LogLevel.Information, Message = "EmbedCache ready: {Encoders} encoders, store {SaveDir}, {Resumed} prewarm jobs resumed; {Seconds:0.00} s after start-up began")]
    private static partial void EngineReady(ILogger logger, int encoders, string saveDir, int resumed, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed {Count} shared-memory ring file(s) left in {Directory} by processes that no longer run")]
    private static partial void StaleRingsRemoved(ILogger logger, int count, string directory);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Start-up failed")]
    private static partial void StartupCrashed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The shutdown timeout ran out before the shutdown checkpoint; the store takes it as it closes")]
    private static partial void ShutdownCheckpointDeferred(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "No checkpoint on shutdown: {Reason}")]
    private static partial void ShutdownCheckpointFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Checkpoint {Version} taken on shutdown")]
    private static partial void ShutdownCheckpoint(ILogger logger, long version);
}

/// <summary>The engine takes no requests now: it is starting, or shutting down; <paramref name="reason"/> says which.</summary>
public sealed class ServiceUnavailableException(string reason) : EngineException(ErrorKind.Unavailable, reason + "; retry")
{
    /// <summary>Why, without the advice to retry.</summary>
    public string Reason { get; } = reason;
}
