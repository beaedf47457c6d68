using System.Numerics;
using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// One FasterKV&lt;SpanByte, SpanByte&gt; with its log device and checkpoint directory. The store has three: the
/// Cpu tier (sized to hold its namespaces in memory), the Disk tier (small memory window) and the label/metadata
/// store.
/// </summary>
internal sealed class KvStore : IDisposable
{
    private readonly ICheckpointManager _checkpoints;

    private KvStore(string name, string directory, FasterKV<SpanByte, SpanByte> kv, RetryingDevice device, ICheckpointManager checkpoints, int pageSizeBits, long logMemoryBytes, long indexBytes)
    {
        _checkpoints = checkpoints;
        Name = name;
        Directory = directory;
        Kv = kv;
        Device = device;
        PageSizeBits = pageSizeBits;
        LogMemoryBytes = logMemoryBytes;
        IndexBytes = indexBytes;
    }

    public string Name { get; }

    public string Directory { get; }

    public FasterKV<SpanByte, SpanByte> Kv { get; }

    public RetryingDevice Device { get; }

    public int PageSizeBits { get; }

    public long LogMemoryBytes { get; }

    public long IndexBytes { get; }

    /// <summary>Largest record this store accepts (half a page, so a page always holds it).</summary>
    public long MaxRecordBytes => 1L << (PageSizeBits - 1);

    public string CheckpointDirectory => Path.Combine(Directory, "checkpoints");

    /// <param name="logMemoryBytes">Memory for log pages; rounded down to a power of two.</param>
    /// <param name="indexBytes">Memory for the hash index (64-byte buckets); rounded down to a power of two.</param>
    /// <param name="health">Where the log and checkpoint devices report failed writes.</param>
    public static KvStore Create(string name, string directory, long logMemoryBytes, long indexBytes, int maxPageSizeBits, int segmentSizeBits, bool recoverDevice, SaveDirHealth health)
    {
        var memoryBits = BitOperations.Log2((ulong)Math.Max(logMemoryBytes, 1L << 16));
        var pageBits = Math.Clamp(memoryBits - 4, 12, maxPageSizeBits);
        var buckets = 1L << Math.Max(BitOperations.Log2((ulong)Math.Max(indexBytes / 64, 1)), 10);
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "log"));
        var device = new RetryingDevice(Devices.CreateLogDevice(Path.Combine(directory, "log", "hlog.log"), recoverDevice: recoverDevice), health, retry: true);
        var checkpoints = new DeviceLogCommitCheckpointManager(
            new RecordingDeviceFactory(new LocalStorageNamedDeviceFactory(), health),
            new DefaultCheckpointNamingScheme(Path.GetFullPath(Path.Combine(directory, "checkpoints"))),
            // Never: the manifest names the checkpoint to recover, and it may still name the previous one while
            // FASTER finishes a new one (the store purges superseded checkpoints itself, after committing).
            removeOutdated: false);
        try
        {
            var kv = new FasterKV<SpanByte, SpanByte>(
                buckets,
                new LogSettings
                {
                    LogDevice = device,
                    PageSizeBits = pageBits,
                    MemorySizeBits = memoryBits,
                    SegmentSizeBits = Math.Max(segmentSizeBits, pageBits),
                    MutableFraction = 0.9,
                },
                new CheckpointSettings { CheckpointManager = checkpoints });
            return new KvStore(name, directory, kv, device, checkpoints, pageBits, 1L << memoryBits, buckets * 64);
        }
        catch
        {
            checkpoints.Dispose();
            device.Dispose();
            throw;
        }
    }

    public ClientSession<SpanByte, SpanByte, StoreInput, Empty, Empty, StoreFunctions> NewSession(StoreFunctions functions) =>
        Kv.For(functions).NewSession(functions, sessionVariableLengthStructSettings: new SessionVariableLengthStructSettings<SpanByte, StoreInput>
        {
            valueLength = new StoreValueLength(),
        });

    /// <summary>Bytes between the begin and the tail of the log (live and dead records).</summary>
    public long LogBytes => Kv.Log.TailAddress - Kv.Log.BeginAddress;

    /// <summary>Fraction of the log's bytes that are in memory.</summary>
    public double InMemoryFraction
    {
        get
        {
            var log = Kv.Log;
            var total = log.TailAddress - log.BeginAddress;
            if (total <= 0)
                return 1;
            var inMemory = log.TailAddress - Math.Max(log.HeadAddress, log.BeginAddress);
            return Math.Clamp((double)inMemory / total, 0, 1);
        }
    }

    /// <summary>Removes checkpoint directories other than <paramref name="keep"/> (left by a crash mid-checkpoint or superseded).</summary>
    public void PurgeCheckpointsExcept(Guid keep)
    {
        foreach (var sub in new[] { "cpr-checkpoints", "index-checkpoints" })
        {
            var dir = Path.Combine(CheckpointDirectory, sub);
            if (!System.IO.Directory.Exists(dir))
                continue;
            foreach (var entry in System.IO.Directory.EnumerateDirectories(dir))
            {
                if (Guid.TryParse(Path.GetFileName(entry), out var token) && token != keep)
                    System.IO.Directory.Delete(entry, recursive: true);
            }
        }
    }

    public void Dispose()
    {
        // Waiting log writes point into pages the FasterKV frees: fail them first.
        Device.StopRetrying();
        Kv.Dispose();
        _checkpoints.Dispose();
        Device.Dispose();
    }
}
