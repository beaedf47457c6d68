using EmbedCache.Engine.Keys;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// A worker's handle on the store: batched reads of embeddings straight into the caller's buffer and batched writes,
/// through each namespace's tiers (<see cref="IEmbeddingTier"/>); records and named metadata
/// (<c>StoreSession.Records.cs</c>). Holds one FASTER session per FASTER store, so it must be used by one thread or
/// task at a time (concurrent use throws). Disk reads that go pending are completed once per batch.
/// </summary>
public sealed partial class StoreSession : IDisposable
{
    private readonly EmbeddingStore _store;
    private readonly TierBatch _batch;
    private FasterBatch? _cpu;
    private FasterBatch? _disk;
    private FasterBatch? _meta;
    private int _busy;
    private int _disposed;
    private int[] _wanted = [];
    private int[] _filled = [];

    internal StoreSession(EmbeddingStore store)
    {
        _store = store;
        _batch = new TierBatch(FasterOf);
    }

    /// <summary>Tests: runs between a read from a lower tier and the fill of the tiers above it with what it found.</summary>
    internal Action? BeforePromotion { get; set; }

    /// <summary>
    /// Reads <c>keys.Count</c> rows of <paramref name="ns"/> into <paramref name="destination"/> (row i at
    /// i × RowBytes), sets bit i of <paramref name="foundMask"/> (<see cref="FoundMask"/>) for found rows and
    /// zero-fills the rest. Returns the number found.
    /// </summary>
    /// <exception cref="StoreCorruptionException">A value failed its checksum; its row is zeroed, never returned.</exception>
    public int Get(NamespaceHandle ns, ItemKeyBatch keys, Span<byte> destination, Span<byte> foundMask, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        var rowBytes = state.RowBytes;
        CheckBuffer(destination.Length, (long)n * rowBytes, nameof(destination));
        CheckMask(foundMask, n);
        cancellationToken.ThrowIfCancellationRequested();
        Enter();
        try
        {
            state.ThrowIfDropped();
            var mask = foundMask[..FoundMask.Bytes(n)];
            mask.Clear();
            var batch = _batch.Reset(state, keys);
            var tiers = state.Tiers;
            Span<long> marks = stackalloc long[tiers.Length];
            var wanted = All(n);
            int corrupt = 0, firstCorrupt = -1;
            for (var t = 0; t < tiers.Length && wanted.Length > 0; t++)
            {
                var read = tiers[t].Read(batch, wanted, destination, mask);
                if (read.Corrupt > 0)
                {
                    if (corrupt == 0)
                        firstCorrupt = read.FirstCorrupt;
                    corrupt += read.Corrupt;
                }

                if (t > 0 && read.Found > 0)
                {
                    // A hit in a lower tier fills every tier above it.
                    var found = TierBatch.Grow(ref _filled, wanted.Length);
                    wanted.CopyTo(found);
                    found = FoundMask.Filter(mask, found, set: true);
                    BeforePromotion?.Invoke();
                    for (var u = 0; u < t; u++)
                        tiers[u].Fill(batch, destination, found, marks[u]);
                }

                marks[t] = tiers[t].FillMark;
                wanted = FoundMask.Filter(mask, wanted, set: false);
            }

            var hits = n - wanted.Length;
            foreach (var i in wanted)
                destination.Slice(i * rowBytes, rowBytes).Clear();
            Interlocked.Add(ref state.Hits, hits);
            Interlocked.Add(ref state.Misses, n - hits);
            if (corrupt > 0)
                throw Corruption(state, keys, firstCorrupt, corrupt);
            return hits;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Stores <c>keys.Count</c> rows (already in the namespace's dtype, row i at i × RowBytes) in every tier.</summary>
    public void Put(NamespaceHandle ns, ItemKeyBatch keys, ReadOnlySpan<byte> rows)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        var rowBytes = state.RowBytes;
        if (rows.Length != (long)n * rowBytes)
            throw new ArgumentException($"rows holds {rows.Length} bytes; {n} keys × {rowBytes} bytes = {(long)n * rowBytes} expected", nameof(rows));
        Enter();
        try
        {
            state.ThrowIfDropped();
            var batch = _batch.Reset(state, keys);
            var tiers = state.Tiers;
            var all = All(n);
            for (var t = tiers.Length - 1; t >= 0; t--)
                tiers[t].Write(batch, rows, all);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Sets bit i of <paramref name="foundMask"/> for each key that is stored; returns how many. No data is read out.</summary>
    public int Contains(NamespaceHandle ns, ItemKeyBatch keys, Span<byte> foundMask)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(keys);
        var state = ns.State;
        var n = keys.Count;
        CheckMask(foundMask, n);
        Enter();
        try
        {
            state.ThrowIfDropped();
            var mask = foundMask[..FoundMask.Bytes(n)];
            mask.Clear();
            var batch = _batch.Reset(state, keys);
            var wanted = All(n);
            foreach (var tier in state.Tiers)
            {
                if (wanted.Length == 0)
                    break;
                tier.Contains(batch, wanted, mask);
                wanted = FoundMask.Filter(mask, wanted, set: false);
            }

            return n - wanted.Length;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>0..n-1 in the session's buffer.</summary>
    private Span<int> All(int n)
    {
        var all = TierBatch.Grow(ref _wanted, n);
        for (var i = 0; i < n; i++)
            all[i] = i;
        return all;
    }

    /// <summary>This session's FASTER session on <paramref name="kv"/> (opened on first use).</summary>
    private FasterBatch FasterOf(KvStore kv) =>
        kv == _store.CpuStore ? _cpu ??= new FasterBatch(kv)
        : kv == _store.DiskStore ? _disk ??= new FasterBatch(kv)
        : kv == _store.MetaStore ? _meta ??= new FasterBatch(kv)
        : throw new InvalidOperationException($"the {kv.Name} store is not one of this store's");

    private static void CheckMask(Span<byte> mask, int n)
    {
        if (!FoundMask.Fits(mask, n))
            throw new ArgumentException($"foundMask holds {mask.Length} bytes; {FoundMask.Bytes(n)} needed for {n} keys", nameof(mask));
    }

    private static void CheckBuffer(long actual, long needed, string name)
    {
        if (actual < needed)
            throw new ArgumentException($"{name} holds {actual} elements; {needed} needed", name);
    }

    private static StoreCorruptionException Corruption(NamespaceState state, ItemKeyBatch keys, int first, int count) =>
        new($"{count} stored embedding(s) of namespace {state.Spec.Encoder} ({state.Spec.Fingerprint}) failed their checksum; " +
            $"first: entry {first}, {keys.Describe(first)}. No data was returned for them; re-encode or drop the namespace.")
        {
            ItemIndex = first,
            CorruptCount = count,
        };

    private void Enter()
    {
        _store.ThrowIfDisposed();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("a StoreSession is used by one thread at a time; create one session per worker");
    }

    private void Exit() => Volatile.Write(ref _busy, 0);

    internal void DisposeFasterSessions()
    {
        _cpu?.Dispose();
        _disk?.Dispose();
        _meta?.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _store.Forget(this);
        DisposeFasterSessions();
    }
}
