namespace EmbedCache.Engine.Storage;

/// <summary>
/// What the store's devices saw when writing to the SaveDir: failed writes (a full or read-only file system),
/// log writes still waiting to be retried, and a plain-words cause. One per store; devices report into it.
/// </summary>
public sealed class SaveDirHealth
{
    private readonly string _root;
    private readonly Lock _lock = new();
    private long _writeErrors;
    private long _checkpointFileErrors;
    private int _retrying;
    private string? _cause;

    internal SaveDirHealth(string root) => _root = root;

    /// <summary>Raised when log writes start failing (true, with the cause) and when they succeed again (false).</summary>
    internal event Action<bool, string?>? FailingChanged;

    /// <summary>Writes to the SaveDir that failed (each retry that fails counts again).</summary>
    public long WriteErrors => Interlocked.Read(ref _writeErrors);

    /// <summary>Log writes waiting to be retried now. Above zero, nothing newer than the last checkpoint can become durable.</summary>
    public int RetryingWrites => Volatile.Read(ref _retrying);

    /// <summary>True while log writes are being retried.</summary>
    public bool Failing => RetryingWrites > 0;

    /// <summary>The last write failure in words, e.g. "No space left on device"; null before any.</summary>
    public string? LastCause
    {
        get
        {
            lock (_lock)
                return _cause;
        }
    }

    /// <summary>A mark to pass to <see cref="CheckpointFilesFailedSince"/>.</summary>
    internal long CheckpointFileMark => Interlocked.Read(ref _checkpointFileErrors);

    /// <summary>True when a checkpoint file write failed after <paramref name="mark"/> was taken.</summary>
    internal bool CheckpointFilesFailedSince(long mark) => Interlocked.Read(ref _checkpointFileErrors) != mark;

    internal void LogWriteFailed(uint errorCode, bool firstFailureOfThisWrite)
    {
        Interlocked.Increment(ref _writeErrors);
        var started = firstFailureOfThisWrite && Interlocked.Increment(ref _retrying) == 1;
        Describe(errorCode);
        if (started)
            FailingChanged?.Invoke(true, LastCause);
    }

    internal void LogWriteRecovered()
    {
        if (Interlocked.Decrement(ref _retrying) == 0)
            FailingChanged?.Invoke(false, null);
    }

    internal void CheckpointFileWriteFailed(uint errorCode)
    {
        Interlocked.Increment(ref _writeErrors);
        Interlocked.Increment(ref _checkpointFileErrors);
        Describe(errorCode);
    }

    /// <summary>
    /// FASTER's managed device reports a failed write without its errno, so find the cause by writing a probe
    /// file where the device writes: the IOException says it in words ("No space left on device",
    /// "Read-only file system").
    /// </summary>
    private void Describe(uint errorCode)
    {
        string cause;
        var probe = Path.Combine(_root, $".write-probe-{Environment.ProcessId}");
        try
        {
            File.WriteAllBytes(probe, new byte[4096]);
            File.Delete(probe);
            cause = errorCode is > 0 and < 4096 ? $"write failed with error {errorCode}" : "a device write failed";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            cause = StoreDirectory.CauseOf(e);
            TryDelete(probe);
        }

        lock (_lock)
            _cause = cause;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>The SaveDir could not be written (full, read-only, failing); what was committed before stays intact.</summary>
public sealed class SaveDirWriteException(string message, Exception? innerException = null)
    : EngineException(ErrorKind.Unavailable, message, innerException);
