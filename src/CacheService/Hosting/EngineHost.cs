using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Datasets;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Jobs;
using EmbedCache.Engine.Storage;
using Microsoft.Extensions.Options;

namespace EmbedCache.Service.Hosting;

/// <summary>
/// Owns the engine for the life of the host: opens the store (recovering the last checkpoint),
/// loads the encoders and resumes unfinished prewarm jobs before the listeners open; on shutdown
/// stops jobs (they resume on the next start) and checkpoints the store.
/// </summary>
public sealed partial class EngineHost(
    IOptions<EmbedCacheOptions> options, IHostEnvironment environment, ILoggerFactory loggerFactory, ILogger<EngineHost> logger)
    : IHostedService, IAsyncDisposable
{
    private EmbeddingStore? _store;
    private EncoderRegistry? _encoders;
    private CacheEngine? _engine;
    private JobManager? _jobs;
    private volatile bool _stopping;

    /// <summary>The engine; <see cref="ServiceUnavailableException"/> before start and after stop begins.</summary>
    public CacheEngine Engine => !_stopping && _engine is { } e ? e : throw new ServiceUnavailableException(_stopping ? "the service is shutting down" : "the service is starting");

    public JobManager Jobs => !_stopping && _jobs is { } j ? j : throw new ServiceUnavailableException(_stopping ? "the service is shutting down" : "the service is starting");

    public DateTimeOffset StartedAt { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var root = environment.ContentRootPath;
        try
        {
            var storeOptions = o.ToStoreOptions(root);

            // Recovering the store (reading its log back) and building the encoders (libtorch start-up, weights)
            // are independent: do them at once, which shortens a restart by whichever is shorter.
            var loading = Task.Run(() => EncoderRegistry.Create(o.Encoders, loggerFactory, o.Store.RequireGpu));
            try
            {
                _store = EmbeddingStore.Open(storeOptions, loggerFactory);
            }
            catch
            {
                // The store's error is the one to report; the encoders, if they loaded, are not needed.
                ((IAsyncResult)loading).AsyncWaitHandle.WaitOne();
                if (loading.IsCompletedSuccessfully)
                    loading.Result.Dispose();
                throw;
            }

            _encoders = loading.GetAwaiter().GetResult();
            var dataRoot = Path.GetFullPath(o.DataRoot, root);
            var tiers = o.Encoders.ToDictionary(kv => kv.Key, kv => kv.Value.Tier, StringComparer.Ordinal);
            _engine = new CacheEngine(_store, _encoders, new DatasetCatalog(o.Datasets, dataRoot), tiers, loggerFactory);
            _jobs = new JobManager(_engine, o.ToJobOptions());
            var resumed = _jobs.ResumePersisted();
            StartedAt = DateTimeOffset.UtcNow;
            EngineReady(logger, _encoders.All.Count, storeOptions.SaveDir ?? "(memory only)", resumed);
        }
        catch (Exception e) when (e is StoreOpenException or EncoderLoadException or ArgumentException)
        {
            throw new StartupException(e.Message);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (_jobs is not null)
            await _jobs.DisposeAsync();
        if (_store is not null)
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
        _stopping = true;
        if (_jobs is not null)
            await _jobs.DisposeAsync();
        _engine?.Dispose();
        _encoders?.Dispose();
        _store?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine ready: {Encoders} encoders, store {SaveDir}, {Resumed} prewarm jobs resumed")]
    private static partial void EngineReady(ILogger logger, int encoders, string saveDir, int resumed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The shutdown timeout ran out before the shutdown checkpoint; the store takes it as it closes")]
    private static partial void ShutdownCheckpointDeferred(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "No checkpoint on shutdown: {Reason}")]
    private static partial void ShutdownCheckpointFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Checkpoint {Version} taken on shutdown")]
    private static partial void ShutdownCheckpoint(ILogger logger, long version);
}

/// <summary>The service cannot take requests right now (UNAVAILABLE).</summary>
public sealed class ServiceUnavailableException(string message) : Exception(message);
