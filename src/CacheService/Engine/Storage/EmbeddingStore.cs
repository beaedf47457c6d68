using System.Collections.Concurrent;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Remote;
using FASTER.core;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The embedding store: FASTER-backed namespaces (one per encoder fingerprint) in Gpu, Cpu or Disk tiers, a label
/// and metadata store, checksummed values, and checkpoints that cover all of it.
/// </summary>
/// <remarks>
/// <para>Three FasterKV&lt;SpanByte, SpanByte&gt; stores live under the root: <c>cpu/</c> (Cpu and Gpu namespaces,
/// sized to stay in memory), <c>disk/</c> (small memory window) and <c>meta/</c> (labels, index keys, metadata).
/// A store checkpoint takes a FASTER checkpoint of each and then commits them together in <c>manifest.json</c>;
/// opening recovers exactly the tokens the manifest names, so the three never disagree.</para>
/// <para>The parts: <see cref="StoreOpening"/> opens and recovers, <see cref="NamespaceRegistry"/> keeps the namespaces
/// and their tiers, <see cref="CheckpointCoordinator"/> takes checkpoints, <see cref="LogCompaction"/> compacts a
/// dropped namespace away; this type puts them together and hands out sessions.</para>
/// <para>Thread-safety: the store is thread-safe; a <see cref="StoreSession"/> is not (one per thread or task).</para>
/// </remarks>
public sealed class EmbeddingStore : IDisposable
{
    internal const string CpuName = "cpu";
    internal const string DiskName = "disk";
    internal const string MetaName = "meta";

    private readonly ILogger _logger;
    private readonly FileStream? _lock;
    private readonly ConcurrentDictionary<StoreSession, byte> _sessions = new();
    private readonly Lazy<bool> _cuda;
    private readonly NamespaceRegistry _namespaces;
    private readonly CheckpointCoordinator _checkpoints;
    private long _labelItems;
    private int _disposed;

    internal EmbeddingStore(StoreOptions options, ILogger logger, string root, bool persistent, FileStream? lockFile,
        KvStore cpu, KvStore disk, KvStore meta, Manifest? manifest, Lazy<bool> cuda, SaveDirHealth health)
    {
        SaveDir = health;
        health.FailingChanged += (failing, cause) =>
        {
            if (failing)
                StoreLog.SaveDirFailing(logger, root, cause);
            else
                StoreLog.SaveDirRecovered(logger, root);
        };
        _logger = logger;
        Root = root;
        Persistent = persistent;
        _lock = lockFile;
        CpuStore = cpu;
        DiskStore = disk;
        MetaStore = meta;
        _cuda = cuda;
        _labelItems = manifest?.LabelItems ?? 0;
        Remote = options.Remote.Enabled ? RemoteCluster.Connect(options.Remote, logger) : null;
        _namespaces = new NamespaceRegistry(options, logger, cuda, new FasterTier(cpu, this), new FasterTier(disk, this),
            Remote is null ? null : new RemoteTier(Remote, logger), manifest);
        _checkpoints = new CheckpointCoordinator(root, persistent, [cpu, disk, meta], Gate, health, _namespaces, manifest,
            () => LabelItems, checkpoint => CheckpointCompleted?.Invoke(this, checkpoint), logger);
        _checkpoints.StartPeriodic(options.CheckpointInterval);
    }

    internal ILogger Logger => _logger;

    /// <summary>The shared cluster behind the local tiers (<see cref="StoreOptions.Remote"/>), or null.</summary>
    public RemoteCluster? Remote { get; }

    /// <summary>The SaveDir (full path), or the private temp directory of a memory-only store.</summary>
    public string Root { get; }

    /// <summary>True with a SaveDir: checkpoints are durable and opening recovers them.</summary>
    public bool Persistent { get; }

    /// <summary>Failed writes to the SaveDir (full, read-only, I/O errors) and whether log writes are being retried now.</summary>
    public SaveDirHealth SaveDir { get; }

    internal KvStore CpuStore { get; }

    internal KvStore DiskStore { get; }

    internal KvStore MetaStore { get; }

    internal PutGate Gate { get; } = new();

    internal LogCompaction Compaction { get; } = new();

    /// <summary>
    /// Records stored by counted writes (<see cref="StoreSession.PutRecords(RecordKeys, ReadOnlySpan{byte}, int, bool)"/>
    /// with <c>counted</c>: the caching layer's labels), kept in the manifest across restarts.
    /// </summary>
    public long LabelItems => Interlocked.Read(ref _labelItems);

    /// <summary>Counts records a counted write created; called inside <see cref="Gate"/>, so checkpoints record exact counts.</summary>
    internal void AddLabelItems(int created) => Interlocked.Add(ref _labelItems, created);

    /// <summary>The last committed checkpoint (recovered at open, or taken since); null before the first.</summary>
    public StoreCheckpoint? LastCheckpoint => _checkpoints.LastCheckpoint;

    /// <summary>Raised after each committed checkpoint (periodic, on demand, after a drop, on dispose).</summary>
    public event EventHandler<StoreCheckpoint>? CheckpointCompleted;

    /// <summary>True when the CUDA device <see cref="StoreOptions.GpuDevice"/> is usable by TorchSharp (loads libtorch on first use).</summary>
    public bool CudaAvailable => _cuda.Value;

    /// <summary>Device bytes of the Gpu tier (all namespaces together): the budget and what tables have reserved of it.</summary>
    public (long Budget, long Reserved) GpuMemory => _namespaces.GpuMemory;

    /// <summary>Gpu-tier namespaces that got no device memory (budget spent, or the device refused) and use the Cpu tier.</summary>
    public long GpuTierFallbacks => _namespaces.GpuTierFallbacks;

    /// <summary>
    /// Makes the device operations of Gpu tables registered from now on (tests inject failing ones through this; the
    /// default runs them on the device, or on the host without CUDA).
    /// </summary>
    internal Func<torch.Device, TableDevice> TableDevices
    {
        get => _namespaces.TableDevices;
        set => _namespaces.TableDevices = value;
    }

    /// <summary>
    /// Opens (and with a SaveDir, recovers) a store.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid (the message lists each bad key).</exception>
    /// <exception cref="StoreOpenException">
    /// The SaveDir is corrupt, of another format version, not a store, or in use; or RequireGpu is set without CUDA.
    /// With <see cref="StoreOptions.MoveAsideIncompatibleSaveDir"/>, the first three move the directory aside instead.
    /// </exception>
    public static EmbeddingStore Open(StoreOptions options, ILoggerFactory? loggerFactory = null) =>
        Open(options, loggerFactory, phase: null, CancellationToken.None);

    /// <summary>
    /// Opens (and with a SaveDir, recovers) a store, telling <paramref name="phase"/> what it is doing as it goes
    /// ("waiting for …", "recovering the cpu store …") so a host can report it while it waits.
    /// </summary>
    /// <param name="cancellationToken">Ends a wait for the SaveDir's lock (<see cref="StoreOptions.LockWait"/>).</param>
    /// <inheritdoc cref="Open(StoreOptions, ILoggerFactory?)"/>
    public static EmbeddingStore Open(StoreOptions options, ILoggerFactory? loggerFactory, Action<string>? phase, CancellationToken cancellationToken) =>
        StoreOpening.Open(options, loggerFactory, phase, cancellationToken);

    /// <summary>
    /// Registers an encoder's namespace (idempotent per fingerprint) and resolves <see cref="Tier.Auto"/>. A namespace
    /// already in the SaveDir keeps its data and the FASTER store it was written to.
    /// </summary>
    public NamespaceHandle Register(NamespaceSpec spec)
    {
        ThrowIfDisposed();
        return _namespaces.Register(spec);
    }

    /// <summary>Registered namespaces and those found in the SaveDir, with item counts and bytes per tier.</summary>
    public IReadOnlyList<NamespaceInfo> ListNamespaces()
    {
        ThrowIfDisposed();
        return _namespaces.List(Persistent);
    }

    /// <summary>
    /// Starts writing the log of <paramref name="ns"/>'s FASTER store to the SaveDir up to its tail, in the background
    /// (FASTER marks those pages read-only and flushes them; nothing waits). A bulk writer calls this as it goes, so
    /// that its next checkpoint has only the last pages left to write instead of everything it wrote: the disk then
    /// works while the encoders do. Reads are unaffected (the pages stay in memory); a later write to one of those
    /// records appends a new copy instead of updating in place. No-op for memory-only stores.
    /// </summary>
    public void FlushBehind(NamespaceHandle ns)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ThrowIfDisposed();
        if (!Persistent)
            return;
        var log = _namespaces.FasterTierOf(ns.State).Kv.Kv.Log;
        log.ShiftReadOnlyAddress(log.TailAddress, wait: false);
    }

    /// <summary>A new session for one thread or task. Dispose it when done.</summary>
    public StoreSession NewSession()
    {
        ThrowIfDisposed();
        var session = new StoreSession(this);
        _sessions[session] = 0;
        return session;
    }

    internal void Forget(StoreSession session) => _sessions.TryRemove(session, out _);

    /// <summary>
    /// Takes a checkpoint of all three FASTER stores and commits it. Everything written before the call is durable
    /// when the task completes. Memory-only stores only count the version.
    /// </summary>
    public Task<StoreCheckpoint> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _checkpoints.CheckpointAsync(cancellationToken);
    }

    /// <summary>
    /// Removes a namespace and reclaims its space: its FASTER store is compacted without the namespace's records and,
    /// once that is committed (with a SaveDir), the log is truncated. Handles to it stop working.
    /// </summary>
    /// <param name="cancellationToken">
    /// Ends a wait for another admin operation (a checkpoint, another drop) or for running writes. Once the compaction
    /// has started the drop runs to its end: a half-dropped namespace is never left behind.
    /// </param>
    public async Task<DropResult> DropAsync(Fingerprint fingerprint, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await _checkpoints.Admin.WaitAsync(cancellationToken);
        try
        {
            if (!_namespaces.IsLive(fingerprint))
                return new DropResult(fingerprint, false, 0, 0);
            await Gate.CloseAsync(cancellationToken);
            NamespaceState? state;
            long before, after;
            KvStore kv;
            try
            {
                state = _namespaces.Remove(fingerprint);
                if (state is null)
                    return new DropResult(fingerprint, false, 0, 0);
                kv = _namespaces.FasterTierOf(state).Kv;
                before = kv.LogBytes;
                Compaction.Compact(kv, state.FingerprintBytes);
                after = kv.LogBytes;
            }
            finally
            {
                Gate.Open();
            }

            _namespaces.ReleaseTable(state);
            if (Persistent)
            {
                // Commit the compacted state (its new begin address) before deleting any log file.
                await _checkpoints.CheckpointCoreAsync();
            }

            kv.Kv.Log.Truncate();
            var items = Interlocked.Read(ref state.Items);
            var reclaimed = Math.Max(0, before - after);
            StoreLog.Dropped(_logger, fingerprint, items, reclaimed);
            return new DropResult(fingerprint, true, items, reclaimed);
        }
        finally
        {
            _checkpoints.Admin.Release();
        }
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Takes a final checkpoint (with a SaveDir) and closes the store. Sessions still open are closed too.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _checkpoints.StopPeriodic();
        // Queued writes get a moment to reach the cluster; the local store keeps them either way.
        Remote?.Dispose();
        foreach (var session in _sessions.Keys)
            session.DisposeFasterSessions();
        _sessions.Clear();

        if (Persistent)
        {
            _checkpoints.Admin.Wait();
            try
            {
                _checkpoints.CheckpointCoreAsync().GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or FasterException or UnauthorizedAccessException)
            {
                StoreLog.FinalCheckpointFailed(_logger, e);
            }
            finally
            {
                _checkpoints.Admin.Release();
            }
        }

        // A checkpoint the SaveDir failed under may still wait for its log writes: closing the stores fails those
        // writes (KvStore.Dispose), and the wait is abandoned with them.
        _namespaces.DisposeTables();
        MetaStore.Dispose();
        DiskStore.Dispose();
        CpuStore.Dispose();
        _lock?.Dispose();
        Gate.Dispose();
        Compaction.Dispose();
        _checkpoints.Dispose();
        if (!Persistent)
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
