using System.Globalization;
using System.Text;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// The text steps of BERT's basic tokenization that Microsoft.ML.Tokenizers' BertTokenizer does differently
/// here, done before it sees the text:
/// <list type="bullet">
/// <item><see cref="Clean"/>: tab, newline and carriage return are spaces; NUL, U+FFFD and other control and
/// format characters are dropped (BertTokenizer drops the tab too, joining the words around it).</item>
/// <item><see cref="StripAccents"/>: NFD, then drop non-spacing marks. The service runs with invariant
/// globalization, where <see cref="string.Normalize()"/> does not decompose, so the per-code-point result
/// comes from AccentFolding.txt (made by build/make_accent_folding.py from Unicode's data); Hangul syllables
/// decompose algorithmically into their jamo, as NFD does. Deterministic on every host, whatever ICU it has.</item>
/// </list>
/// </summary>
internal static class BertNormalization
{
    private const int HangulBase = 0xAC00, HangulCount = 11172, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, VCount = 21, TCount = 28;

    private static readonly Lazy<Dictionary<int, string>> Table = new(Load);

    /// <summary>BERT's text cleaning; the same string when nothing changes.</summary>
    public static string Clean(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var i = 0;
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (c < ' ' || c >= 0x7F && IsDropped(c, text, i))
                break;
        }

        if (i == text.Length)
            return text;
        var cleaned = new StringBuilder(text.Length).Append(text, 0, i);
        foreach (var rune in text.AsSpan(i).EnumerateRunes())
        {
            var v = rune.Value;
            if (v is '\t' or '\n' or '\r')
                cleaned.Append(' ');
            else if (v != 0 && v != 0xFFFD && Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.Control or UnicodeCategory.Format))
                cleaned.Append(rune.ToString());
        }

        return cleaned.ToString();
    }

    private static bool IsDropped(char c, string text, int i) =>
        c == 0xFFFD || (char.IsSurrogate(c) ? char.GetUnicodeCategory(text, i) : char.GetUnicodeCategory(c)) is UnicodeCategory.Control or UnicodeCategory.Format;

    /// <summary>The text with accents stripped; the same string when nothing changes.</summary>
    public static string StripAccents(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var table = Table.Value;
        var i = 0;
        for (; i < text.Length; i++)
        {
            if (text[i] >= 0x80)
                break;
        }

        if (i == text.Length)
            return text;
        StringBuilder? folded = null;
        var copied = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var at = copied;
            var length = rune.Utf16SequenceLength;
            copied += length;
            string? replacement = null;
            var v = rune.Value;
            if (v >= HangulBase && v < HangulBase + HangulCount)
                replacement = Hangul(v - HangulBase);
            else if (v >= 0x80 && !table.TryGetValue(v, out replacement))
                replacement = null;
            if (replacement is null)
            {
                folded?.Append(text, at, length);
                continue;
            }

            folded ??= new StringBuilder(text.Length).Append(text, 0, at);
            folded.Append(replacement);
        }

        return folded?.ToString() ?? text;
    }

    private static string Hangul(int s)
    {
        var l = (char)(LBase + s / (VCount * TCount));
        var v = (char)(VBase + s % (VCount * TCount) / TCount);
        var t = s % TCount;
        return t == 0 ? string.Concat(l, v) : string.Concat(l, v, (char)(TBase + t));
    }

    private static Dictionary<int, string> Load()
    {
        using var stream = typeof(BertNormalization).Assembly.GetManifestResourceStream("EmbedCache.Engine.Encoders.AccentFolding.txt")
            ?? throw new InvalidOperationException("the AccentFolding.txt resource is missing from the engine assembly");
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var table = new Dictionary<int, string>(4096);
        var runes = new StringBuilder();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            var parts = line.Split(' ');
            runes.Clear();
            foreach (var part in parts.AsSpan(1))
                runes.Append(char.ConvertFromUtf32(int.Parse(part, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
            table[int.Parse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture)] = runes.ToString();
        }

        return table;
    }
}
