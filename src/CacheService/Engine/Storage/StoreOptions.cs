using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Remote;

namespace EmbedCache.Engine.Storage;

/// <summary>Configuration of the embedding store (host section <c>EmbedCache:Store</c>).</summary>
public sealed class StoreOptions
{
    public const long DefaultCpuMemoryBytes = 2L << 30;
    public const long DefaultDiskMemoryBytes = 64L << 20;
    public const long DefaultGpuMemoryBytes = 1L << 30;
    public const long MinMemoryBytes = 1L << 20;

    /// <summary>
    /// Where the store persists (FASTER logs, checkpoints, manifest). Null or empty: memory only — nothing survives
    /// the process, and spill files (Disk tier, Cpu overflow) go to a private temp directory removed on dispose.
    /// </summary>
    public string? SaveDir { get; set; }

    /// <summary>Tier of namespaces registered with <see cref="Tier.Auto"/>: Gpu when CUDA is present, else Cpu.</summary>
    public Tier DefaultTier { get; set; } = Tier.Auto;

    /// <summary>
    /// Host memory of the Cpu-tier FASTER log (shared by Cpu and Gpu namespaces; Gpu namespaces are backed by it).
    /// The hash index is sized from it too. Pages are allocated as the log grows.
    /// </summary>
    public long CpuMemoryBytes { get; set; } = DefaultCpuMemoryBytes;

    /// <summary>Memory window of the Disk-tier FASTER store (log pages in memory + hash index); the data lives on disk.</summary>
    public long DiskMemoryBytes { get; set; } = DefaultDiskMemoryBytes;

    /// <summary>
    /// Device memory of the Gpu tier in all: the tables of every Gpu-tier namespace share it, reserving it a segment
    /// (a sixteenth of it, at most 64 MiB) at a time as they fill, first come first served. A namespace that gets none
    /// is served from the Cpu tier.
    /// </summary>
    public long GpuMemoryBytes { get; set; } = DefaultGpuMemoryBytes;

    /// <summary>The CUDA device of the Gpu tier (cuda:N).</summary>
    public int GpuDevice { get; set; }

    /// <summary>
    /// Fail at open when the CUDA device is not usable (tested with an allocation), instead of falling back to a host
    /// tensor table; and fail registering a Gpu-tier namespace that gets no device memory instead of using the Cpu tier.
    /// </summary>
    public bool RequireGpu { get; set; }

    /// <summary>Period of automatic checkpoints (with a SaveDir). <see cref="TimeSpan.Zero"/> disables them.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// When the SaveDir is corrupt, from another format version or not a store: rename it to
    /// <c>&lt;SaveDir&gt;.moved-&lt;UTC time&gt;</c> and start empty (logged as an error) instead of failing to open.
    /// </summary>
    public bool MoveAsideIncompatibleSaveDir { get; set; }

    /// <summary>
    /// How long <see cref="EmbeddingStore.Open"/> waits for a SaveDir that another process holds (a previous instance
    /// still taking its shutdown checkpoint) before it fails. <see cref="TimeSpan.Zero"/> fails at once.
    /// </summary>
    public TimeSpan LockWait { get; set; }

    /// <summary>The shared cluster behind the local tiers (none without endpoints).</summary>
    public RemoteOptions Remote { get; set; } = new();

    /// <summary>Size of the log files FASTER writes (2^bits bytes); truncation after a drop frees whole files.</summary>
    internal int LogSegmentSizeBits { get; set; } = 24;

    /// <summary>Error lines naming the key, e.g. <c>CpuMemoryBytes must be >= 1048576 (was -1)</c>. Empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        var errors = new List<string>();
        if (!Enum.IsDefined(DefaultTier))
            errors.Add($"DefaultTier must be one of Auto, Gpu, Cpu, Disk (was {(int)DefaultTier})");
        CheckMemory(errors, nameof(CpuMemoryBytes), CpuMemoryBytes);
        CheckMemory(errors, nameof(DiskMemoryBytes), DiskMemoryBytes);
        CheckMemory(errors, nameof(GpuMemoryBytes), GpuMemoryBytes);
        if (GpuDevice < 0)
            errors.Add($"GpuDevice must be >= 0 (was {GpuDevice})");
        if (CheckpointInterval < TimeSpan.Zero)
            errors.Add($"CheckpointInterval must be >= 00:00:00 (was {CheckpointInterval})");
        if (LockWait < TimeSpan.Zero)
            errors.Add($"LockWait must be >= 00:00:00 (was {LockWait})");
        if (!string.IsNullOrEmpty(SaveDir))
        {
            try
            {
                _ = Path.GetFullPath(SaveDir);
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                errors.Add($"SaveDir is not a valid path ({e.Message}) (was '{SaveDir}')");
            }
        }

        errors.AddRange(Remote.Validate());
        return errors;
    }

    private static void CheckMemory(List<string> errors, string name, long value)
    {
        if (value < MinMemoryBytes)
            errors.Add($"{name} must be >= {MinMemoryBytes} (was {value})");
        else if (value > 1L << 42)
            errors.Add($"{name} must be <= {1L << 42} (was {value})");
    }
}
