using System.Globalization;
using System.Text;

namespace EmbedCache.Engine;

/// <summary>
/// How an error message repeats a value from a request: in quotes, cut to a short prefix with its length when
/// it is long. A status message travels in the response trailers, and a client with gRPC's default 8 KB metadata
/// limit would see "metadata size exceeds limit" instead of the real status if a 64 KB key came back in it.
/// </summary>
public static class Echo
{
    /// <summary>Values up to this many characters are repeated whole.</summary>
    public const int MaxChars = 48;

    /// <summary>Characters of a longer value that are repeated before the cut.</summary>
    public const int PrefixChars = 24;

    /// <summary><c>'value'</c>, or <c>'aaaa…' (65536 chars)</c> for a long one.</summary>
    public static string Quote(string? value)
    {
        value ??= "";
        if (value.Length <= MaxChars)
            return $"'{value}'";
        var cut = PrefixChars;
        if (char.IsHighSurrogate(value[cut - 1]))
            cut--;
        return string.Create(CultureInfo.InvariantCulture, $"'{value.AsSpan(0, cut)}…' ({value.Length} chars)");
    }

    /// <summary>A tensor shape as <c>3x32x32</c>; a long one cut like <see cref="Quote"/>, with its number of dimensions.</summary>
    public static string Shape(IReadOnlyList<long> shape)
    {
        var text = new StringBuilder();
        for (var i = 0; i < shape.Count; i++)
        {
            if (i > 0)
                text.Append('x');
            text.Append(shape[i].ToString(CultureInfo.InvariantCulture));
            if (text.Length > MaxChars)
                return string.Create(CultureInfo.InvariantCulture, $"{text.ToString(0, PrefixChars)}… ({shape.Count} dimensions)");
        }

        return text.ToString();
    }
}
