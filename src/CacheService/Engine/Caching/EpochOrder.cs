namespace EmbedCache.Engine.Caching;

/// <summary>
/// The order in which an epoch visits a split: a Fisher–Yates permutation driven by SplitMix64
/// seeded from (seed, epoch). Our own generator, not System.Random, so the order is the same for
/// every caller, process, machine and .NET version.
/// </summary>
public static class EpochOrder
{
    /// <summary>Item indices 0..count-1 in epoch order.</summary>
    public static ulong[] Permutation(long count, ulong seed, uint epoch, bool shuffle = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new ulong[count];
        for (long i = 0; i < count; i++)
            order[i] = (ulong)i;
        if (!shuffle || count < 2)
            return order;

        var state = seed ^ (0x9E3779B97F4A7C15UL * (epoch + 1UL));
        for (var i = count - 1; i > 0; i--)
        {
            var j = (long)Bounded(ref state, (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }

        return order;
    }

    private static ulong Next(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // Lemire's unbiased bounded integer: uniform in [0, bound).
    private static ulong Bounded(ref ulong state, ulong bound)
    {
        var threshold = (0UL - bound) % bound;
        while (true)
        {
            var r = Next(ref state);
            var product = Math.BigMul(r, bound, out var low);
            if (low >= threshold)
                return product;
        }
    }
}
