using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// The Gpu tier's front: device-resident byte rows (TorchSharp tensors <c>[rows, rowBytes]</c>, in segments reserved
/// from the store's one <see cref="GpuBudget"/> as the table fills), with the slot map on the host (hash of the stored
/// key → slot) and CLOCK eviction once the budget gives no more. Gathers are one <c>index_select</c> per segment
/// touched and one copy into the caller's buffer. Each slot keeps the row's checksum, verified on every read.
/// Shared by all sessions; a lock serialises table operations (each is one batched tensor op per segment).
/// <para>
/// The table is a cache in front of FASTER, which always holds the data, so a device error never fails a request: a
/// failed gather is a miss, a failed insert is skipped (and every key it touched leaves the slot map, so the map is
/// never ahead of the device). <see cref="MaxConsecutiveErrors"/> errors in a row switch the table off.
/// </para>
/// <para>
/// No stale promotion: a Put marks its keys' write stripes under the lock before its rows go in; a promotion of rows
/// read from FASTER skips every key whose stripe was marked after the read began (<see cref="WriteSequence"/>).
/// </para>
/// </summary>
internal sealed class GpuTable : IDisposable
{
    /// <summary>Device errors in a row after which the table switches itself off.</summary>
    public const int MaxConsecutiveErrors = 3;

    private const int StripeCount = 4096;

    private readonly Lock _lock = new();
    private readonly GpuBudget _budget;
    private readonly TableDevice _device;
    private readonly int _rowBytes;
    private readonly int _segmentRows;
    private readonly Action<Exception, bool> _onError;
    private readonly List<Segment> _segments = [];
    private readonly Dictionary<UInt128, int> _slots = [];
    private readonly long[] _stripes = new long[StripeCount];
    private long _reservedBytes;
    private int _capacity;
    private int _used;
    private int _hand;
    private long _batch;
    private long _writeSequence;
    private int _consecutiveErrors;
    private long _errors;
    private bool _off;
    private Tensor _hostIndex;
    private Tensor _hostRows;
    private int _hostCapacity;
    private Entry[] _entries = new Entry[256];

    private sealed class Segment(Tensor rows, int capacity, long reservedBytes)
    {
        public readonly Tensor Rows = rows;
        public readonly long ReservedBytes = reservedBytes;
        public readonly UInt128[] Key = new UInt128[capacity];
        public readonly uint[] Checksum = new uint[capacity];
        public readonly byte[] Referenced = new byte[capacity];
        public readonly long[] Stamp = new long[capacity];
        public readonly int[] Entry = new int[capacity];
    }

    /// <summary>One row of an insert: its slot and which row of the caller's buffer goes there.</summary>
    private struct Entry
    {
        public int Slot;
        public int Row;
        public UInt128 Key;
    }

    private GpuTable(GpuBudget budget, TableDevice device, int rowBytes, Action<Exception, bool> onError)
    {
        _budget = budget;
        _device = device;
        _rowBytes = rowBytes;
        _onError = onError;
        _segmentRows = (int)Math.Clamp(budget.SegmentBytes / rowBytes, 1, 1 << 24);
        _hostCapacity = 256;
        _hostIndex = empty([_hostCapacity], ScalarType.Int64, CPU);
        _hostRows = empty([_hostCapacity, rowBytes], ScalarType.Byte, CPU);
    }

    /// <summary>
    /// A table with its first segment reserved and allocated, or null when the budget has no room for one row or the
    /// device refuses the allocation (<paramref name="why"/> says which); the namespace then falls back to the Cpu tier.
    /// </summary>
    /// <param name="onError">Called on each device error, with true when it switched the table off.</param>
    public static GpuTable? TryCreate(GpuBudget budget, TableDevice device, int rowBytes, Action<Exception, bool> onError, out string? why)
    {
        var table = new GpuTable(budget, device, rowBytes, onError);
        if (table.TryGrow(out why))
            return table;
        table.Dispose();
        return null;
    }

    /// <summary>Rows this table may hold: what it has reserved plus what the shared budget could still give it.</summary>
    public int Capacity
    {
        get
        {
            lock (_lock)
                return _off ? 0 : (int)Math.Min(_capacity + (_budget.Available / _rowBytes), int.MaxValue);
        }
    }

    public bool OnDevice => _device.OnDevice;

    public int Count
    {
        get
        {
            lock (_lock)
                return _used;
        }
    }

    /// <summary>Device bytes in use by rows.</summary>
    public long UsedBytes => (long)Count * _rowBytes;

    /// <summary>Device bytes reserved by this table's segments (what the device has given it).</summary>
    public long ReservedBytes => Interlocked.Read(ref _reservedBytes);

    /// <summary>Device errors seen (each one a failed gather, insert or allocation).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>True once repeated device errors switched the table off: reads and writes go to FASTER only.</summary>
    public bool Off
    {
        get
        {
            lock (_lock)
                return _off;
        }
    }

    /// <summary>Take this before reading rows from FASTER that may be promoted; pass it to <see cref="Promote"/>.</summary>
    public long WriteSequence => Interlocked.Read(ref _writeSequence);

    /// <summary>
    /// Copies the rows of keys present in the table into <paramref name="destination"/> (row i at i × rowBytes) and
    /// sets their found bits in <paramref name="foundMask"/>, which must be clear. Rows of absent keys are left with
    /// unspecified bytes. Returns (hits, first corrupt index or -1, corrupt count); a row failing its checksum is
    /// dropped from the table and its found bit is not set, so the caller reads it from the backing store instead. A
    /// device error is zero hits (the mask is left clear).
    /// </summary>
    public (int Hits, int FirstCorrupt, int CorruptCount) Gather(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, Span<byte> destination, Span<byte> foundMask, Span<int> slotOf)
    {
        var n = keys.Length;
        lock (_lock)
        {
            if (_off)
                return (0, -1, 0);
            var hits = 0;
            for (var i = 0; i < n; i++)
            {
                if (_slots.TryGetValue(keys[i], out var slot))
                {
                    slotOf[i] = slot;
                    _segments[slot / _segmentRows].Referenced[slot % _segmentRows] = 1;
                    hits++;
                }
                else
                {
                    slotOf[i] = -1;
                }
            }

            if (hits == 0)
                return (0, -1, 0);

            try
            {
                ReadRows(slotOf[..n], hits, destination);
                _consecutiveErrors = 0;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Failed(e);
                return (0, -1, 0);
            }

            var firstCorrupt = -1;
            var corrupt = 0;
            for (var i = 0; i < n; i++)
            {
                var slot = slotOf[i];
                if (slot < 0)
                    continue;
                var row = destination.Slice(i * _rowBytes, _rowBytes);
                if (Checksums.Compute(seeds[i], row) != _segments[slot / _segmentRows].Checksum[slot % _segmentRows])
                {
                    if (corrupt++ == 0)
                        firstCorrupt = i;
                    _slots.Remove(keys[i]);
                    hits--;
                    continue;
                }

                FoundMask.Set(foundMask, i);
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
            if (_off)
                return 0;
            for (var i = 0; i < keys.Length; i++)
            {
                if (_slots.ContainsKey(keys[i]))
                {
                    FoundMask.Set(foundMask, i);
                    found++;
                }
            }
        }

        return found;
    }

    /// <summary>
    /// Puts rows <paramref name="which"/> of <paramref name="rows"/> (row i at i × rowBytes), just written to FASTER,
    /// into the table; their keys' write stripes are marked first, so no promotion of an older read can follow.
    /// </summary>
    public void Put(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which) =>
        Insert(keys, seeds, rows, which, readSequence: -1);

    /// <summary>
    /// Promotes rows <paramref name="which"/> read from FASTER into the table, skipping every key written (by
    /// <see cref="Put"/>) since <paramref name="readSequence"/> (<see cref="WriteSequence"/> taken before the read).
    /// </summary>
    public void Promote(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long readSequence)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(readSequence);
        Insert(keys, seeds, rows, which, readSequence);
    }

    /// <summary>Evicting by CLOCK once the budget gives no more; at most <see cref="Capacity"/> rows of one call are kept.</summary>
    private void Insert(ReadOnlySpan<UInt128> keys, ReadOnlySpan<ulong> seeds, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long readSequence)
    {
        if (which.Length == 0)
            return;
        lock (_lock)
        {
            if (_off)
                return;
            if (readSequence < 0)
            {
                var sequence = ++_writeSequence;
                foreach (var i in which)
                    _stripes[Stripe(keys[i])] = sequence;
            }

            var batch = ++_batch;
            if (_entries.Length < which.Length)
                _entries = new Entry[Math.Max(which.Length, _entries.Length * 2)];
            var entries = _entries;
            var k = 0;
            foreach (var i in which)
            {
                var key = keys[i];
                if (readSequence >= 0 && _stripes[Stripe(key)] > readSequence)
                    continue; // written since this row was read: the write's own insert holds the newer value

                var exists = _slots.TryGetValue(key, out var slot);
                if (exists && SegmentOf(slot).Stamp[slot % _segmentRows] == batch)
                {
                    entries[SegmentOf(slot).Entry[slot % _segmentRows]].Row = i; // the same key twice in one batch: the later row wins
                    continue;
                }

                if (!exists)
                {
                    slot = Allocate(batch);
                    if (slot < 0)
                        break; // every slot holds a row of this batch: the rest of it is not kept
                }

                var segment = SegmentOf(slot);
                var offset = slot % _segmentRows;
                segment.Stamp[offset] = batch;
                segment.Entry[offset] = k;
                segment.Key[offset] = key;
                _slots[key] = slot;
                entries[k++] = new Entry { Slot = slot, Row = i, Key = key };
            }

            if (k == 0)
                return;
            foreach (ref var e in entries.AsSpan(0, k))
            {
                var segment = SegmentOf(e.Slot);
                segment.Referenced[e.Slot % _segmentRows] = 1;
                segment.Checksum[e.Slot % _segmentRows] = Checksums.Compute(seeds[e.Row], rows.Slice(e.Row * _rowBytes, _rowBytes));
            }

            try
            {
                WriteRows(entries.AsSpan(0, k), rows);
                _consecutiveErrors = 0;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Some rows may have reached the device and some not: none of this batch's keys stay in the map, so
                // the map is never ahead of the device (their slots are reused by the clock).
                foreach (ref var entry in entries.AsSpan(0, k))
                {
                    if (_slots.TryGetValue(entry.Key, out var owner) && owner == entry.Slot)
                        _slots.Remove(entry.Key);
                }

                Failed(e);
            }
        }
    }

    private static int Stripe(UInt128 key) => (int)((ulong)key & (StripeCount - 1));

    private Segment SegmentOf(int slot) => _segments[slot / _segmentRows];

    /// <summary>A free slot (growing the table while the budget allows), or the CLOCK victim; -1 when every slot was written by this batch.</summary>
    private int Allocate(long batch)
    {
        if (_used < _capacity || (_used == _capacity && TryGrow(out _)))
            return _used++;
        if (_capacity == 0)
            return -1;
        for (var scanned = 0; scanned < 2 * _capacity + 1; scanned++)
        {
            var slot = _hand;
            _hand = (_hand + 1) % _capacity;
            var segment = SegmentOf(slot);
            var offset = slot % _segmentRows;
            if (segment.Stamp[offset] == batch)
                continue;
            if (segment.Referenced[offset] != 0)
            {
                segment.Referenced[offset] = 0;
                continue;
            }

            if (_slots.TryGetValue(segment.Key[offset], out var owner) && owner == slot)
                _slots.Remove(segment.Key[offset]);
            return slot;
        }

        return -1;
    }

    /// <summary>Reserves and allocates one more segment; false (with why) when the budget or the device refuses.</summary>
    private bool TryGrow(out string? why)
    {
        why = null;
        if (_off)
            return false;
        if (_capacity % _segmentRows != 0)
            return false; // the last segment is short (the budget's last rows): slot arithmetic needs full segments before another
        var rows = (int)Math.Min(_segmentRows, _budget.Available / _rowBytes);
        if (rows < 1 || !_budget.TryReserve((long)rows * _rowBytes))
        {
            why = $"the Gpu memory budget ({_budget.Total} bytes in all) has {_budget.Available} bytes left, less than one {_rowBytes}-byte row";
            return false;
        }

        var bytes = (long)rows * _rowBytes;
        Tensor tensor;
        try
        {
            tensor = _device.Allocate(rows, _rowBytes);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _budget.Release(bytes);
            why = $"the device refused {bytes} bytes ({e.Message})";
            if (_segments.Count > 0)
                Failed(e);
            return false;
        }

        _segments.Add(new Segment(tensor, rows, bytes));
        _capacity = ((_segments.Count - 1) * _segmentRows) + rows;
        Interlocked.Add(ref _reservedBytes, bytes);
        return true;
    }

    private void ReadRows(ReadOnlySpan<int> slotOf, int hits, Span<byte> destination)
    {
        EnsureHost(hits);
        var index = MemoryMarshal.Cast<byte, long>(_hostIndex.bytes);
        var staged = _hostRows.bytes;
        for (var s = 0; s < _segments.Count; s++)
        {
            var m = 0;
            var low = s * _segmentRows;
            for (var i = 0; i < slotOf.Length; i++)
            {
                if (slotOf[i] >= low && slotOf[i] < low + _segmentRows)
                    index[m++] = slotOf[i] - low;
            }

            if (m == 0)
                continue;
            _device.Read(_segments[s].Rows, _hostIndex.narrow(0, 0, m), _hostRows.narrow(0, 0, m));
            m = 0;
            for (var i = 0; i < slotOf.Length; i++)
            {
                if (slotOf[i] >= low && slotOf[i] < low + _segmentRows)
                    staged.Slice(m++ * _rowBytes, _rowBytes).CopyTo(destination.Slice(i * _rowBytes, _rowBytes));
            }
        }
    }

    private void WriteRows(ReadOnlySpan<Entry> entries, ReadOnlySpan<byte> rows)
    {
        EnsureHost(entries.Length);
        var index = MemoryMarshal.Cast<byte, long>(_hostIndex.bytes);
        var staged = _hostRows.bytes;
        for (var s = 0; s < _segments.Count; s++)
        {
            var m = 0;
            var low = s * _segmentRows;
            foreach (var e in entries)
            {
                if (e.Slot < low || e.Slot >= low + _segmentRows)
                    continue;
                index[m] = e.Slot - low;
                rows.Slice(e.Row * _rowBytes, _rowBytes).CopyTo(staged.Slice(m * _rowBytes, _rowBytes));
                m++;
            }

            if (m > 0)
                _device.Write(_segments[s].Rows, _hostIndex.narrow(0, 0, m), _hostRows.narrow(0, 0, m));
        }
    }

    /// <summary>One device error: counted and reported; the last of <see cref="MaxConsecutiveErrors"/> in a row switches the table off.</summary>
    private void Failed(Exception e)
    {
        Interlocked.Increment(ref _errors);
        var off = ++_consecutiveErrors >= MaxConsecutiveErrors;
        if (off)
            SwitchOff();
        _onError(e, off);
    }

    private void SwitchOff()
    {
        _off = true;
        _slots.Clear();
        ReleaseSegments();
    }

    private void ReleaseSegments()
    {
        foreach (var segment in _segments)
        {
            segment.Rows.Dispose();
            _budget.Release(segment.ReservedBytes);
        }

        _segments.Clear();
        _capacity = 0;
        _used = 0;
        _hand = 0;
        Interlocked.Exchange(ref _reservedBytes, 0);
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

    /// <summary>The tensor holding a slot's row and the row within it (tests reach into the table through this).</summary>
    internal (Tensor Rows, int Row) RowOf(int slot)
    {
        lock (_lock)
            return (_segments[slot / _segmentRows].Rows, slot % _segmentRows);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            ReleaseSegments();
            _slots.Clear();
            _hostIndex.Dispose();
            _hostRows.Dispose();
        }
    }
}

/// <summary>
/// Device memory shared by every Gpu-tier table of a store: <see cref="StoreOptions.GpuMemoryBytes"/> in all. Tables
/// reserve it a segment at a time as they fill, first come first served, and give it back when dropped or switched
/// off; a table the budget cannot grow evicts within what it holds.
/// </summary>
internal sealed class GpuBudget(long totalBytes)
{
    private long _reserved;

    public long Total { get; } = totalBytes;

    /// <summary>Reservation unit: a sixteenth of the budget, at most 64 MiB.</summary>
    public long SegmentBytes { get; } = Math.Clamp(totalBytes / 16, 1, 64L << 20);

    public long Reserved => Interlocked.Read(ref _reserved);

    public long Available => Total - Reserved;

    public bool TryReserve(long bytes)
    {
        while (true)
        {
            var reserved = Interlocked.Read(ref _reserved);
            if (reserved + bytes > Total)
                return false;
            if (Interlocked.CompareExchange(ref _reserved, reserved + bytes, reserved) == reserved)
                return true;
        }
    }

    public void Release(long bytes) => Interlocked.Add(ref _reserved, -bytes);
}

/// <summary>
/// The device operations of a Gpu table, the seam where device errors come from: allocate a segment, read rows out,
/// write rows in. On CUDA each call is synchronous (the copy back to the host waits for the kernels).
/// </summary>
internal class TableDevice(Device device)
{
    public bool OnDevice { get; } = device.type == DeviceType.CUDA;

    public virtual Tensor Allocate(int rows, int rowBytes) => empty([rows, rowBytes], ScalarType.Byte, device);

    /// <summary>Rows <paramref name="index"/> of <paramref name="segment"/> into <paramref name="destination"/> (host tensors).</summary>
    public virtual void Read(Tensor segment, Tensor index, Tensor destination)
    {
        using var scope = NewDisposeScope();
        var gathered = segment.index_select(0, OnDevice ? index.to(device) : index);
        destination.copy_(OnDevice ? gathered.cpu() : gathered);
    }

    /// <summary>Host rows <paramref name="source"/> into rows <paramref name="index"/> of <paramref name="segment"/>.</summary>
    public virtual void Write(Tensor segment, Tensor index, Tensor source)
    {
        using var scope = NewDisposeScope();
        if (OnDevice)
            segment.index_copy_(0, index.to(device), source.to(device));
        else
            segment.index_copy_(0, index, source);
    }
}
