using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Storage;

/// <summary>An encoder's namespace: its identity, row shape and the tier it should live in.</summary>
public sealed record NamespaceSpec(string Encoder, Fingerprint Fingerprint, int Dim, EmbeddingDType DType, Tier Tier)
{
    /// <summary>Bytes of one stored embedding.</summary>
    public int RowBytes => DType.RowBytes(Dim);
}

/// <summary>A durable checkpoint: everything written before <see cref="EmbeddingStore.CheckpointAsync"/> was called is in it.</summary>
/// <param name="Version">Increases by one per checkpoint, across restarts.</param>
/// <param name="Time">When the checkpoint became durable (UTC).</param>
/// <param name="Persistent">False for a memory-only store, whose checkpoints are only counted.</param>
/// <param name="Duration">How long taking it took (zero for one recovered at start-up).</param>
public sealed record StoreCheckpoint(long Version, DateTimeOffset Time, bool Persistent, TimeSpan Duration = default);

/// <summary>What <see cref="EmbeddingStore.ListNamespaces"/> reports for one namespace.</summary>
/// <param name="Registered">False for a namespace found in the SaveDir but not registered by this process (e.g. a stale model).</param>
/// <param name="Items">Stored embeddings.</param>
/// <param name="GpuBytes">Device (or fallback host) memory of its Gpu table, 0 for other tiers.</param>
/// <param name="MemoryBytes">Its share of FASTER's in-memory log, estimated from the live record bytes.</param>
/// <param name="DiskBytes">Its share of the persisted log (0 without a SaveDir).</param>
public sealed record NamespaceInfo(
    string Encoder, Fingerprint Fingerprint, int Dim, EmbeddingDType DType, Tier Tier, bool Registered,
    long Items, long GpuBytes, long MemoryBytes, long DiskBytes, long Hits, long Misses,
    long GpuReservedBytes = 0, long GpuErrors = 0, bool GpuTableOff = false)
{
    /// <summary>Rows the local tiers missed and the remote tier served.</summary>
    public long RemoteHits { get; init; }

    /// <summary>Rows from the remote tier that failed their checksum (treated as misses, never served).</summary>
    public long RemoteCorruptRows { get; init; }
}

/// <summary>Outcome of <see cref="EmbeddingStore.Drop"/>.</summary>
/// <param name="Found">False when no such namespace was registered or stored.</param>
/// <param name="Items">Embeddings removed.</param>
/// <param name="BytesReclaimed">Log bytes freed by compaction (live records of other namespaces are moved, not counted).</param>
public sealed record DropResult(Fingerprint Fingerprint, bool Found, long Items, long BytesReclaimed);

/// <summary>The SaveDir cannot be opened: corrupt, another format version, not a store, or in use.</summary>
public sealed class StoreOpenException(string message, Exception? innerException = null)
    : EngineException(ErrorKind.FailedPrecondition, message, innerException);

/// <summary>A stored value failed its checksum; no data was returned for it.</summary>
public sealed class StoreCorruptionException(string message, Exception? innerException = null)
    : EngineException(ErrorKind.DataLoss, message, innerException)
{
    /// <summary>Index in the batch of the first corrupt entry, or -1.</summary>
    public int ItemIndex { get; init; } = -1;

    /// <summary>How many entries of the batch failed their checksum.</summary>
    public int CorruptCount { get; init; }
}
