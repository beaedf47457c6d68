using System.Collections.Concurrent;
using EmbedCache.Engine.Embeddings;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The store's namespaces: those registered by this process and those found in the SaveDir, each with its tiers
/// (<see cref="IEmbeddingTier"/>: a Gpu table from the shared device budget, if it gets one, over its FASTER store).
/// Thread-safe.
/// </summary>
internal sealed class NamespaceRegistry
{
    private readonly ConcurrentDictionary<Fingerprint, NamespaceState> _namespaces = new();
    private readonly Lock _registerLock = new();
    private readonly StoreOptions _options;
    private readonly ILogger _logger;
    private readonly Lazy<bool> _cuda;
    private readonly GpuBudget _gpuBudget;
    private readonly FasterTier _cpu;
    private readonly FasterTier _disk;
    private readonly RemoteTier? _remote;
    private bool _gpuFallbackWarned;
    private long _gpuTierFallbacks;

    /// <param name="manifest">The recovered checkpoint: its namespaces are known (not registered) from the start.</param>
    public NamespaceRegistry(StoreOptions options, ILogger logger, Lazy<bool> cuda, FasterTier cpu, FasterTier disk, RemoteTier? remote, Manifest? manifest)
    {
        _remote = remote;
        _options = options;
        _logger = logger;
        _cuda = cuda;
        _cpu = cpu;
        _disk = disk;
        _gpuBudget = new GpuBudget(options.GpuMemoryBytes);
        foreach (var ns in manifest?.Namespaces ?? [])
        {
            var spec = new NamespaceSpec(ns.Encoder, ns.Fingerprint, ns.Dim, ns.DType, ns.Tier);
            var state = new NamespaceState(spec, ns.Tier, ns.StorageTier, registered: false) { Items = ns.Items, Bytes = ns.Bytes };
            state.Tiers = LocalAndRemote(state);
            _namespaces[ns.Fingerprint] = state;
        }
    }

    /// <summary>Device bytes of the Gpu tier (all namespaces together): the budget and what tables have reserved of it.</summary>
    public (long Budget, long Reserved) GpuMemory => (_gpuBudget.Total, _gpuBudget.Reserved);

    /// <summary>Gpu-tier namespaces that got no device memory (budget spent, or the device refused) and use the Cpu tier.</summary>
    public long GpuTierFallbacks => Interlocked.Read(ref _gpuTierFallbacks);

    /// <summary>Makes the device operations of Gpu tables registered from now on.</summary>
    public Func<torch.Device, TableDevice> TableDevices { get; set; } = device => new TableDevice(device);

    /// <summary>
    /// Registers an encoder's namespace (idempotent per fingerprint) and resolves <see cref="Tier.Auto"/>. A namespace
    /// already in the SaveDir keeps its data and the FASTER store it was written to.
    /// </summary>
    public NamespaceHandle Register(NamespaceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
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
                    throw new NamespaceConfigException(
                        $"namespace {spec.Fingerprint} is stored as dim {existing.Spec.Dim} {existing.Spec.DType}; registered as dim {spec.Dim} {spec.DType}");
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
            state.Tiers = LocalAndRemote(state);
            if (tier == Tier.Gpu)
                AttachTable(state);
            state.Handle = new NamespaceHandle(state);
            _namespaces[spec.Fingerprint] = state;
            return state.Handle;
        }
    }

    private static Tier StorageTierOf(Tier tier) => tier == Tier.Disk ? Tier.Disk : Tier.Cpu;

    /// <summary>The FASTER tier that holds the namespace's data, then the remote tier when there is one.</summary>
    private IEmbeddingTier[] LocalAndRemote(NamespaceState state) =>
        _remote is null ? [FasterTierOf(state)] : [FasterTierOf(state), _remote];

    /// <summary>The FASTER tier that holds the namespace's data.</summary>
    public FasterTier FasterTierOf(NamespaceState state) => state.StorageTier == Tier.Disk ? _disk : _cpu;

    private void CheckRecordFits(NamespaceSpec spec, Tier storage)
    {
        var kv = storage == Tier.Disk ? _disk.Kv : _cpu.Kv;
        var record = StoreFunctions.RecordBytes(sizeof(int) + Fingerprint.Size + 1 + ItemKeyMax, sizeof(int) + Checksums.Size + spec.RowBytes);
        if (record > kv.MaxRecordBytes)
        {
            throw new NamespaceConfigException(
                $"namespace {spec.Encoder}: rows of {spec.RowBytes} bytes do not fit the {storage} tier's pages ({kv.MaxRecordBytes} bytes per record); raise its memory budget");
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
            state.Tiers = [new GpuTableTier(table, ReportTableCorruption), .. LocalAndRemote(state)];
            return;
        }

        if (_options.RequireGpu)
            throw new StoreOpenException($"namespace {spec.Encoder}: RequireGpu is true but its Gpu table gets no device memory: {why}. Raise Store:GpuMemoryBytes or put fewer encoders in the Gpu tier.");
        Interlocked.Increment(ref _gpuTierFallbacks);
        StoreLog.GpuBudgetFallback(_logger, spec.Encoder, spec.Fingerprint, why ?? "no device memory");
        state.Tier = Tier.Cpu;
    }

    /// <summary>True when a namespace of <paramref name="fingerprint"/> is registered or stored, and not dropped.</summary>
    public bool IsLive(Fingerprint fingerprint) => _namespaces.TryGetValue(fingerprint, out var state) && !state.Dropped;

    /// <summary>
    /// Takes a namespace out (it is marked dropped first, so handles to it stop working) and gives its Gpu table's
    /// memory back; null when there is no live one. The caller then compacts its records away.
    /// </summary>
    public NamespaceState? Remove(Fingerprint fingerprint)
    {
        lock (_registerLock)
        {
            if (!_namespaces.TryGetValue(fingerprint, out var state) || state.Dropped)
                return null;
            state.Dropped = true;
            _namespaces.TryRemove(fingerprint, out _);
            return state;
        }
    }

    /// <summary>Releases a removed namespace's Gpu table.</summary>
    public void ReleaseTable(NamespaceState state)
    {
        state.Table?.Dispose();
        state.Table = null;
        state.Tiers = LocalAndRemote(state);
    }

    /// <summary>Registered namespaces and those found in the SaveDir, with item counts and bytes per tier.</summary>
    public IReadOnlyList<NamespaceInfo> List(bool persistent)
    {
        var list = new List<NamespaceInfo>(_namespaces.Count);
        foreach (var state in _namespaces.Values)
        {
            if (state.Dropped)
                continue;
            var kv = FasterTierOf(state).Kv;
            var live = Interlocked.Read(ref state.Bytes);
            var inMemory = kv.InMemoryFraction;
            var memory = (long)(live * inMemory);
            var disk = persistent ? live : live - memory;
            var spec = state.Spec;
            list.Add(new NamespaceInfo(spec.Encoder, spec.Fingerprint, spec.Dim, spec.DType, state.Tier, state.Registered,
                Interlocked.Read(ref state.Items), state.Table?.UsedBytes ?? 0, memory, disk,
                Interlocked.Read(ref state.Hits), Interlocked.Read(ref state.Misses),
                state.Table?.ReservedBytes ?? 0, state.Table?.Errors ?? 0, state.Table?.Off ?? false)
            {
                RemoteHits = Interlocked.Read(ref state.RemoteHits),
                RemoteCorruptRows = Interlocked.Read(ref state.RemoteCorruptRows),
            });
        }

        list.Sort(static (a, b) => string.CompareOrdinal(a.Encoder, b.Encoder));
        return list;
    }

    /// <summary>The live namespaces as a manifest records them.</summary>
    public List<ManifestNamespace> Snapshot()
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

    private void ReportTableCorruption(NamespaceState state, int count, string firstKey) =>
        StoreLog.TableCorruption(_logger, count, state.Spec.Encoder, state.Spec.Fingerprint, firstKey);

    /// <summary>Releases every Gpu table (the store is closing).</summary>
    public void DisposeTables()
    {
        foreach (var state in _namespaces.Values)
            state.Table?.Dispose();
    }
}

/// <summary>
/// An encoder's namespace cannot be registered as configured: its rows do not fit the tier's pages, or the SaveDir
/// holds it with another shape. A configuration error: the service reports it in one line at start-up.
/// </summary>
public sealed class NamespaceConfigException(string message) : EngineException(ErrorKind.FailedPrecondition, message);
