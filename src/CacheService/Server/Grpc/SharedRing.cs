using System.Buffers;
using System.IO.MemoryMappedFiles;
using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using EmbedCache.Server.Platform;

namespace EmbedCache.Server.Grpc;

/// <summary>
/// The service's side of a shared-memory epoch stream: an owner-only file, mapped read-write here and read-only by
/// the trainer, into which the store reads each batch's rows directly (<see cref="IRowDestination"/>). Space is handed
/// out as consecutive spans of a running byte count (a span that would cross the end starts over at offset 0) and
/// comes back when the trainer acknowledges a position. A trainer that keeps the ring full for longer than the
/// slow-reader budget gets <see cref="LimitExceededException"/>; one that goes away ends the wait with cancellation.
/// </summary>
internal sealed unsafe class SharedRing : IRowDestination, IDisposable
{
    public const long MinBytes = 1L << 20;
    public const long MaxBytes = 1L << 30;

    /// <summary>Ring files are named <c>embedcache-ring-&lt;pid&gt;-&lt;id&gt;</c>; the pid tells a start-up sweep whose they were.</summary>
    public const string FilePrefix = "embedcache-ring-";

    /// <summary>A ring shared with the Unix socket's group: its members may connect, so they may map their ring too.</summary>
    private const UnixFileMode ReadableByGroup = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;

    private readonly Lock _lock = new();
    private readonly TimeSpan _slowReader;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly MappedMemory _memory;
    private readonly SemaphoreSlim _released = new(0, int.MaxValue);
    private long _next;
    private long _releasedTo;
    private bool _unlinked;
    private int _disposed;

    private SharedRing(string path, long size, TimeSpan slowReader, MemoryMappedFile file, MemoryMappedViewAccessor view, byte* pointer)
    {
        Path = path;
        Size = size;
        _slowReader = slowReader;
        _file = file;
        _view = view;
        _memory = new MappedMemory(pointer, (int)size);
    }

    public string Path { get; }

    public long Size { get; }

    /// <summary>
    /// Creates the ring file in <paramref name="directory"/> and maps it: 0600, or 0640 with group
    /// <paramref name="groupId"/> (the Unix socket's group, whose members may connect).
    /// </summary>
    public static SharedRing Create(string directory, long size, TimeSpan slowReader, uint? groupId = null)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("shared-memory epoch streams need Linux (an owner-only file under /dev/shm)");
        var path = System.IO.Path.Combine(directory, $"{FilePrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        try
        {
            if (groupId is { } gid && !UnixFileAccess.TrySetGroupAndMode(path, gid, ReadableByGroup, out var error))
                throw new InvalidOperationException($"cannot give the shared-memory ring to the socket's group ({error})");
            stream.SetLength(size);
            var file = MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = file.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new SharedRing(path, size, slowReader, file, view, pointer + view.PointerOffset);
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Removes the file's name once the trainer has mapped it: nothing is left behind whatever happens next.</summary>
    public void Unlink()
    {
        lock (_lock)
        {
            if (_unlinked)
                return;
            _unlinked = true;
        }

        File.Delete(Path);
    }

    public (Memory<byte> Memory, long Position) Rent(int length, CancellationToken cancellationToken)
    {
        if (length > Size)
            throw new LimitExceededException($"a batch's rows of one encoder take {length} bytes, more than the shared-memory ring's {Size}: lower batch_size or ask for a larger ring_bytes (at most {MaxBytes})");
        var deadline = DateTime.UtcNow + _slowReader;
        while (true)
        {
            lock (_lock)
            {
                var position = _next;
                var offset = position % Size;
                if (offset + length > Size)
                    position += Size - offset; // a span never wraps: start over at the ring's beginning
                if (position + length - _releasedTo <= Size)
                {
                    _next = position + length;
                    return (_memory.Memory.Slice((int)(position % Size), length), position);
                }
            }

            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero || !_released.Wait(remaining, cancellationToken))
                throw new LimitExceededException($"the trainer released no shared-memory ring space for {_slowReader.TotalSeconds:0} s (SharedMemory:SlowReaderSeconds): stream cut off");
        }
    }

    /// <summary>The trainer is done with everything before <paramref name="position"/>.</summary>
    public void Release(ulong position)
    {
        lock (_lock)
        {
            if (position > (ulong)_next || position < (ulong)_releasedTo)
                throw new InvalidRequestException("ack.released", $"{position} is outside the ring's handed-out range [{_releasedTo}, {_next}]");
            _releasedTo = (long)position;
        }

        _released.Release();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Unlink();
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        _released.Dispose();
    }

    /// <summary>Ring files of processes that no longer run (a crash before the trainer mapped them); returns how many were removed.</summary>
    public static int SweepStale(string directory)
    {
        if (!Directory.Exists(directory))
            return 0;
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(directory, FilePrefix + "*"))
        {
            var rest = System.IO.Path.GetFileName(file)[FilePrefix.Length..];
            var dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash <= 0 || !int.TryParse(rest.AsSpan(0, dash), out var pid) || pid == Environment.ProcessId || ProcessRuns(pid))
                continue;
            try
            {
                File.Delete(file);
                removed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // another user's file, or gone already
            }
        }

        return removed;
    }

    private static bool ProcessRuns(int pid) => Directory.Exists($"/proc/{pid}");

    /// <summary><see cref="Memory{T}"/> over the mapped view.</summary>
    private sealed class MappedMemory(byte* pointer, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
