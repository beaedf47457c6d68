using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Jobs;
using EmbedCache.Engine.Remote;
using EmbedCache.Engine.Storage;

namespace EmbedCache.Server.Configuration;

/// <summary>The <c>EmbedCache</c> configuration section.</summary>
public sealed class EmbedCacheOptions
{
    public const string SectionName = "EmbedCache";

    /// <summary>Address both listeners bind to: an IP address, <c>localhost</c> or <c>*</c> (all interfaces).</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>gRPC over HTTP/2 cleartext. 0 picks a free port (tests).</summary>
    public int GrpcPort { get; set; } = 50051;

    /// <summary>HTTP/1.1 for /healthz, /metrics and the status page. 0 picks a free port (tests).</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>
    /// An absolute path: gRPC is also served on a Unix domain socket there (HTTP/2, no TLS; the same services and API
    /// keys). Empty (the default) turns it off. The socket is owner-only (0600) unless <see cref="UnixSocketGroup"/> is set.
    /// </summary>
    public string? UnixSocketPath { get; set; }

    /// <summary>A group name: the socket at <see cref="UnixSocketPath"/> is then 0660 and owned by this group.</summary>
    public string? UnixSocketGroup { get; set; }

    /// <summary>
    /// Directory of the persistent store. Empty means the default, <see cref="DefaultSaveDirectory"/>
    /// (<c>$XDG_DATA_HOME/embedcache</c>, else <c>~/.local/share/embedcache</c>); <c>Store:MemoryOnly</c> keeps the
    /// cache in memory instead.
    /// </summary>
    public string? SaveDir { get; set; }

    /// <summary>Console log format: <c>text</c> (human) or <c>json</c> (compact JSON, one event per line).</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>
    /// Directory under which datasets may be named by relative path (relative to the service's
    /// content root when itself relative). Nothing outside it is ever read.
    /// </summary>
    public string DataRoot { get; set; } = "datasets";

    /// <summary>Registered datasets: name → directory holding a dataset.json (relative to DataRoot, or absolute).</summary>
    public Dictionary<string, string> Datasets { get; set; } = new(StringComparer.Ordinal)
    {
        ["digits"] = "digits",
        ["fortunes"] = "fortunes",
    };

    /// <summary>
    /// Encoders by name. Starts with the built-in defaults (all-minilm-l6-v2, resnet18 and the random-weight
    /// random-minilm, random-convnet, random-mlp), so config can tune those (<c>Encoders:all-minilm-l6-v2:BatchSize</c>)
    /// or add new ones (with a <c>Kind</c>).
    /// </summary>
    public Dictionary<string, EncoderOptions> Encoders { get; set; } =
        EncoderRegistry.Defaults().ToDictionary(kv => kv.Key, kv => kv.Value.Clone(), StringComparer.Ordinal);

    /// <summary>Store tiers, budgets and checkpointing (SaveDir above is the store's directory).</summary>
    public StoreSection Store { get; set; } = new();

    public JobSection Jobs { get; set; } = new();

    public LimitSection Limits { get; set; } = new();

    /// <summary>The shared-memory epoch stream offered to trainers on the Unix socket (StreamDatasetShared).</summary>
    public SharedMemorySection SharedMemory { get; set; } = new();

    /// <summary>API keys (trainer and admin roles) and the anonymous-mode rule.</summary>
    public AuthSection Auth { get; set; } = new();

    /// <summary>TLS for the gRPC listener.</summary>
    public TlsSection Tls { get; set; } = new();

    /// <summary>
    /// Where the store lives when SaveDir is not set: <c>$XDG_DATA_HOME/embedcache</c> when XDG_DATA_HOME is an
    /// absolute path, else <c>$HOME/.local/share/embedcache</c> (the XDG base directory rules); null without either.
    /// </summary>
    public static string? DefaultSaveDirectory()
    {
        if (Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg))
            return Path.Combine(xdg, "embedcache");
        if (Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home && Path.IsPathRooted(home))
            return Path.Combine(home, ".local", "share", "embedcache");
        return null;
    }

    /// <summary>Describes where the store lives, for the start-up line: a path and how it was chosen.</summary>
    public string DescribeStore(string contentRoot) =>
        Store.MemoryOnly ? "memory only (EmbedCache:Store:MemoryOnly=true; nothing survives a restart)"
        : string.IsNullOrWhiteSpace(SaveDir) ? $"{DefaultSaveDirectory()} (the default SaveDir; set EmbedCache:SaveDir to move it, or EmbedCache:Store:MemoryOnly=true to keep the cache in memory only)"
        : $"{Path.GetFullPath(SaveDir, contentRoot)} (EmbedCache:SaveDir)";

    public sealed class StoreSection
    {
        /// <summary>Tier for encoders that do not choose one: Auto (Gpu with CUDA, else Cpu), Gpu, Cpu or Disk.</summary>
        public Tier DefaultTier { get; set; } = Tier.Auto;

        public long CpuMemoryBytes { get; set; } = 2L << 30;

        public long DiskMemoryBytes { get; set; } = 64L << 20;

        /// <summary>Device memory of the Gpu tier in all, shared by every Gpu-tier namespace (reserved as their tables fill).</summary>
        public long GpuMemoryBytes { get; set; } = 1L << 30;

        /// <summary>The CUDA device of the Gpu tier (cuda:N).</summary>
        public int GpuDevice { get; set; }

        /// <summary>
        /// Refuse to start when the CUDA device is not usable or a Gpu-tier encoder gets no device memory, instead of
        /// falling back to host memory or the Cpu tier.
        /// </summary>
        public bool RequireGpu { get; set; }

        /// <summary>Seconds between periodic checkpoints; 0 disables them (checkpoints still follow prewarm jobs and shutdown).</summary>
        public int CheckpointIntervalSeconds { get; set; } = 60;

        /// <summary>Move a SaveDir that is not a compatible store aside (and start empty) instead of refusing to start.</summary>
        public bool MoveAsideIncompatibleSaveDir { get; set; }

        /// <summary>Keep the cache in memory only (nothing survives a restart); SaveDir is then not used.</summary>
        public bool MemoryOnly { get; set; }

        /// <summary>
        /// Seconds to wait for a SaveDir that another process holds (the previous instance still checkpointing on its
        /// way out during a rolling restart) before refusing to start; 0 refuses at once. Health is NOT_SERVING meanwhile.
        /// </summary>
        public int SaveDirLockWaitSeconds { get; set; }

        /// <summary>
        /// The shared cluster behind the local tiers (Garnet or Redis Cluster): endpoints, ACL user/password, TLS,
        /// timeouts, circuit breaker, key prefix, write-behind queue, prewarm shards and leases. No endpoints: none.
        /// </summary>
        public RemoteOptions Remote { get; set; } = new();
    }

    public sealed class JobSection
    {
        public int DefaultBatchSize { get; set; } = 64;

        public int MaxWorkers { get; set; } = Math.Max(1, Environment.ProcessorCount * 2);

        public int MaxConcurrentJobs { get; set; } = 2;

        /// <summary>Seconds between checkpoints while a prewarm writes (how far "committed" can lag).</summary>
        public int CheckpointIntervalSeconds { get; set; } = 10;
    }

    public sealed class LimitSection
    {
        /// <summary>Keys in one lookup request.</summary>
        public int MaxKeysPerRequest { get; set; } = 16384;

        /// <summary>Largest gRPC message the service accepts.</summary>
        public int MaxReceiveMessageBytes { get; set; } = 64 << 20;

        /// <summary>Items in one StreamDataset batch.</summary>
        public int MaxStreamBatchSize { get; set; } = 8192;

        public int DefaultStreamBatchSize { get; set; } = 1024;

        /// <summary>Streaming calls one caller (API key, or peer address without keys) may have open at once.</summary>
        public int MaxConcurrentStreamsPerCaller { get; set; } = 64;

        /// <summary>HTTP/2 streams per connection (Kestrel); further calls wait for a free stream.</summary>
        public int MaxStreamsPerConnection { get; set; } = 100;

        /// <summary>Feature bytes (tensor data plus UTF-8 text) in one lookup request.</summary>
        public int MaxFeatureBytesPerRequest { get; set; } = 32 << 20;
    }

    public sealed class SharedMemorySection
    {
        /// <summary>Where ring files are created (owner-only, unlinked once the trainer has mapped them).</summary>
        public string Directory { get; set; } = "/dev/shm";

        /// <summary>
        /// Ring size when the trainer does not ask for one; a trainer may ask for 1 MiB .. 1 GiB. Small enough that one
        /// epoch reuses its pages (a fresh page costs a fault on both sides), large enough to run several batches ahead.
        /// </summary>
        public long RingBytes { get; set; } = 16L << 20;

        /// <summary>How long a trainer may keep the ring full (or not map it) before its stream is cut off.</summary>
        public int SlowReaderSeconds { get; set; } = 30;
    }

    public sealed class AuthSection
    {
        /// <summary>Keys for the trainer API (EmbeddingCache).</summary>
        public List<string> TrainerKeys { get; set; } = [];

        /// <summary>Keys for the admin API (CacheAdmin, /metrics); they may call the trainer API too.</summary>
        public List<string> AdminKeys { get; set; } = [];

        /// <summary>A file of trainer keys, one per line (blank lines and lines starting with # ignored).</summary>
        public string? TrainerKeysFile { get; set; }

        /// <summary>A file of admin keys, one per line.</summary>
        public string? AdminKeysFile { get; set; }

        /// <summary>Start without keys on a non-loopback address (anyone who can reach the port may call anything).</summary>
        public bool AllowAnonymousNonLoopback { get; set; }
    }

    public sealed class TlsSection
    {
        /// <summary>PEM certificate (with KeyPath) or PKCS#12/PFX file; empty means cleartext HTTP/2.</summary>
        public string? CertificatePath { get; set; }

        /// <summary>PEM private key for a PEM CertificatePath.</summary>
        public string? KeyPath { get; set; }

        /// <summary>Password of a PFX file, or of an encrypted PEM key.</summary>
        public string? Password { get; set; }
    }
}

public static class EmbedCacheOptionsMapping
{
    /// <summary>
    /// The engine's store options; relative paths resolve against the content root. An unset SaveDir is the default
    /// directory; only <c>Store:MemoryOnly</c> gives a memory-only store.
    /// </summary>
    public static StoreOptions ToStoreOptions(this EmbedCacheOptions options, string contentRoot) => new()
    {
        SaveDir = options.Store.MemoryOnly ? null
            : string.IsNullOrWhiteSpace(options.SaveDir) ? EmbedCacheOptions.DefaultSaveDirectory()
            : Path.GetFullPath(options.SaveDir, contentRoot),
        LockWait = TimeSpan.FromSeconds(Math.Max(0, options.Store.SaveDirLockWaitSeconds)),
        DefaultTier = options.Store.DefaultTier,
        CpuMemoryBytes = options.Store.CpuMemoryBytes,
        DiskMemoryBytes = options.Store.DiskMemoryBytes,
        GpuMemoryBytes = options.Store.GpuMemoryBytes,
        GpuDevice = options.Store.GpuDevice,
        RequireGpu = options.Store.RequireGpu,
        CheckpointInterval = TimeSpan.FromSeconds(Math.Max(0, options.Store.CheckpointIntervalSeconds)),
        MoveAsideIncompatibleSaveDir = options.Store.MoveAsideIncompatibleSaveDir,
        Remote = options.Store.Remote,
    };

    public static JobOptions ToJobOptions(this EmbedCacheOptions options) => new()
    {
        DefaultBatchSize = options.Jobs.DefaultBatchSize,
        MaxWorkers = options.Jobs.MaxWorkers,
        MaxConcurrentJobs = options.Jobs.MaxConcurrentJobs,
        CheckpointInterval = TimeSpan.FromSeconds(options.Jobs.CheckpointIntervalSeconds),
    };
}
