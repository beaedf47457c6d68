using System.Diagnostics;
using System.Runtime.InteropServices;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// Opening a store: validating the options, probing CUDA, taking the SaveDir's lock (waiting for it when asked),
/// reading the manifest, recovering the three FASTER stores from exactly the checkpoints it names (or, for a SaveDir
/// that was never checkpointed, starting empty), and moving an incompatible SaveDir aside when allowed.
/// </summary>
internal static class StoreOpening
{
    private const long MetaLogMemoryBytes = 64L << 20;
    private const long MetaIndexBytes = 1L << 20;

    /// <inheritdoc cref="EmbeddingStore.Open(StoreOptions, ILoggerFactory?, Action{string}?, CancellationToken)"/>
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
                foreach (var name in new[] { EmbeddingStore.CpuName, EmbeddingStore.DiskName, EmbeddingStore.MetaName })
                {
                    var dir = Path.Combine(root, name);
                    if (Directory.Exists(dir))
                        Directory.Delete(dir, recursive: true);
                }
            }
            else
            {
                foreach (var name in new[] { EmbeddingStore.CpuName, EmbeddingStore.DiskName, EmbeddingStore.MetaName })
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
            cpu = KvStore.Create(EmbeddingStore.CpuName, Path.Combine(root, EmbeddingStore.CpuName), options.CpuMemoryBytes, options.CpuMemoryBytes / 128, 22, segmentBits, recover, health);
            var diskIndex = options.DiskMemoryBytes / 4;
            disk = KvStore.Create(EmbeddingStore.DiskName, Path.Combine(root, EmbeddingStore.DiskName), options.DiskMemoryBytes - diskIndex, diskIndex, 22, segmentBits, recover, health);
            meta = KvStore.Create(EmbeddingStore.MetaName, Path.Combine(root, EmbeddingStore.MetaName), MetaLogMemoryBytes, MetaIndexBytes, 22, segmentBits, recover, health);
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
}
