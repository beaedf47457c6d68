using System.Collections.Concurrent;
using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Wraps a FASTER device so that a failing SaveDir (full, read-only, I/O errors) is seen, counted and survived.
/// <para>
/// Log devices retry a failed write with backoff until it succeeds: FASTER marks a log range flushed only when its
/// write succeeded, so a write it gave up on would leave the log with a hole and every later checkpoint waiting
/// on it. The page being written stays in memory meanwhile (FASTER cannot evict an unflushed page), so the retry
/// reads valid memory. Checkpoint-file devices pass the failure on once and record it, so the checkpoint that
/// wrote the file is not committed (FASTER itself ignores failed checkpoint-file writes).
/// </para>
/// </summary>
internal sealed class RetryingDevice : IDevice
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    private readonly IDevice _inner;
    private readonly SaveDirHealth _health;
    private readonly bool _retry;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<PendingWrite, byte> _waiting = new();

    public RetryingDevice(IDevice inner, SaveDirHealth health, bool retry)
    {
        _inner = inner;
        _health = health;
        _retry = retry;
    }

    public uint SectorSize => _inner.SectorSize;

    public string FileName => _inner.FileName;

    public long Capacity => _inner.Capacity;

    public long SegmentSize => _inner.SegmentSize;

    public int StartSegment => _inner.StartSegment;

    public int EndSegment => _inner.EndSegment;

    public int ThrottleLimit
    {
        get => _inner.ThrottleLimit;
        set => _inner.ThrottleLimit = value;
    }

    public void Initialize(long segmentSize, LightEpoch? epoch = null, bool omitSegmentIdFromFilename = false) =>
        _inner.Initialize(segmentSize, epoch, omitSegmentIdFromFilename);

    public bool TryComplete() => _inner.TryComplete();

    public bool Throttle() => _inner.Throttle();

    public void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context) =>
        new PendingWrite(this, sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context).Issue();

    public void WriteAsync(IntPtr alignedSourceAddress, ulong alignedDestinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context) =>
        new PendingWrite(this, alignedSourceAddress, -1, alignedDestinationAddress, numBytesToWrite, callback, context).Issue();

    public void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context)
    {
        CountRead(readLength);
        _inner.ReadAsync(segmentId, sourceAddress, destinationAddress, readLength, callback, context);
    }

    public void ReadAsync(ulong alignedSourceAddress, IntPtr alignedDestinationAddress, uint aligned_read_length, DeviceIOCompletionCallback callback, object context)
    {
        CountRead(aligned_read_length);
        _inner.ReadAsync(alignedSourceAddress, alignedDestinationAddress, aligned_read_length, callback, context);
    }

    private long _bytesRead;
    private long _firstReadTimestamp;

    /// <summary>Bytes read through this device so far (recovery reports how much of the log it read back).</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary><see cref="System.Diagnostics.Stopwatch"/> timestamp of the first read, or 0 before it.</summary>
    public long FirstReadTimestamp => Interlocked.Read(ref _firstReadTimestamp);

    private void CountRead(uint bytes)
    {
        Interlocked.Add(ref _bytesRead, bytes);
        if (Interlocked.Read(ref _firstReadTimestamp) == 0)
            Interlocked.CompareExchange(ref _firstReadTimestamp, System.Diagnostics.Stopwatch.GetTimestamp(), 0);
    }

    public void TruncateUntilAddressAsync(long toAddress, AsyncCallback callback, IAsyncResult result) =>
        _inner.TruncateUntilAddressAsync(toAddress, callback, result);

    public void TruncateUntilAddress(long toAddress) => _inner.TruncateUntilAddress(toAddress);

    public void TruncateUntilSegmentAsync(int toSegment, AsyncCallback callback, IAsyncResult result) =>
        _inner.TruncateUntilSegmentAsync(toSegment, callback, result);

    public void TruncateUntilSegment(int toSegment) => _inner.TruncateUntilSegment(toSegment);

    public void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result) => _inner.RemoveSegmentAsync(segment, callback, result);

    public void RemoveSegment(int segment) => _inner.RemoveSegment(segment);

    public long GetFileSize(int segment) => _inner.GetFileSize(segment);

    public void Reset() => _inner.Reset();

    /// <summary>
    /// Gives up on writes waiting for a retry, failing them to FASTER. Call before disposing the FasterKV, whose
    /// pages the waiting writes point into.
    /// </summary>
    public void StopRetrying()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        foreach (var write in _waiting.Keys)
            write.Abandon();
    }

    public void Dispose()
    {
        StopRetrying();
        _inner.Dispose();
        _stop.Dispose();
    }

    /// <summary>One write FASTER asked for, issued again after each failure until it succeeds.</summary>
    private sealed class PendingWrite(
        RetryingDevice device, IntPtr source, int segment, ulong destination, uint bytes, DeviceIOCompletionCallback callback, object context)
    {
        private int _failures;
        private int _done;

        public void Issue()
        {
            if (segment >= 0)
                device._inner.WriteAsync(source, segment, destination, bytes, Completed, context);
            else
                device._inner.WriteAsync(source, destination, bytes, Completed, context);
        }

        private void Completed(uint errorCode, uint numBytes, object ctx)
        {
            if (errorCode == 0)
            {
                if (_failures > 0 && device._waiting.TryRemove(this, out _))
                    device._health.LogWriteRecovered();

                Finish(errorCode, numBytes, ctx);
                return;
            }

            if (!device._retry)
            {
                device._health.CheckpointFileWriteFailed(errorCode);
                Finish(errorCode, numBytes, ctx);
                return;
            }

            var failures = ++_failures;
            device._health.LogWriteFailed(errorCode, firstFailureOfThisWrite: failures == 1);
            if (failures == 1)
                device._waiting[this] = 0;
            if (device._stop.IsCancellationRequested)
            {
                Abandon();
                return;
            }

            _ = RetryAsync(failures);
        }

        private async Task RetryAsync(int failures)
        {
            var backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks << Math.Min(failures - 1, 10)));
            try
            {
                await Task.Delay(backoff, device._stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Abandon();
                return;
            }

            Issue();
        }

        /// <summary>Fails the write to FASTER for good (the store is closing).</summary>
        public void Abandon()
        {
            if (device._waiting.TryRemove(this, out _))
                device._health.LogWriteRecovered();
            Finish(uint.MaxValue, 0, context);
        }

        private void Finish(uint errorCode, uint numBytes, object ctx)
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
                callback(errorCode, numBytes, ctx);
        }
    }
}

/// <summary>Checkpoint files through <see cref="RetryingDevice"/>s that record failed writes.</summary>
internal sealed class RecordingDeviceFactory(INamedDeviceFactory inner, SaveDirHealth health) : INamedDeviceFactory
{
    public void Initialize(string baseName) => inner.Initialize(baseName);

    public IDevice Get(FileDescriptor fileInfo) => new RetryingDevice(inner.Get(fileInfo), health, retry: false);

    public void Delete(FileDescriptor fileInfo) => inner.Delete(fileInfo);

    public IEnumerable<FileDescriptor> ListContents(string path) => inner.ListContents(path);
}
