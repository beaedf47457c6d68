using Microsoft.Extensions.Logging;

namespace EmbedCache.Engine.Storage;

internal static partial class StoreLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Store opened at {Root} (persistent: {Persistent}); recovered checkpoint {Version} with {Namespaces} namespaces")]
    public static partial void Opened(ILogger logger, string root, bool persistent, long version, int namespaces);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "{Reason} Moved it aside to {Target} and started an empty store.")]
    public static partial void MovedAside(ILogger logger, string reason, string target);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "CUDA is not available: Gpu-tier namespaces use a host tensor table instead of device memory (set RequireGpu to make this an error)")]
    public static partial void GpuFallback(ILogger logger);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "Checkpoint {Version} committed in {Milliseconds} ms")]
    public static partial void Checkpointed(ILogger logger, long version, long milliseconds);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Error, Message = "SaveDir {Root} cannot be written ({Cause}): log writes are retried; checkpoints fail until they succeed")]
    public static partial void SaveDirFailing(ILogger logger, string root, string? cause);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Information, Message = "SaveDir {Root} is writable again: the retried log writes succeeded")]
    public static partial void SaveDirRecovered(ILogger logger, string root);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Error, Message = "Periodic checkpoint failed")]
    public static partial void CheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Namespace {Encoder} ({Fingerprint}) is stored in the {Stored} tier; registered as {Requested}. It stays in {Stored}; drop it to move it.")]
    public static partial void TierMismatch(ILogger logger, string encoder, Embeddings.Fingerprint fingerprint, Embeddings.Tier stored, Embeddings.Tier requested);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Information, Message = "Dropped namespace {Fingerprint}: {Items} items, {Bytes} bytes reclaimed")]
    public static partial void Dropped(ILogger logger, Embeddings.Fingerprint fingerprint, long items, long bytes);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Warning, Message = "{Count} row(s) of the Gpu table of {Encoder} ({Fingerprint}) failed their checksum (first: {FirstKey}); dropped from the table and re-read from the store")]
    public static partial void TableCorruption(ILogger logger, int count, string encoder, Embeddings.Fingerprint fingerprint, string firstKey);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Information, Message = "Recovered the {Store} store in {Seconds:0.00} s: hash index ({IndexMiB} MiB) {IndexSeconds:0.00} s, log {LogSeconds:0.00} s reading {ReadMB:0} MB back; {InMemoryMB:0} MB of its {LogMB:0} MB log in memory")]
    public static partial void Recovered(ILogger logger, string store, double seconds, double indexSeconds, long indexMiB, double logSeconds, double readMB, double inMemoryMB, double logMB);

    [LoggerMessage(EventId = 3014, Level = LogLevel.Warning, Message = "SaveDir {Root} is held by another process; waiting up to {Seconds:0} s for it ({Reason})")]
    public static partial void WaitingForLock(ILogger logger, string root, double seconds, string reason);

    [LoggerMessage(EventId = 3015, Level = LogLevel.Information, Message = "SaveDir {Root} acquired after {Seconds:0.0} s")]
    public static partial void LockAcquired(ILogger logger, string root, double seconds);

    [LoggerMessage(EventId = 3016, Level = LogLevel.Warning, Message = "Namespace {Encoder} ({Fingerprint}) asked for the Gpu tier but gets no device memory ({Why}); it is served from the Cpu tier")]
    public static partial void GpuBudgetFallback(ILogger logger, string encoder, Embeddings.Fingerprint fingerprint, string why);

    [LoggerMessage(EventId = 3017, Level = LogLevel.Warning, Message = "Gpu table of {Encoder} ({Fingerprint}): a device operation failed ({Cause}); the request was served from the store")]
    public static partial void GpuTableError(ILogger logger, string encoder, Embeddings.Fingerprint fingerprint, string cause);

    [LoggerMessage(EventId = 3018, Level = LogLevel.Error, Message = "Gpu table of {Encoder} ({Fingerprint}) switched off after {Errors} device errors in a row; it is served from the Cpu store from now on")]
    public static partial void GpuTableOff(ILogger logger, Exception exception, string encoder, Embeddings.Fingerprint fingerprint, int errors);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Error, Message = "Final checkpoint on dispose failed")]
    public static partial void FinalCheckpointFailed(ILogger logger, Exception exception);
}
