using FASTER.core;

namespace EmbedCache.Engine.Storage;

/// <summary>
/// One FASTER session of a <see cref="StoreSession"/> on one FASTER store, and the batch operations on it: a batch of
/// reads or read-modify-writes is issued key by key and its pending operations are completed once, at the end.
/// Used by one thread at a time, like the session that owns it.
/// </summary>
internal sealed unsafe class FasterBatch(KvStore kv) : IDisposable
{
    private ClientSession<SpanByte, SpanByte, StoreInput, Empty, Empty, StoreFunctions>? _session;

    public StoreFunctions Functions { get; } = new();

    public KvStore Kv { get; } = kv;

    private ClientSession<SpanByte, SpanByte, StoreInput, Empty, Empty, StoreFunctions> Session => _session ??= Kv.NewSession(Functions);

    /// <summary>
    /// Reads entries of a batch of <paramref name="count"/> (all of them, or those in <paramref name="only"/>) and
    /// completes pending disk reads once. Found entries get their bit in <paramref name="mask"/> (and, by
    /// <paramref name="mode"/>, their row or array). Returns (corrupt count, first corrupt entry).
    /// </summary>
    public (int Corrupt, int First) Read<TKeys>(ref TKeys keys, ReadMode mode, byte* rows, int rowBytes, byte* mask, int count, ReadOnlySpan<int> only, bool all)
        where TKeys : IKeySource, allows ref struct
    {
        var session = Session;
        var functions = Functions;
        functions.BeginRead(mode, rows, rowBytes, mask, count);
        Span<byte> keyBuffer = stackalloc byte[StoredKeys.MaxBytes];
        var input = default(StoreInput);
        var output = default(Empty);
        var uc = session.UnsafeContext;
        uc.BeginUnsafe();
        try
        {
            var pending = 0;
            var issued = all ? count : only.Length;
            fixed (byte* k = keyBuffer)
            {
                for (var j = 0; j < issued; j++)
                {
                    var i = all ? j : only[j];
                    var key = SpanByte.FromPointer(k, keys.Write(i, keyBuffer));
                    input.Index = i;
                    if (uc.Read(ref key, ref input, ref output).IsPending)
                        pending++;
                }
            }

            // Pending reads write into the pinned caller buffer: always complete them before leaving.
            if (pending > 0)
                uc.CompletePending(wait: true);
        }
        finally
        {
            uc.EndUnsafe();
            functions.EndRead();
        }

        return (functions.CorruptCount, functions.FirstCorrupt);
    }

    /// <summary>Writes entries 0..count-1 (RMW: counts new keys). Data of entry i: fixed stride, or offsets[i]..offsets[i+1].</summary>
    public void Write<TKeys>(ref TKeys keys, byte* data, int stride, int* offsets, int count)
        where TKeys : IKeySource, allows ref struct
    {
        var session = Session;
        Functions.BeginWrite();
        Span<byte> keyBuffer = stackalloc byte[StoredKeys.MaxBytes];
        var input = default(StoreInput);
        var output = default(Empty);
        var uc = session.UnsafeContext;
        uc.BeginUnsafe();
        try
        {
            var pending = 0;
            fixed (byte* k = keyBuffer)
            {
                for (var i = 0; i < count; i++)
                {
                    var key = SpanByte.FromPointer(k, keys.Write(i, keyBuffer));
                    if (offsets is null)
                    {
                        input.Source = data + ((long)i * stride);
                        input.Length = stride;
                    }
                    else
                    {
                        input.Source = data + offsets[i];
                        input.Length = offsets[i + 1] - offsets[i];
                    }

                    input.Index = i;
                    if (uc.RMW(ref key, ref input, ref output).IsPending)
                        pending++;
                }
            }

            if (pending > 0)
                uc.CompletePending(wait: true);
        }
        finally
        {
            uc.EndUnsafe();
        }
    }

    public void Dispose()
    {
        _session?.Dispose();
        _session = null;
    }
}
