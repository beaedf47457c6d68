using System.Numerics;
using System.Runtime.CompilerServices;

// One source file, compiled into two assemblies: the engine (public EmbedCache.Engine.FoundMask: the store, the caching
// layer and the gRPC service use it) and the .NET client (internal EmbedCache.CacheClient.FoundMask, linked in by
// src/CacheClient/EmbedCache.CacheClient.csproj, which defines EMBEDCACHE_CLIENT). The client cannot reference the
// engine, and a public type of one full name in both would be ambiguous to the projects that reference both (Trainer,
// tests, bench); two namespaces and the client's copy internal keep the arithmetic in one place without that.
#if EMBEDCACHE_CLIENT
namespace EmbedCache.CacheClient;
#else
namespace EmbedCache.Engine;
#endif

/// <summary>
/// The found mask of a batch, as the contract defines it: bit i (least significant bit first within each byte) of
/// byte i / 8 is set when row i was found. Every reader and writer of those bits goes through here.
/// </summary>
#if EMBEDCACHE_CLIENT
internal
#else
public
#endif
static class FoundMask
{
    /// <summary>Bytes of the mask of <paramref name="count"/> rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Bytes(int count) => (count + 7) >> 3;

    /// <summary>A clear mask of <paramref name="count"/> rows.</summary>
    public static byte[] New(int count) => new byte[Bytes(count)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsSet(ReadOnlySpan<byte> mask, int index) => (mask[index >> 3] & (1 << (index & 7))) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Set(Span<byte> mask, int index) => mask[index >> 3] |= (byte)(1 << (index & 7));

    /// <summary>Sets the bits of rows 0..count-1 (the bits past them stay clear).</summary>
    public static void SetAll(Span<byte> mask, int count)
    {
        var full = count >> 3;
        mask[..full].Fill(0xFF);
        if ((count & 7) != 0)
            mask[full] = (byte)((1 << (count & 7)) - 1);
    }

    /// <summary>A mask of <paramref name="count"/> rows, all found.</summary>
    public static byte[] All(int count)
    {
        var mask = New(count);
        SetAll(mask, count);
        return mask;
    }

    /// <summary>How many of rows 0..count-1 are set.</summary>
    public static int Count(ReadOnlySpan<byte> mask, int count)
    {
        var full = count >> 3;
        var found = 0;
        foreach (var b in mask[..full])
            found += BitOperations.PopCount(b);
        if ((count & 7) != 0)
            found += BitOperations.PopCount((uint)(mask[full] & ((1 << (count & 7)) - 1)));
        return found;
    }

    /// <summary>Writes the rows of 0..count-1 whose bit is clear into <paramref name="into"/>; returns how many.</summary>
    public static int Unset(ReadOnlySpan<byte> mask, int count, Span<int> into)
    {
        var n = 0;
        for (var i = 0; i < count; i++)
        {
            if (!IsSet(mask, i))
                into[n++] = i;
        }

        return n;
    }

    /// <summary>The rows of 0..count-1 whose bit is clear, in order.</summary>
    public static int[] Unset(ReadOnlySpan<byte> mask, int count)
    {
        var missing = new int[count - Count(mask, count)];
        Unset(mask, count, missing);
        return missing;
    }

    /// <summary>Keeps, in place and in order, the entries of <paramref name="rows"/> whose bit is set (or clear); returns them.</summary>
    public static Span<int> Filter(ReadOnlySpan<byte> mask, Span<int> rows, bool set)
    {
        var n = 0;
        foreach (var row in rows)
        {
            if (IsSet(mask, row) == set)
                rows[n++] = row;
        }

        return rows[..n];
    }

    /// <summary>True when <paramref name="mask"/> has room for the bits of <paramref name="count"/> rows.</summary>
    public static bool Fits(ReadOnlySpan<byte> mask, int count) => mask.Length >= Bytes(count);
}
