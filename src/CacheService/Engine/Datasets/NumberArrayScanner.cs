using System.Text.Json;

namespace EmbedCache.Engine.Datasets;

/// <summary>
/// The feature array of a JSONL vector or tensor record without a JSON token per number: the common line — an
/// object whose feature field is a flat array of short decimals — has its array scanned here byte by byte (strict
/// JSON number grammar, <see cref="FastFloat"/> for the values), and the rest of the line, with that array replaced
/// by <c>[]</c>, is left to <see cref="Utf8JsonReader"/>. Anything else (an exponent, more than 7 significant digits,
/// a non-number element, invalid JSON before the array) returns false, and the caller parses the line as it was, so
/// results and errors are exactly those of the general path. The number tokens are most of such a line, and the
/// reader spends several times longer on each than this scan does.
/// </summary>
internal static class NumberArrayScanner
{
    /// <summary>
    /// Finds the first value of <paramref name="field"/> (UTF-8) in <paramref name="line"/>; if it is an array this
    /// scan accepts, writes its numbers into <paramref name="values"/> (grown as needed) and the line with the array
    /// replaced by <c>[]</c> into <paramref name="rest"/> (grown as needed).
    /// </summary>
    /// <param name="arrayAt">Where the <c>[]</c> stands in the rewritten line.</param>
    public static bool TryScan(ReadOnlySpan<byte> line, ReadOnlySpan<byte> field, ref float[] values, ref byte[] rest,
        out int restLength, out int arrayAt, out int count)
    {
        restLength = arrayAt = count = 0;
        int start;
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return false;
            while (true)
            {
                if (!reader.Read() || reader.TokenType != JsonTokenType.PropertyName)
                    return false;
                var isField = reader.ValueTextEquals(field);
                reader.Read();
                if (isField)
                {
                    if (reader.TokenType != JsonTokenType.StartArray)
                        return false;
                    start = checked((int)reader.TokenStartIndex);
                    break;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
            return false; // the general path reports it
        }

        var end = ScanArray(line, start, ref values, out count);
        if (end < 0)
            return false;
        restLength = line.Length - (end - start) + 2;
        if (rest.Length < restLength)
            rest = new byte[Math.Max(restLength, rest.Length * 2)];
        line[..start].CopyTo(rest);
        rest[start] = (byte)'[';
        rest[start + 1] = (byte)']';
        line[end..].CopyTo(rest.AsSpan(start + 2));
        arrayAt = start;
        return true;
    }

    /// <summary>
    /// Scans <c>[n, n, ...]</c> starting at <paramref name="at"/> (the '['); returns the index after ']', or -1. Each
    /// number is checked against <c>-?(0|[1-9][0-9]*)(\.[0-9]+)?</c> and converted in the same pass, under
    /// <see cref="FastFloat"/>'s conditions (at most 7 significant digits, at most 10 after the point).
    /// </summary>
    private static int ScanArray(ReadOnlySpan<byte> line, int at, ref float[] values, out int count)
    {
        count = 0;
        var powers = FastFloat.PowersOfTen;
        var i = SkipSpace(line, at + 1);
        if (i < line.Length && line[i] == (byte)']')
            return i + 1;
        while (true)
        {
            var negative = i < line.Length && line[i] == (byte)'-';
            if (negative)
                i++;
            if (i >= line.Length)
                return -1;
            uint mantissa = 0;
            var significant = 0;
            var digit = (uint)(line[i] - '0');
            if (digit == 0)
            {
                i++;
            }
            else if (digit <= 9)
            {
                do
                {
                    if (++significant > 7)
                        return -1;
                    mantissa = (mantissa * 10) + digit;
                    i++;
                }
                while (i < line.Length && (digit = (uint)(line[i] - '0')) <= 9);
            }
            else
            {
                return -1;
            }

            var fraction = 0;
            if (i < line.Length && line[i] == (byte)'.')
            {
                i++;
                if (i >= line.Length || (digit = (uint)(line[i] - '0')) > 9)
                    return -1;
                do
                {
                    if ((significant > 0 || digit != 0) && ++significant > 7)
                        return -1;
                    mantissa = (mantissa * 10) + digit;
                    fraction++;
                    i++;
                }
                while (i < line.Length && (digit = (uint)(line[i] - '0')) <= 9);
                if (fraction > 10)
                    return -1;
            }

            if (count == values.Length)
                Array.Resize(ref values, values.Length * 2);
            var magnitude = fraction == 0 ? mantissa : mantissa / powers[fraction];
            values[count++] = negative ? -magnitude : magnitude;

            // An exponent, or anything glued to the number ("01", "1x"), is for the general path.
            i = SkipSpace(line, i);
            if (i >= line.Length)
                return -1;
            if (line[i] == (byte)']')
                return i + 1;
            if (line[i] != (byte)',')
                return -1;
            i = SkipSpace(line, i + 1);
        }
    }

    /// <summary>JSON whitespace (a line holds no line ends).</summary>
    private static int SkipSpace(ReadOnlySpan<byte> line, int i)
    {
        while (i < line.Length && line[i] is (byte)' ' or (byte)'\t')
            i++;
        return i;
    }
}
