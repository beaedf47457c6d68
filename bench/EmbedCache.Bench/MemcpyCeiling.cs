namespace EmbedCache.Bench;

/// <summary>
/// The physical limit of the shared-memory epoch: one thread copying an epoch's bytes, batch by batch, from a source
/// far larger than the caches (so the reads come from DRAM, as the store's rows do) into one batch-sized buffer.
/// </summary>
internal sealed unsafe class MemcpyCeiling : IDisposable
{
    private const long SourceBytes = 1L << 30;
    private readonly byte* _source;
    private readonly byte* _destination;
    private readonly int _batchBytes;
    private long _offset;

    public MemcpyCeiling(int batchBytes)
    {
        _batchBytes = batchBytes;
        _source = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)SourceBytes, 4096);
        _destination = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)batchBytes, 4096);
        new Span<byte>(_destination, batchBytes).Fill(1);
        for (long i = 0; i < SourceBytes; i += int.MaxValue / 2)
            new Span<byte>(_source + i, (int)Math.Min(int.MaxValue / 2, SourceBytes - i)).Fill(7); // touch every page
    }

    /// <summary>Copies <paramref name="bytes"/> bytes (an epoch's rows) in batch-sized pieces; returns the bytes copied.</summary>
    public long Copy(long bytes)
    {
        long copied = 0;
        while (copied < bytes)
        {
            var n = (int)Math.Min(_batchBytes, bytes - copied);
            if (_offset + n > SourceBytes)
                _offset = 0;
            Buffer.MemoryCopy(_source + _offset, _destination, _batchBytes, n);
            _offset += n;
            copied += n;
        }

        return copied;
    }

    public void Dispose()
    {
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_source);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_destination);
    }
}
