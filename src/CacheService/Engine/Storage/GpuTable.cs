using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The Gpu tier's front: a device-resident byte table <c>[capacity, rowBytes]</c> (a TorchSharp tensor) with the
/// slot map on the host (hash of the stored key → slot) and CLOCK eviction. Gathers are one <c>index_select</c>
/// on the device and one copy into the caller's buffer. Each slot keeps the row's checksum, verified on every
/// read. Shared by all sessions; a lock serialises table operations (each is one batched tensor op).
/// </summary>
internal sealed class GpuTable : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Device _device;
    private readonly bool _onDevice;
    private readonly Tensor _table;
    private readonly int _rowBytes;
    private readonly Dictionary<UInt128, int> _slots;
    private readonly UInt128[] _slotKey;
    private readonly uint[] _slotChecksum;
    private readonly byte[] _referenced;
    private readonly int[] _stamp;
    private readonly int[] _stampPosition;
    private int _used;
    private int _hand;
    private int _batch;
    private Tensor _hostIndex;
    private Tensor _hostRows;
    private int _hostCapacity;

    public GpuTable(int capacity, int rowBytes, bool cuda)
    {
        Capacity = capacity;
        _rowBytes = rowBytes;
        _onDevice = cuda;
        _device = cuda ? CUDA : CPU;
        // empty, not zeros: untouched host pages of the fallback table cost no resident memory
        _table = empty([capacity, rowBytes], ScalarType.Byte, _device);
        _slots = new Dictionary<UInt128, int>(capacity);
        _slotKey = new UInt128[capacity];
        _slotChecksum = new uint[capacity];
        _referenced = new byte[capacity];
        _stamp = new int[capacity];
        _stampPosition = new int[capacity];
        _hostCapacity = 256;
        _hostIndex = empty([_hostCapacity], ScalarType.Int64, CPU);
        _hostRows = empty([_hostCapacity, rowBytes], ScalarType.Byte, CPU);
    }

    public int Capacity { get; }

    public bool OnDevice => _onDevice;

    public int Count
    {
        get
        {
            lock (_lock)
                return _used;
        }
    }

    public long ResidentBytes => (long)Count * _rowBytes;

    /// <summary>
    /// Copies the rows of keys present in the table into <paramref name="destination"/> (row i at i × rowBytes) and
    /// sets their found bits. Rows of absent keys are left with unspecified bytes. Returns (hits, first corrupt index
    /// or -1, corrupt count); a row failing its checksum is dropped from the table and its found bit is not set, so
    /// the caller reads it from the backing store instead.
    /// </summary>
    public (int Hits, int FirstCorrupt, int CorruptCount) Gather(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, Span<byte> destination, Span<byte> foundMask, Span<int> slotOf)
    {
        var n = keys.Length;
        lock (_lock)
        {
            EnsureHost(n);
            var index = MemoryMarshal.Cast<byte, long>(_hostIndex.bytes);
            var hits = 0;
            for (var i = 0; i < n; i++)
            {
                if (_slots.TryGetValue(keys[i], out var slot))
                {
                    index[i] = slot;
                    slotOf[i] = slot;
                    _referenced[slot] = 1;
                    hits++;
                }
                else
                {
                    index[i] = 0;
                    slotOf[i] = -1;
                }
            }

            if (hits == 0)
                return (0, -1, 0);

            using (NewDisposeScope())
            {
                var idx = _hostIndex.narrow(0, 0, n);
                if (_onDevice)
                    idx = idx.to(_device);
                var gathered = _table.index_select(0, idx);
                if (_onDevice)
                    gathered = gathered.cpu();
                gathered.bytes.CopyTo(destination[..(n * _rowBytes)]);
            }

            var firstCorrupt = -1;
            var corrupt = 0;
            for (var i = 0; i < n; i++)
            {
                var slot = slotOf[i];
                if (slot < 0)
                    continue;
                var row = destination.Slice(i * _rowBytes, _rowBytes);
                if (Checksums.Compute(seeds[i], row) != _slotChecksum[slot])
                {
                    if (corrupt++ == 0)
                        firstCorrupt = i;
                    _slots.Remove(keys[i]);
                    _slotChecksum[slot] = 0;
                    hits--;
                    continue;
                }

                foundMask[i >> 3] |= (byte)(1 << (i & 7));
            }

            return (hits, firstCorrupt, corrupt);
        }
    }

    /// <summary>True for each key present in the table (sets its found bit); returns how many.</summary>
    public int Contains(ReadOnlySpan<UInt128> keys, Span<byte> foundMask)
    {
        var found = 0;
        lock (_lock)
        {
            for (var i = 0; i < keys.Length; i++)
            {
                if (_slots.ContainsKey(keys[i]))
                {
                    foundMask[i >> 3] |= (byte)(1 << (i & 7));
                    found++;
                }
            }
        }

        return found;
    }

    /// <summary>
    /// Puts rows <paramref name="which"/> of <paramref name="rows"/> (row i at i × rowBytes) into the table, evicting
    /// by CLOCK when full. At most <see cref="Capacity"/> rows of one call are kept.
    /// </summary>
    public void Insert(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which)
    {
        var m = Math.Min(which.Length, Capacity);
        if (m == 0)
            return;
        lock (_lock)
        {
            EnsureHost(m);
            var batch = ++_batch;
            var index = MemoryMarshal.Cast<byte, long>(_hostIndex.bytes);
            var staged = _hostRows.bytes;
            var k = 0;
            for (var j = 0; j < which.Length && k < m; j++)
            {
                var i = which[j];
                var key = keys[i];
                var row = rows.Slice(i * _rowBytes, _rowBytes);
                int position;
                var exists = _slots.TryGetValue(key, out var slot);
                if (exists && _stamp[slot] == batch)
                {
                    position = _stampPosition[slot]; // the same key twice in one batch: the later row wins
                }
                else
                {
                    if (!exists)
                        slot = Allocate(batch);
                    position = k++;
                    _slots[key] = slot;
                    _slotKey[slot] = key;
                    _stamp[slot] = batch;
                    _stampPosition[slot] = position;
                    index[position] = slot;
                }

                _referenced[slot] = 1;
                _slotChecksum[slot] = Checksums.Compute(seeds[i], row);
                row.CopyTo(staged.Slice(position * _rowBytes, _rowBytes));
            }

            using (NewDisposeScope())
            {
                var idx = _hostIndex.narrow(0, 0, k);
                var src = _hostRows.narrow(0, 0, k);
                if (_onDevice)
                {
                    idx = idx.to(_device);
                    src = src.to(_device);
                }

                _table.index_copy_(0, idx, src);
            }
        }
    }

    /// <summary>A free slot, or the CLOCK victim (skipping slots written by the current batch).</summary>
    private int Allocate(int batch)
    {
        if (_used < Capacity)
            return _used++;
        while (true)
        {
            var slot = _hand;
            _hand = (_hand + 1) % Capacity;
            if (_stamp[slot] == batch)
                continue;
            if (_referenced[slot] != 0)
            {
                _referenced[slot] = 0;
                continue;
            }

            if (_slots.TryGetValue(_slotKey[slot], out var owner) && owner == slot)
                _slots.Remove(_slotKey[slot]);
            return slot;
        }
    }

    private void EnsureHost(int n)
    {
        if (n <= _hostCapacity)
            return;
        var capacity = Math.Max(n, _hostCapacity * 2);
        _hostIndex.Dispose();
        _hostRows.Dispose();
        _hostIndex = empty([capacity], ScalarType.Int64, CPU);
        _hostRows = empty([capacity, _rowBytes], ScalarType.Byte, CPU);
        _hostCapacity = capacity;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _table.Dispose();
            _hostIndex.Dispose();
            _hostRows.Dispose();
            _slots.Clear();
            _used = 0;
        }
    }
}
