using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Storage;

/// <summary>A registered namespace, as <see cref="StoreSession"/> calls take it. Cheap to keep; thread-safe.</summary>
public sealed class NamespaceHandle
{
    internal NamespaceHandle(NamespaceState state) => State = state;

    internal NamespaceState State { get; }

    /// <summary>The spec as registered (its <see cref="NamespaceSpec.Tier"/> may be <see cref="Tier.Auto"/>).</summary>
    public NamespaceSpec Spec => State.Spec;

    public Fingerprint Fingerprint => State.Spec.Fingerprint;

    public int RowBytes => State.RowBytes;

    /// <summary>The resolved tier: Gpu, Cpu or Disk, never Auto.</summary>
    public Tier Tier => State.Tier;

    /// <summary>True when the Gpu table is on a CUDA device (false: the host fallback, or not a Gpu namespace).</summary>
    public bool OnDevice => State.Table?.OnDevice ?? false;

    /// <summary>Capacity of the Gpu table in rows (0 for other tiers).</summary>
    public int GpuCapacity => State.Table?.Capacity ?? 0;

    /// <summary>Rows currently in the Gpu table.</summary>
    public int GpuCount => State.Table?.Count ?? 0;

    /// <summary>Device bytes the Gpu table has reserved from the shared budget (its rows use <see cref="GpuCount"/> × RowBytes of them).</summary>
    public long GpuReservedBytes => State.Table?.ReservedBytes ?? 0;

    /// <summary>Device errors of the Gpu table (each served from FASTER instead).</summary>
    public long GpuErrors => State.Table?.Errors ?? 0;

    /// <summary>True once repeated device errors switched the Gpu table off.</summary>
    public bool GpuTableOff => State.Table?.Off ?? false;

    public long Items => Interlocked.Read(ref State.Items);

    /// <summary>Rows found by Get since this process registered the namespace.</summary>
    public long Hits => Interlocked.Read(ref State.Hits);

    /// <summary>Rows not found by Get since this process registered the namespace.</summary>
    public long Misses => Interlocked.Read(ref State.Misses);

    /// <summary>Rows served from the Gpu table (a subset of <see cref="Hits"/>).</summary>
    public long GpuHits => Interlocked.Read(ref State.GpuHits);

    /// <summary>Rows of the Gpu table that failed their checksum; each was dropped from the table and re-read from FASTER.</summary>
    public long GpuCorruptRows => Interlocked.Read(ref State.GpuCorruptRows);

    /// <summary>Rows the local tiers missed and the remote tier served (each then filled the local tiers).</summary>
    public long RemoteHits => Interlocked.Read(ref State.RemoteHits);

    /// <summary>Rows read from the remote tier that failed their checksum; each was treated as a miss, never served.</summary>
    public long RemoteCorruptRows => Interlocked.Read(ref State.RemoteCorruptRows);

    /// <summary>False once the namespace has been dropped; calls with this handle then throw.</summary>
    public bool IsLive => !State.Dropped;

    public override string ToString() => $"{Spec.Encoder} ({Fingerprint}, {Tier})";
}

/// <summary>Everything the store knows about one namespace, registered or only found in the SaveDir.</summary>
internal sealed class NamespaceState
{
    public NamespaceState(NamespaceSpec spec, Tier tier, Tier storageTier, bool registered)
    {
        Spec = spec;
        Tier = tier;
        StorageTier = storageTier;
        Registered = registered;
        RowBytes = spec.DType.RowBytes(spec.Dim);
        FingerprintBytes = spec.Fingerprint.ToBytes();
    }

    public NamespaceSpec Spec { get; set; }

    /// <summary>Resolved tier.</summary>
    public Tier Tier { get; set; }

    /// <summary>Which FASTER store holds the data: Cpu (also for Gpu namespaces) or Disk.</summary>
    public Tier StorageTier { get; }

    public bool Registered { get; set; }

    public volatile bool Dropped;

    public int RowBytes { get; }

    public byte[] FingerprintBytes { get; }

    public GpuTable? Table { get; set; }

    /// <summary>The tiers a session reads through, top first: the Gpu table (if any), the FASTER store, then the remote tier (if any).</summary>
    public IEmbeddingTier[] Tiers { get; set; } = [];

    public NamespaceHandle? Handle { get; set; }

    public long Items;
    public long Bytes;
    public long Hits;
    public long Misses;
    public long GpuHits;
    public long GpuCorruptRows;
    public long RemoteHits;
    public long RemoteCorruptRows;

    public void ThrowIfDropped()
    {
        if (Dropped)
            throw new NamespaceDroppedException($"namespace {Spec.Encoder} ({Spec.Fingerprint}) was dropped while this call used it; retry (the encoder has a fresh, empty namespace), or register it again");
    }
}

/// <summary>
/// A call used a namespace that a drop removed meanwhile (a request racing DropNamespace). Its encoder is rebound to a
/// fresh namespace at once, so the call succeeds when retried.
/// </summary>
public sealed class NamespaceDroppedException(string message) : EngineException(ErrorKind.Unavailable, message);
