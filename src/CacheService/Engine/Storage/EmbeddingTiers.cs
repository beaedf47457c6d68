using System.Buffers;
using System.IO.Hashing;
using EmbedCache.Engine.Keys;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// One level of a namespace's embedding storage. A <see cref="StoreSession"/> reads a batch through a namespace's
/// tiers from the top down, each tier reading only what the tiers above it did not find, and fills the rows a lower
/// tier found into every tier above it; it writes a batch from the bottom up, so an upper tier never holds a row the
/// tiers below it lack. Today a Gpu namespace has two tiers (<see cref="GpuTableTier"/> over <see cref="FasterTier"/>)
/// and Cpu and Disk namespaces one (their FASTER store). A further tier (a remote one on a Redis-protocol cluster:
/// batched reads of many keys, write-behind, checksums verified on read) implements this and is put in the list;
/// nothing else changes.
/// </summary>
/// <remarks>
/// A tier is shared by the sessions of the store (it keeps no per-batch state of its own: what a batch needs, its
/// keys and their hashes and the caller's FASTER sessions, comes with the <see cref="TierBatch"/>). A tier that is a
/// cache drops a row that fails its checksum and reports it as not found (the tiers below serve it); a tier that
/// holds the data reports it in <see cref="TierRead.Corrupt"/> and the read fails once every tier has been asked.
/// </remarks>
internal interface IEmbeddingTier
{
    /// <summary>
    /// Reads the rows of the entries in <paramref name="wanted"/> that this tier holds into <paramref name="rows"/>
    /// (entry i at i × RowBytes) and sets their bits in <paramref name="mask"/>; the others are left as they are.
    /// </summary>
    TierRead Read(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> rows, Span<byte> mask);

    /// <summary>Sets the bits of the entries in <paramref name="wanted"/> this tier holds; no data is read out.</summary>
    void Contains(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> mask);

    /// <summary>Stores the rows of the entries in <paramref name="which"/> (a Put).</summary>
    void Write(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which);

    /// <summary>
    /// Taken after this tier's read of a batch and before the tiers below are read: a <see cref="Fill"/> with it skips
    /// the entries a write changed since, so a row read below never replaces a newer one written meanwhile.
    /// </summary>
    long FillMark { get; }

    /// <summary>Stores rows a tier below this one found (entries in <paramref name="which"/>).</summary>
    void Fill(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long mark);
}

/// <summary>What a tier's read found.</summary>
/// <param name="Found">Entries it found (their bits are set).</param>
/// <param name="Corrupt">Entries whose stored value failed its checksum (their bits are clear, their rows unwritten).</param>
/// <param name="FirstCorrupt">The first of those, or -1.</param>
internal readonly record struct TierRead(int Found, int Corrupt = 0, int FirstCorrupt = -1);

/// <summary>
/// A batch of one namespace's keys on its way through the tiers, with what tiers derive from the keys (computed once
/// per batch, on first use) and the calling session's FASTER sessions. One per <see cref="StoreSession"/>, reused.
/// </summary>
internal sealed class TierBatch(Func<KvStore, FasterBatch> fasterSessions)
{
    private UInt128[] _hashes = [];
    private ulong[] _seeds = [];
    private int[] _scratch = [];
    private bool _hashed;

    public NamespaceState Namespace { get; private set; } = null!;

    public ItemKeyBatch Keys { get; private set; } = null!;

    public int Count { get; private set; }

    /// <summary>The stored keys of the batch.</summary>
    public DataKeys StoredKeys => new(Namespace.FingerprintBytes, Keys);

    public TierBatch Reset(NamespaceState state, ItemKeyBatch keys)
    {
        Namespace = state;
        Keys = keys;
        Count = keys.Count;
        _hashed = false;
        return this;
    }

    /// <summary>The calling session's FASTER session on <paramref name="kv"/>.</summary>
    public FasterBatch Faster(KvStore kv) => fasterSessions(kv);

    /// <summary>XxHash128 of each stored key (the Gpu table's slot-map key).</summary>
    public ReadOnlySpan<UInt128> Hashes
    {
        get
        {
            Hash();
            return _hashes.AsSpan(0, Count);
        }
    }

    /// <summary>Checksum seed of each stored key.</summary>
    public ReadOnlySpan<ulong> Seeds
    {
        get
        {
            Hash();
            return _seeds.AsSpan(0, Count);
        }
    }

    /// <summary>A buffer of <see cref="Count"/> ints for one tier's use within one call.</summary>
    public Span<int> Scratch => Grow(ref _scratch, Count);

    private void Hash()
    {
        if (_hashed)
            return;
        Grow(ref _hashes, Count);
        Grow(ref _seeds, Count);
        var source = StoredKeys;
        Span<byte> keyBuffer = stackalloc byte[Storage.StoredKeys.MaxBytes];
        for (var i = 0; i < Count; i++)
        {
            var key = keyBuffer[..source.Write(i, keyBuffer)];
            _hashes[i] = XxHash128.HashToUInt128(key);
            _seeds[i] = Checksums.Seed(key);
        }

        _hashed = true;
    }

    internal static Span<T> Grow<T>(ref T[] array, int n)
    {
        if (array.Length < n)
            array = new T[Math.Max(n, Math.Max(256, array.Length * 2))];
        return array.AsSpan(0, n);
    }
}

/// <summary>
/// The Gpu table of a namespace as its top tier: a device-resident cache of rows in front of FASTER. It reads the
/// whole batch (it is always the top tier); a row that fails its checksum there is dropped, counted and logged, and
/// read again from the tier below.
/// </summary>
internal sealed class GpuTableTier(GpuTable table, Action<NamespaceState, int, string> reportCorruption) : IEmbeddingTier
{
    public GpuTable Table { get; } = table;

    public TierRead Read(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> rows, Span<byte> mask)
    {
        if (wanted.Length != batch.Count)
            throw new InvalidOperationException("the Gpu table is a namespace's top tier: it reads whole batches");
        var state = batch.Namespace;
        var gathered = Table.Gather(batch.Hashes, batch.Seeds, rows, mask, batch.Scratch);
        if (gathered.CorruptCount > 0)
        {
            Interlocked.Add(ref state.GpuCorruptRows, gathered.CorruptCount);
            reportCorruption(state, gathered.CorruptCount, batch.Keys.Describe(gathered.FirstCorrupt));
        }

        if (gathered.Hits > 0)
            Interlocked.Add(ref state.GpuHits, gathered.Hits);
        return new TierRead(gathered.Hits);
    }

    public void Contains(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> mask)
    {
        if (wanted.Length != batch.Count)
            throw new InvalidOperationException("the Gpu table is a namespace's top tier: it reads whole batches");
        Table.Contains(batch.Hashes, mask);
    }

    public void Write(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which) =>
        Table.Put(batch.Hashes, batch.Seeds, rows, which);

    public long FillMark => Table.WriteSequence;

    public void Fill(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long mark) =>
        Table.Promote(batch.Hashes, batch.Seeds, rows, which, mark);
}

/// <summary>
/// A FASTER store (the Cpu or the Disk one) as the tier that holds a namespace's data: checksummed values verified on
/// read, writes inside the store's write gate (so checkpoints count exactly), and reads that a concurrent compaction
/// (a drop of another namespace) made miss are read again once it is over.
/// </summary>
internal sealed unsafe class FasterTier(KvStore kv, EmbeddingStore store) : IEmbeddingTier
{
    public KvStore Kv { get; } = kv;

    public TierRead Read(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> rows, Span<byte> mask)
    {
        var faster = batch.Faster(Kv);
        var source = batch.StoredKeys;
        var rowBytes = batch.Namespace.RowBytes;
        var n = batch.Count;
        var compactions = store.Compaction.Generation;
        var left = wanted;
        int corrupt, first;
        while (true)
        {
            fixed (byte* rowPtr = rows)
            fixed (byte* maskPtr = mask)
                (corrupt, first) = faster.Read(ref source, ReadMode.Rows, rowPtr, rowBytes, maskPtr, n, left, all: false);
            if (corrupt > 0 || !StillMissing(mask, wanted, batch, ref left) || !store.Compaction.Overlapped(ref compactions))
                break;
        }

        return new TierRead(CountSet(mask, wanted), corrupt, first);
    }

    public void Contains(TierBatch batch, ReadOnlySpan<int> wanted, Span<byte> mask)
    {
        var faster = batch.Faster(Kv);
        var source = batch.StoredKeys;
        var compactions = store.Compaction.Generation;
        var left = wanted;
        do
        {
            fixed (byte* maskPtr = mask)
                faster.Read(ref source, ReadMode.Exists, null, 0, maskPtr, batch.Count, left, all: false);
        }
        while (StillMissing(mask, wanted, batch, ref left) && store.Compaction.Overlapped(ref compactions));
    }

    public void Write(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which)
    {
        var state = batch.Namespace;
        var rowBytes = state.RowBytes;
        if (which.Length == batch.Count)
        {
            var all = batch.StoredKeys;
            Write(batch, ref all, rows, which.Length);
            return;
        }

        // A subset (a fill from a tier below): entry j is entry which[j] of the batch, its row copied next to the others.
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, which.Length * rowBytes));
        try
        {
            for (var j = 0; j < which.Length; j++)
                rows.Slice(which[j] * rowBytes, rowBytes).CopyTo(buffer.AsSpan(j * rowBytes, rowBytes));
            var subset = new SubsetKeys<DataKeys>(batch.StoredKeys, which);
            Write(batch, ref subset, buffer.AsSpan(0, which.Length * rowBytes), which.Length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Write<TKeys>(TierBatch batch, ref TKeys keys, ReadOnlySpan<byte> rows, int count)
        where TKeys : IKeySource, allows ref struct
    {
        var state = batch.Namespace;
        var faster = batch.Faster(Kv);
        store.Gate.Enter();
        try
        {
            state.ThrowIfDropped();
            fixed (byte* data = rows)
                faster.Write(ref keys, data, state.RowBytes, null, count);
            Interlocked.Add(ref state.Items, faster.Functions.Inserted);
            Interlocked.Add(ref state.Bytes, faster.Functions.InsertedBytes);
        }
        finally
        {
            store.Gate.Exit();
        }
    }

    /// <summary>FASTER holds the data; nothing is filled into it today.</summary>
    public long FillMark => 0;

    /// <summary>Rows found below FASTER (by a remote tier) are written as a Put would: values never change under a fingerprint.</summary>
    public void Fill(TierBatch batch, ReadOnlySpan<byte> rows, ReadOnlySpan<int> which, long mark) => Write(batch, rows, which);

    /// <summary>Narrows <paramref name="left"/> to the entries of <paramref name="wanted"/> still clear; false when none is.</summary>
    private static bool StillMissing(ReadOnlySpan<byte> mask, ReadOnlySpan<int> wanted, TierBatch batch, ref ReadOnlySpan<int> left)
    {
        var scratch = batch.Scratch;
        var n = 0;
        foreach (var i in wanted)
        {
            if (!FoundMask.IsSet(mask, i))
                scratch[n++] = i;
        }

        left = scratch[..n];
        return n > 0;
    }

    private static int CountSet(ReadOnlySpan<byte> mask, ReadOnlySpan<int> entries)
    {
        var n = 0;
        foreach (var i in entries)
        {
            if (FoundMask.IsSet(mask, i))
                n++;
        }

        return n;
    }
}

/// <summary>Entries <c>which[0..]</c> of a batch's keys as a batch of their own.</summary>
internal readonly ref struct SubsetKeys<TKeys>(TKeys keys, ReadOnlySpan<int> which) : IKeySource
    where TKeys : IKeySource, allows ref struct
{
    private readonly TKeys _keys = keys;
    private readonly ReadOnlySpan<int> _which = which;

    public int Write(int index, scoped Span<byte> destination) => _keys.Write(_which[index], destination);
}
