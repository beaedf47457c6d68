using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace EmbedCache.Engine.Encoders;

/// <summary>Process-wide TorchSharp settings, applied once before the first model is built.</summary>
internal static class TorchRuntime
{
    private static readonly Lazy<int> Threads = new(() =>
    {
        var threads = Environment.ProcessorCount;
        torch.set_num_threads(threads);
        return threads;
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Intra-op threads: one per core of this host.</summary>
    public static int EnsureInitialized() => Threads.Value;

    /// <summary>Index of the first NaN or ±Inf (exponent bits all ones), or -1; vectorised.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        var bits = MemoryMarshal.Cast<float, uint>(values);
        const uint exponent = 0x7F800000;
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var mask = new Vector<uint>(exponent);
            for (; i + Vector<uint>.Count <= bits.Length; i += Vector<uint>.Count)
            {
                if (Vector.EqualsAny(new Vector<uint>(bits[i..]) & mask, mask))
                    break;
            }
        }

        for (; i < bits.Length; i++)
        {
            if ((bits[i] & exponent) == exponent)
                return i;
        }

        return -1;
    }
}
