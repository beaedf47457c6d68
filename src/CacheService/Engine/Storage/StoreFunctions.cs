using System.Buffers.Binary;
using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>What a read does with a found value.</summary>
internal enum ReadMode
{
    /// <summary>Verify, then copy the data into row <c>Index</c> of the caller's buffer (fixed row size).</summary>
    Rows,

    /// <summary>Only set the found bit (existence check; no data leaves the store).</summary>
    Exists,

    /// <summary>Verify, then copy the data into a new array (variable-length labels and metadata).</summary>
    Arrays,
}

/// <summary>
/// Per-operation input. Reads use <see cref="Index"/>; writes (RMW) also carry a pointer to the data, which stays
/// pinned until the batch has completed all pending operations.
/// </summary>
internal unsafe struct StoreInput
{
    public byte* Source;
    public int Length;
    public int Index;
}

/// <summary>Record size of an RMW: <c>[checksum][data]</c>.</summary>
internal struct StoreValueLength : IVariableLengthStruct<SpanByte, StoreInput>
{
    public readonly int GetInitialLength(ref StoreInput input) => sizeof(int) + Checksums.Size + input.Length;

    public readonly int GetLength(ref SpanByte t, ref StoreInput input) => sizeof(int) + Checksums.Size + input.Length;
}

/// <summary>
/// FASTER callbacks of one <see cref="StoreSession"/> for one FASTER store. A session is used by one thread at a
/// time and FASTER runs its callbacks (including completed disk reads) on that thread inside the batch call, so the
/// per-batch state below needs no synchronisation. Readers copy straight into the caller's pinned buffer and set
/// the found bit; nothing is allocated per key on the row path.
/// </summary>
internal sealed unsafe class StoreFunctions : FunctionsBase<SpanByte, SpanByte, StoreInput, Empty, Empty>
{
    private ReadMode _mode;
    private byte* _rows;
    private int _rowBytes;
    private byte* _mask;
    private int _maskBytes;
    private byte[]?[] _arrays = [];

    /// <summary>Entries of the current read batch whose checksum failed.</summary>
    public int CorruptCount { get; private set; }

    public int FirstCorrupt { get; private set; } = -1;

    /// <summary>Records created (keys that did not exist) by the current write batch.</summary>
    public int Inserted { get; private set; }

    public long InsertedBytes { get; private set; }

    public byte[]?[] Arrays => _arrays;

    public void BeginRead(ReadMode mode, byte* rows, int rowBytes, byte* mask, int count)
    {
        _mode = mode;
        _rows = rows;
        _rowBytes = rowBytes;
        _mask = mask;
        _maskBytes = FoundMask.Bytes(count);
        CorruptCount = 0;
        FirstCorrupt = -1;
        if (mode == ReadMode.Arrays)
        {
            if (_arrays.Length < count)
                _arrays = new byte[]?[Math.Max(count, 16)];
            Array.Clear(_arrays, 0, count);
        }
    }

    public void EndRead()
    {
        _rows = null;
        _mask = null;
        _maskBytes = 0;
    }

    public void BeginWrite()
    {
        Inserted = 0;
        InsertedBytes = 0;
    }

    public override bool SingleReader(ref SpanByte key, ref StoreInput input, ref SpanByte value, ref Empty dst, ref ReadInfo readInfo) =>
        Read(ref key, ref input, ref value);

    public override bool ConcurrentReader(ref SpanByte key, ref StoreInput input, ref SpanByte value, ref Empty dst, ref ReadInfo readInfo) =>
        Read(ref key, ref input, ref value);

    private bool Read(ref SpanByte key, ref StoreInput input, ref SpanByte value)
    {
        var index = input.Index;
        if (_mode == ReadMode.Exists)
        {
            FoundMask.Set(new Span<byte>(_mask, _maskBytes), index);
            return true;
        }

        var payload = value.AsReadOnlySpan();
        if (!Checksums.Verify(key.AsReadOnlySpan(), payload))
        {
            MarkCorrupt(index);
            return true;
        }

        var data = payload[Checksums.Size..];
        if (_mode == ReadMode.Rows)
        {
            if (data.Length != _rowBytes)
            {
                MarkCorrupt(index);
                return true;
            }

            data.CopyTo(new Span<byte>(_rows + ((long)index * _rowBytes), _rowBytes));
        }
        else
        {
            _arrays[index] = data.ToArray();
        }

        FoundMask.Set(new Span<byte>(_mask, _maskBytes), index);
        return true;
    }

    private void MarkCorrupt(int index)
    {
        if (CorruptCount++ == 0)
            FirstCorrupt = index;
    }

    public override bool InitialUpdater(ref SpanByte key, ref StoreInput input, ref SpanByte value, ref Empty output, ref RMWInfo rmwInfo)
    {
        Write(ref key, ref input, ref value);
        Inserted++;
        InsertedBytes += RecordBytes(key.TotalSize, value.TotalSize);
        return true;
    }

    public override bool CopyUpdater(ref SpanByte key, ref StoreInput input, ref SpanByte oldValue, ref SpanByte newValue, ref Empty output, ref RMWInfo rmwInfo)
    {
        Write(ref key, ref input, ref newValue);
        return true;
    }

    public override bool InPlaceUpdater(ref SpanByte key, ref StoreInput input, ref SpanByte value, ref Empty output, ref RMWInfo rmwInfo)
    {
        if (value.Length < Checksums.Size + input.Length)
            return false; // FASTER then appends a new record (copy update)
        Write(ref key, ref input, ref value);
        return true;
    }

    private static void Write(ref SpanByte key, ref StoreInput input, ref SpanByte value)
    {
        // FASTER sizes the value to the record's aligned end; trim it to exactly [checksum][data].
        value.UnmarkExtraMetadata();
        value.ShrinkSerializedLength(Checksums.Size + input.Length);
        var payload = value.AsSpan();
        var data = payload[Checksums.Size..];
        new ReadOnlySpan<byte>(input.Source, input.Length).CopyTo(data);
        BinaryPrimitives.WriteUInt32LittleEndian(payload, Checksums.Compute(key.AsReadOnlySpan(), data));
    }

    // Compaction moves records with SingleWriter/ConcurrentWriter: copy them as they are.
    public override bool SingleWriter(ref SpanByte key, ref StoreInput input, ref SpanByte src, ref SpanByte dst, ref Empty output, ref UpsertInfo upsertInfo, WriteReason reason)
    {
        src.CopyTo(ref dst);
        return true;
    }

    public override bool ConcurrentWriter(ref SpanByte key, ref StoreInput input, ref SpanByte src, ref SpanByte dst, ref Empty output, ref UpsertInfo upsertInfo)
    {
        if (dst.Length < src.Length)
            return false;
        dst.UnmarkExtraMetadata();
        dst.ShrinkSerializedLength(src.Length);
        src.CopyTo(ref dst);
        return true;
    }

    // A tombstone has no room for a value; do not write one (the base class would).
    public override bool SingleDeleter(ref SpanByte key, ref SpanByte value, ref DeleteInfo deleteInfo) => true;

    /// <summary>Bytes a record takes in the log: header, key and value, each 8-byte aligned.</summary>
    public static long RecordBytes(int keyTotalSize, int valueTotalSize) =>
        8 + Align8(keyTotalSize) + Align8(valueTotalSize);

    private static long Align8(int size) => (size + 7) & ~7;
}
