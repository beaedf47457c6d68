using System.Numerics;
using System.Runtime.InteropServices;

namespace EmbedCache.Engine.Encoders;

/// <summary>Checks on feature values that every encoder runs before a forward pass.</summary>
internal static class FeatureChecks
{
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
