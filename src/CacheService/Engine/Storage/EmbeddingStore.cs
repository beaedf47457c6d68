using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using EmbedCache.Engine.Embeddings;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
/// <para>Thread-safety: the store is thread-safe; a <see cref="StoreSession"/> is not (one per thread or task).</para>
/// </remarks>
public sealed class EmbeddingStore : IDisposable
{
    internal const string CpuName = "cpu";
    internal const string DiskName = "disk";
    internal const string MetaName = "meta";
    private const long MetaLogMemoryBytes = 64L << 20;
    private const long MetaIndexBytes = 1L << 20;

    private readonly StoreOptions _options;
    private readonly ILogger _logger;
    private readonly FileStream? _lock;
    private readonly ConcurrentDictionary<Fingerprint, NamespaceState> _namespaces = new();
    private readonly ConcurrentDictionary<StoreSession, byte> _sessions = new();
    private readonly Lock _registerLock = new();
    private readonly SemaphoreSlim _admin = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lazy<bool> _cuda;
    private readonly GpuBudget _gpuBudget;
    private readonly Task? _periodic;
    private readonly FasterTier _cpuTier;
    private readonly FasterTier _diskTier;
    private Manifest? _manifest;
    private long _version;
    private StoreCheckpoint? _lastCheckpoint;
    private InFlightCheckpoint? _inFlight;
    private long _compactions;
    private long _labelItems;
    private readonly ManualResetEventSlim _compactionIdle = new(initialState: true);
    private bool _gpuFallbackWarned;
    private long _gpuTierFallbacks;
    private int _disposed;

    private EmbeddingStore(StoreOptions options, ILogger logger, string root, bool persistent, FileStream? lockFile,
        KvStore cpu, KvStore disk, KvStore meta, Manifest? manifest, Lazy<bool> cuda, SaveDirHealth health)
    {
        _options = options;
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
        _cpuTier = new FasterTier(cpu, this);
        _diskTier = new FasterTier(disk, this);
        _cuda = cuda;
        _gpuBudget = new GpuBudget(options.GpuMemoryBytes);
        _manifest = manifest;
        if (manifest is not null)
        {
            _version = manifest.Version;
            _lastCheckpoint = new StoreCheckpoint(manifest.Version, manifest.Time, true);
            _labelItems = manifest.LabelItems;
            foreach (var ns in manifest.Namespaces)
            {
                var spec = new NamespaceSpec(ns.Encoder, ns.Fingerprint, ns.Dim, ns.DType, ns.Tier);
                var state = new NamespaceState(spec, ns.Tier, ns.StorageTier, registered: false) { Items = ns.Items, Bytes = ns.Bytes };
                state.Tiers = [FasterTierOf(state)];
                _namespaces[ns.Fingerprint] = state;
            }
        }

        if (persistent && options.CheckpointInterval > TimeSpan.Zero)
            _periodic = Task.Run(() => CheckpointPeriodicallyAsync(options.CheckpointInterval, _stop.Token));
    }

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

    /// <summary>
    /// Records stored by counted writes (<see cref="StoreSession.PutRecords(RecordKeys, ReadOnlySpan{byte}, int, bool)"/>
    /// with <c>counted</c>: the caching layer's labels), kept in the manifest across restarts.
    /// </summary>
    public long LabelItems => Interlocked.Read(ref _labelItems);

    /// <summary>Counts records a counted write created; called inside <see cref="Gate"/>, so checkpoints record exact counts.</summary>
    internal void AddLabelItems(int created) => Interlocked.Add(ref _labelItems, created);

    /// <summary>The last committed checkpoint (recovered at open, or taken since); null before the first.</summary>
    public StoreCheckpoint? LastCheckpoint => Volatile.Read(ref _lastCheckpoint);

    /// <summary>Raised after each committed checkpoint (periodic, on demand, after a drop, on dispose).</summary>
    public event EventHandler<StoreCheckpoint>? CheckpointCompleted;

    /// <summary>True when the CUDA device <see cref="StoreOptions.GpuDevice"/> is usable by TorchSharp (loads libtorch on first use).</summary>
    public bool CudaAvailable => _cuda.Value;

    /// <summary>Device bytes of the Gpu tier (all namespaces together): the budget and what tables have reserved of it.</summary>
    public (long Budget, long Reserved) GpuMemory => (_gpuBudget.Total, _gpuBudget.Reserved);

    /// <summary>Gpu-tier namespaces that got no device memory (budget spent, or the device refused) and use the Cpu tier.</summary>
    public long GpuTierFallbacks => Interlocked.Read(ref _gpuTierFallbacks);

    /// <summary>
    /// Makes the device operations of Gpu tables registered from now on (tests inject failing ones through this; the
    /// default runs them on the device, or on the host without CUDA).
    /// </summary>
    internal Func<torch.Device, TableDevice> TableDevices { get; set; } = device => new TableDevice(device);

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
    public static EmbeddingStore Open(StoreOptions options, ILoggerFactory? loggerFactory, Action<string>? phase, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>(options.Validate());
        if (errors.Count > 0)
            throw new ArgumentException("invalid store options: " + string.Join("; ", errors), nameof(options));
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("the embedding store's files are little-endian; big-endian hosts are not supported");

        var logger = (ILogger?)loggerFactory?.CreateLogger<EmbeddingStore>() ?? NullLogger.Instance;
        string? cudaProblem = null;
        var cuda = new Lazy<bool>(() => (cudaProblem = ProbeCuda(options.GpuDevice)) is null);
        if (options.RequireGpu && !cuda.Value)
        {
            throw new StoreOpenException(
                $"RequireGpu is true but CUDA is not available ({cudaProblem}). " +
                "Run on a CUDA host with the CUDA build (-p:TorchBackend=cuda), or set RequireGpu to false to use a host table.");
        }

        if (string.IsNullOrEmpty(options.SaveDir))
        {
            var temp = Path.Combine(Path.GetTempPath(), $"embedcache-store-{Environment.ProcessId}-{Guid.NewGuid():N}");
            Directory.CreateDirectory(temp);
            try
            {
                var store = Create(options, logger, temp, persistent: false, lockFile: null, manifest: null, cuda);
                StoreLog.Opened(logger, temp, false, 0, 0);
                return store;
            }
            catch
            {
                Directory.Delete(temp, recursive: true);
                throw;
            }
        }

        var root = Path.GetFullPath(options.SaveDir);
        try
        {
            return OpenPersistent(options, logger, root, cuda, phase, cancellationToken);
        }
        catch (StoreOpenException e) when (options.MoveAsideIncompatibleSaveDir && e.Data.Contains(StoreDirectory.MovableKey))
        {
            var target = StoreDirectory.MoveAside(root);
            StoreLog.MovedAside(logger, e.Message, target);
            return OpenPersistent(options, logger, root, cuda, phase, cancellationToken);
        }
    }

    private static EmbeddingStore OpenPersistent(StoreOptions options, ILogger logger, string root, Lazy<bool> cuda, Action<string>? phase, CancellationToken cancellationToken)
    {
        StoreDirectory.CheckWritable(root);
        var kind = StoreDirectory.Inspect(root);
        if (kind == StoreDirectory.Kind.Empty)
            StoreDirectory.WriteMarker(root);
        var lockFile = AcquireLock(root, options.LockWait, logger, phase, cancellationToken);
        try
        {
            Manifest? manifest;
            try
            {
                manifest = Manifest.Read(root);
            }
            catch (InvalidDataException e)
            {
                throw StoreDirectory.Movable($"SaveDir '{root}' is corrupt: {e.Message}", e);
            }

            if (manifest is null)
            {
                // Never checkpointed: whatever logs exist were never committed, so nothing committed is lost.
                foreach (var name in new[] { CpuName, DiskName, MetaName })
                {
                    var dir = Path.Combine(root, name);
                    if (Directory.Exists(dir))
                        Directory.Delete(dir, recursive: true);
                }
            }
            else
            {
                foreach (var name in new[] { CpuName, DiskName, MetaName })
                {
                    if (!manifest.Tokens.ContainsKey(name))
                        throw StoreDirectory.Movable($"SaveDir '{root}' is corrupt: {Manifest.FileName} names no checkpoint for the {name} store.");
                }
            }

            var store = Create(options, logger, root, persistent: true, lockFile, manifest, cuda, phase);
            StoreLog.Opened(logger, root, true, manifest?.Version ?? 0, manifest?.Namespaces.Count ?? 0);
            return store;
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>The SaveDir's lock; with a <paramref name="wait"/>, polls for it while another process holds it.</summary>
    private static FileStream AcquireLock(string root, TimeSpan wait, ILogger logger, Action<string>? phase, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var waiting = false;
        while (true)
        {
            try
            {
                var lockFile = StoreDirectory.Lock(root);
                if (waiting)
                    StoreLog.LockAcquired(logger, root, clock.Elapsed.TotalSeconds);
                return lockFile;
            }
            catch (StoreOpenException e) when (clock.Elapsed < wait)
            {
                if (!waiting)
                {
                    waiting = true;
                    StoreLog.WaitingForLock(logger, root, wait.TotalSeconds, e.Message);
                    phase?.Invoke($"waiting up to {wait.TotalSeconds:0} s for SaveDir {root}, which another process holds");
                }

                if (cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(100)))
                    cancellationToken.ThrowIfCancellationRequested();
            }
            catch (StoreOpenException e) when (wait > TimeSpan.Zero)
            {
                throw new StoreOpenException($"{e.Message} Waited {wait.TotalSeconds:0} s for it (Store:SaveDirLockWaitSeconds).", e);
            }
        }
    }

    private static EmbeddingStore Create(StoreOptions options, ILogger logger, string root, bool persistent, FileStream? lockFile, Manifest? manifest, Lazy<bool> cuda, Action<string>? phase = null)
    {
        var recover = manifest is not null;
        var segmentBits = options.LogSegmentSizeBits;
        var health = new SaveDirHealth(root);
        KvStore? cpu = null, disk = null, meta = null;
        try
        {
            cpu = KvStore.Create(CpuName, Path.Combine(root, CpuName), options.CpuMemoryBytes, options.CpuMemoryBytes / 128, 22, segmentBits, recover, health);
            var diskIndex = options.DiskMemoryBytes / 4;
            disk = KvStore.Create(DiskName, Path.Combine(root, DiskName), options.DiskMemoryBytes - diskIndex, diskIndex, 22, segmentBits, recover, health);
            meta = KvStore.Create(MetaName, Path.Combine(root, MetaName), MetaLogMemoryBytes, MetaIndexBytes, 22, segmentBits, recover, health);
            if (manifest is not null)
            {
                foreach (var kv in new[] { cpu, disk, meta })
                {
                    phase?.Invoke($"{root}: the {kv.Name} store, checkpoint {manifest.Version}");
                    Recover(root, kv, manifest, logger);
                }
            }

            return new EmbeddingStore(options, logger, root, persistent, lockFile, cpu, disk, meta, manifest, cuda, health);
        }
        catch
        {
            meta?.Dispose();
            disk?.Dispose();
            cpu?.Dispose();
            throw;
        }
    }

    private static void Recover(string root, KvStore kv, Manifest manifest, ILogger logger)
    {
        var token = manifest.Tokens[kv.Name];
        var start = Stopwatch.GetTimestamp();
        var readBefore = kv.Device.BytesRead;
        try
        {
            kv.Kv.Recover(token);
        }
        catch (Exception e) when (e is FasterException or IOException or InvalidDataException or ArgumentException or InvalidOperationException or IndexOutOfRangeException or FormatException)
        {
            throw StoreDirectory.Movable($"SaveDir '{root}' is corrupt: the {kv.Name} store cannot be recovered from checkpoint {token} ({e.Message}).", e);
        }

        // A drop commits its compaction (the new begin address) before deleting log files; if the process died in
        // between, finish the truncation now. A no-op otherwise.
        kv.Kv.Log.Truncate();
        kv.PurgeCheckpointsExcept(token);

        // Where the time went: FASTER reads the index checkpoint first and then the log pages it keeps in memory
        // (from the checkpoint's head address to its tail), so the first log read splits the two.
        var end = Stopwatch.GetTimestamp();
        var firstRead = kv.Device.FirstReadTimestamp is var f && f >= start ? f : end;
        var log = kv.Kv.Log;
        var total = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
        var index = Stopwatch.GetElapsedTime(start, firstRead).TotalSeconds;
        var logSeconds = Stopwatch.GetElapsedTime(firstRead, end).TotalSeconds;
        var readMB = (kv.Device.BytesRead - readBefore) / 1e6;
        var inMemoryMB = (log.TailAddress - log.HeadAddress) / 1e6;
        var logMB = (log.TailAddress - log.BeginAddress) / 1e6;
        StoreLog.Recovered(logger, kv.Name, total, index, kv.IndexBytes >> 20, logSeconds, readMB, inMemoryMB, logMB);
    }

    /// <summary>
    /// Null when CUDA device <paramref name="device"/> can be used: libtorch sees CUDA, the device exists, and a test
    /// allocation on it round-trips (is_available alone says nothing about a device that is full, lost or of an
    /// unsupported architecture). Otherwise what is wrong.
    /// </summary>
    private static string? ProbeCuda(int device)
    {
        try
        {
            if (!torch.cuda.is_available())
                return "torch.cuda.is_available() is false";
            var count = torch.cuda.device_count();
            if (device >= count)
                return $"GpuDevice is {device} but CUDA has {count} device(s)";
            using var scope = torch.NewDisposeScope();
            var probe = torch.arange(16, torch.ScalarType.Int32, new torch.Device(DeviceType.CUDA, device));
            var back = probe.cpu();
            return back[15].item<int>() == 15 ? null : $"a test allocation on cuda:{device} read back wrong values";
        }
        catch (Exception e) when (e is ExternalException)
        {
            return $"a test allocation on cuda:{device} failed: {e.Message}";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException or InvalidOperationException)
        {
            return $"libtorch has no CUDA here ({e.GetType().Name})";
        }
    }

    /// <summary>
    /// Registers an encoder's namespace (idempotent per fingerprint) and resolves <see cref="Tier.Auto"/>. A namespace
    /// already in the SaveDir keeps its data and the FASTER store it was written to.
    /// </summary>
    public NamespaceHandle Register(NamespaceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ThrowIfDisposed();
        if (string.IsNullOrWhiteSpace(spec.Encoder))
            throw new ArgumentException("namespace encoder name must not be empty", nameof(spec));
        if (spec.Dim is < 1 or > 65536)
            throw new ArgumentException($"namespace {spec.Encoder}: Dim must be 1..65536 (was {spec.Dim})", nameof(spec));
        if (!Enum.IsDefined(spec.DType))
            throw new ArgumentException($"namespace {spec.Encoder}: unknown dtype {(int)spec.DType}", nameof(spec));
        if (!Enum.IsDefined(spec.Tier))
            throw new ArgumentException($"namespace {spec.Encoder}: unknown tier {(int)spec.Tier}", nameof(spec));

        var tier = spec.Tier == Tier.Auto ? _options.DefaultTier : spec.Tier;
        if (tier == Tier.Auto)
            tier = _cuda.Value ? Tier.Gpu : Tier.Cpu;

        lock (_registerLock)
        {
            if (_namespaces.TryGetValue(spec.Fingerprint, out var existing) && !existing.Dropped)
            {
                if (existing.Spec.Dim != spec.Dim || existing.Spec.DType != spec.DType)
                {
                    throw new ArgumentException(
                        $"namespace {spec.Fingerprint} is stored as dim {existing.Spec.Dim} {existing.Spec.DType}; registered as dim {spec.Dim} {spec.DType}",
                        nameof(spec));
                }

                if (existing.Registered)
                    return existing.Handle!;

                var effective = tier;
                if (StorageTierOf(tier) != existing.StorageTier)
                {
                    StoreLog.TierMismatch(_logger, spec.Encoder, spec.Fingerprint, existing.StorageTier, tier);
                    effective = existing.StorageTier;
                }

                CheckRecordFits(spec, existing.StorageTier);
                existing.Spec = spec;
                existing.Tier = effective;
                if (effective == Tier.Gpu)
                    AttachTable(existing);
                existing.Handle = new NamespaceHandle(existing);
                existing.Registered = true;
                return existing.Handle;
            }

            var storage = StorageTierOf(tier);
            CheckRecordFits(spec, storage);
            var state = new NamespaceState(spec, tier, storage, registered: true);
            state.Tiers = [FasterTierOf(state)];
            if (tier == Tier.Gpu)
                AttachTable(state);
            state.Handle = new NamespaceHandle(state);
            _namespaces[spec.Fingerprint] = state;
            return state.Handle;
        }
    }

    private static Tier StorageTierOf(Tier tier) => tier == Tier.Disk ? Tier.Disk : Tier.Cpu;

    internal KvStore StoreOf(NamespaceState state) => state.StorageTier == Tier.Disk ? DiskStore : CpuStore;

    private FasterTier FasterTierOf(NamespaceState state) => state.StorageTier == Tier.Disk ? _diskTier : _cpuTier;

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
        var log = StoreOf(ns.State).Kv.Log;
        log.ShiftReadOnlyAddress(log.TailAddress, wait: false);
    }

    private void CheckRecordFits(NamespaceSpec spec, Tier storage)
    {
        var kv = storage == Tier.Disk ? DiskStore : CpuStore;
        var record = StoreFunctions.RecordBytes(sizeof(int) + Fingerprint.Size + 1 + ItemKeyMax, sizeof(int) + Checksums.Size + spec.RowBytes);
        if (record > kv.MaxRecordBytes)
        {
            throw new ArgumentException(
                $"namespace {spec.Encoder}: rows of {spec.RowBytes} bytes do not fit the {storage} tier's pages ({kv.MaxRecordBytes} bytes per record); raise its memory budget",
                nameof(spec));
        }
    }

    private const int ItemKeyMax = Keys.ItemKeyBatch.MaxItemKeyBytes;

    /// <summary>
    /// Gives a Gpu-tier namespace its table from the shared device budget. Without room or with a device that refuses
    /// the memory, the namespace is served by the Cpu tier (it is stored there anyway), with one warning; under
    /// RequireGpu that is an error instead.
    /// </summary>
    /// <exception cref="StoreOpenException">RequireGpu is set and the namespace gets no device memory.</exception>
    private void AttachTable(NamespaceState state)
    {
        var spec = state.Spec;
        var cuda = _cuda.Value;
        if (!cuda && !_gpuFallbackWarned)
        {
            _gpuFallbackWarned = true;
            StoreLog.GpuFallback(_logger);
        }

        var device = TableDevices(cuda ? new torch.Device(DeviceType.CUDA, _options.GpuDevice) : torch.CPU);
        var table = GpuTable.TryCreate(_gpuBudget, device, spec.RowBytes, (e, off) =>
        {
            if (off)
                StoreLog.GpuTableOff(_logger, e, spec.Encoder, spec.Fingerprint, GpuTable.MaxConsecutiveErrors);
            else
                StoreLog.GpuTableError(_logger, spec.Encoder, spec.Fingerprint, e.Message);
        }, out var why);
        if (table is not null)
        {
            state.Table = table;
            state.Tiers = [new GpuTableTier(table, ReportTableCorruption), FasterTierOf(state)];
            return;
        }

        if (_options.RequireGpu)
            throw new StoreOpenException($"namespace {spec.Encoder}: RequireGpu is true but its Gpu table gets no device memory: {why}. Raise Store:GpuMemoryBytes or put fewer encoders in the Gpu tier.");
        Interlocked.Increment(ref _gpuTierFallbacks);
        StoreLog.GpuBudgetFallback(_logger, spec.Encoder, spec.Fingerprint, why ?? "no device memory");
        state.Tier = Tier.Cpu;
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
    public async Task<StoreCheckpoint> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await _admin.WaitAsync(cancellationToken);
        try
        {
            return await CheckpointCoreAsync();
        }
        finally
        {
            _admin.Release();
        }
    }

    /// <summary>How long log writes may keep failing while a checkpoint waits on them before it gives up and reports it.</summary>
    private static readonly TimeSpan WriteFailureGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The FASTER checkpoints of one store checkpoint: started together, committed by one manifest once all three
    /// are durable. Kept across calls when the SaveDir failed under them, so the next call can commit it.
    /// </summary>
    private sealed record InFlightCheckpoint(Dictionary<string, Guid> Tokens, Task[] Tasks, List<ManifestNamespace> Namespaces, long LabelItems, long FileErrorMark);

    /// <summary>Caller holds <see cref="_admin"/>.</summary>
    private async Task<StoreCheckpoint> CheckpointCoreAsync()
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

        var stores = new[] { CpuStore, DiskStore, MetaStore };
        var tokens = new Dictionary<string, Guid>();
        var tasks = new Task[stores.Length];
        var fileMark = SaveDir.CheckpointFileMark;
        List<ManifestNamespace> namespaces;
        long labelItems;

        // Shut writes out while the FASTER versions switch: counts taken now are exactly what the checkpoints hold.
        await Gate.CloseAsync();
        try
        {
            namespaces = SnapshotNamespaces();
            labelItems = LabelItems;
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
            Gate.Open();
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
            if (!SaveDir.Failing)
                failing.Reset();
            else if (!failing.IsRunning)
                failing.Start();
            if (!all.IsCompleted && failing.Elapsed >= WriteFailureGrace)
                throw WriteFailure();
        }

        await all;
        return !SaveDir.CheckpointFilesFailedSince(checkpoint.FileErrorMark);
    }

    private SaveDirWriteException WriteFailure() => new(
        $"SaveDir {Root} cannot be written ({SaveDir.LastCause ?? "write failed"}; {SaveDir.RetryingWrites} log writes waiting, {SaveDir.WriteErrors} failed writes so far): the checkpoint was not committed; {LatestDurable}. " +
        "The store keeps serving from memory and retries its log writes; free space (or make the SaveDir writable) and checkpoint again.");

    /// <summary>What a failed checkpoint leaves durable, for its error message.</summary>
    private string LatestDurable => _manifest is null ? "nothing has been committed yet" : $"checkpoint {_manifest.Version} stays the latest durable one";

    private StoreCheckpoint Commit(InFlightCheckpoint done, Stopwatch clock)
    {
        var stores = new[] { CpuStore, DiskStore, MetaStore };
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
        CheckpointCompleted?.Invoke(this, checkpoint);
    }

    private List<ManifestNamespace> SnapshotNamespaces()
    {
        var list = new List<ManifestNamespace>(_namespaces.Count);
        foreach (var state in _namespaces.Values)
        {
            if (state.Dropped)
                continue;
            list.Add(new ManifestNamespace(state.Spec.Fingerprint, state.Spec.Encoder, state.Spec.Dim, state.Spec.DType, state.Tier,
                state.StorageTier, Interlocked.Read(ref state.Items), Interlocked.Read(ref state.Bytes)));
        }

        return list;
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

    /// <summary>Registered namespaces and those found in the SaveDir, with item counts and bytes per tier.</summary>
    public IReadOnlyList<NamespaceInfo> ListNamespaces()
    {
        ThrowIfDisposed();
        var list = new List<NamespaceInfo>(_namespaces.Count);
        foreach (var state in _namespaces.Values)
        {
            if (state.Dropped)
                continue;
            var kv = StoreOf(state);
            var live = Interlocked.Read(ref state.Bytes);
            var inMemory = kv.InMemoryFraction;
            var memory = (long)(live * inMemory);
            var disk = Persistent ? live : live - memory;
            var spec = state.Spec;
            list.Add(new NamespaceInfo(spec.Encoder, spec.Fingerprint, spec.Dim, spec.DType, state.Tier, state.Registered,
                Interlocked.Read(ref state.Items), state.Table?.UsedBytes ?? 0, memory, disk,
                Interlocked.Read(ref state.Hits), Interlocked.Read(ref state.Misses),
                state.Table?.ReservedBytes ?? 0, state.Table?.Errors ?? 0, state.Table?.Off ?? false));
        }

        list.Sort(static (a, b) => string.CompareOrdinal(a.Encoder, b.Encoder));
        return list;
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
        await _admin.WaitAsync(cancellationToken);
        try
        {
            if (!_namespaces.TryGetValue(fingerprint, out var state) || state.Dropped)
                return new DropResult(fingerprint, false, 0, 0);

            var kv = StoreOf(state);
            long before, after;
            await Gate.CloseAsync(cancellationToken);
            try
            {
                lock (_registerLock)
                {
                    state.Dropped = true;
                    _namespaces.TryRemove(fingerprint, out _);
                }

                before = kv.LogBytes;
                Compact(kv, state.FingerprintBytes);
                after = kv.LogBytes;
            }
            finally
            {
                Gate.Open();
            }

            state.Table?.Dispose();
            state.Table = null;
            state.Tiers = [FasterTierOf(state)];
            if (Persistent)
            {
                // Commit the compacted state (its new begin address) before deleting any log file.
                await CheckpointCoreAsync();
            }

            kv.Kv.Log.Truncate();
            var items = Interlocked.Read(ref state.Items);
            var reclaimed = Math.Max(0, before - after);
            StoreLog.Dropped(_logger, fingerprint, items, reclaimed);
            return new DropResult(fingerprint, true, items, reclaimed);
        }
        finally
        {
            _admin.Release();
        }
    }

    /// <summary>Rewrites <paramref name="kv"/>'s log without the records of the namespace; readers see the generation move.</summary>
    private void Compact(KvStore kv, byte[] fingerprint)
    {
        var log = kv.Kv.Log;
        _compactionIdle.Reset();
        Interlocked.Increment(ref _compactions);
        try
        {
            log.ShiftReadOnlyAddress(log.TailAddress, wait: true);
            using var session = kv.NewSession(new StoreFunctions());
            session.Compact(log.SafeReadOnlyAddress, CompactionType.Lookup, new DropCompaction(fingerprint));
        }
        finally
        {
            Interlocked.Increment(ref _compactions);
            _compactionIdle.Set();
        }
    }

    /// <summary>Compaction treats every record of the dropped namespace as deleted.</summary>
    private readonly struct DropCompaction(byte[] fingerprint) : ICompactionFunctions<SpanByte, SpanByte>
    {
        public bool IsDeleted(ref SpanByte key, ref SpanByte value) => key.AsReadOnlySpan().StartsWith(fingerprint);
    }

    internal void ReportTableCorruption(NamespaceState state, int count, string firstKey) =>
        StoreLog.TableCorruption(_logger, count, state.Spec.Encoder, state.Spec.Fingerprint, firstKey);

    /// <summary>Counts compactions (by a drop) of a data store: odd while one runs.</summary>
    internal long CompactionGeneration => Interlocked.Read(ref _compactions);

    /// <summary>
    /// True when a compaction ran at any time since <paramref name="generation"/> was read. FASTER's compaction
    /// copies each live record to the log's tail and then moves the log's begin past the old copies; a lookup
    /// that took an old address just before that move reads as not found. A reader that missed rows while a
    /// compaction overlapped it waits for the compaction to end and reads again (<paramref name="generation"/>
    /// is then the new count); one that did not, or missed nothing, pays one read of a counter.
    /// </summary>
    internal bool CompactionOverlapped(ref long generation)
    {
        var now = CompactionGeneration;
        if (now == generation && (now & 1) == 0)
            return false;
        _compactionIdle.Wait();
        generation = CompactionGeneration;
        return true;
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Takes a final checkpoint (with a SaveDir) and closes the store. Sessions still open are closed too.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Cancel();
        try
        {
            _periodic?.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
        }

        foreach (var session in _sessions.Keys)
            session.DisposeFasterSessions();
        _sessions.Clear();

        if (Persistent)
        {
            _admin.Wait();
            try
            {
                CheckpointCoreAsync().GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or FasterException or UnauthorizedAccessException)
            {
                StoreLog.FinalCheckpointFailed(_logger, e);
            }
            finally
            {
                _admin.Release();
            }
        }

        // A checkpoint the SaveDir failed under may still wait for its log writes: closing the stores fails those
        // writes (KvStore.Dispose), and the wait is abandoned with them.
        foreach (var state in _namespaces.Values)
            state.Table?.Dispose();
        MetaStore.Dispose();
        DiskStore.Dispose();
        CpuStore.Dispose();
        _lock?.Dispose();
        Gate.Dispose();
        _compactionIdle.Dispose();
        _admin.Dispose();
        _stop.Dispose();
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
