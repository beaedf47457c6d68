namespace EmbedCache.Engine.Datasets;

/// <summary>
/// The common case of a JSON number as float32, about ten times faster than the general parser: at most 7
/// significant digits and at most 10 after the point, no exponent. The digits then form an integer below 2^24 and
/// the power of ten is exact in float32, so one float division gives the correctly rounded result — the value
/// <see cref="float.Parse(string)"/> returns (Clinger's fast path). Anything else is left to the general parser.
/// </summary>
internal static class FastFloat
{
    /// <summary>10^0 … 10^10, each exact in float32.</summary>
    public static ReadOnlySpan<float> PowersOfTen => [1f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f];

    /// <summary>Parses <paramref name="number"/>, the text of a valid JSON number; false when it is not the common case.</summary>
    public static bool TryParse(ReadOnlySpan<byte> number, out float value)
    {
        value = 0;
        var i = 0;
        var negative = false;
        if (number.Length > 0 && number[0] == (byte)'-')
        {
            negative = true;
            i = 1;
        }

        uint mantissa = 0;
        var significant = 0;
        var fraction = 0;
        var point = false;
        for (; i < number.Length; i++)
        {
            var digit = (uint)(number[i] - '0');
            if (digit <= 9)
            {
                if (significant > 0 || digit != 0)
                {
                    if (++significant > 7)
                        return false;
                }

                mantissa = (mantissa * 10) + digit;
                if (point)
                    fraction++;
            }
            else if (number[i] == (byte)'.' && !point)
            {
                point = true;
            }
            else
            {
                return false; // an exponent
            }
        }

        if (fraction > 10)
            return false;
        var magnitude = fraction == 0 ? mantissa : mantissa / PowersOfTen[fraction];
        value = negative ? -magnitude : magnitude;
        return true;
    }
}
