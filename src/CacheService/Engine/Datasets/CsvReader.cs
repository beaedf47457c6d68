using System.Text;

namespace EmbedCache.Engine.Datasets;

/// <summary>
/// RFC 4180 CSV: comma-separated, fields optionally double-quoted with "" as an escaped quote,
/// quoted fields may span lines, LF or CRLF line ends. The first record is the header.
/// </summary>
internal sealed class CsvReader : IDisposable
{
    private readonly TextReader _reader;
    private readonly StringBuilder _field = new();

    public CsvReader(TextReader reader) => _reader = reader;

    /// <summary>1-based line number where the last record returned started.</summary>
    public long Line { get; private set; }

    private long _nextLine = 1;

    /// <summary>Reads one record into <paramref name="fields"/>; false at end of input.</summary>
    public bool ReadRecord(List<string> fields)
    {
        fields.Clear();
        Line = _nextLine;
        var c = _reader.Read();
        if (c == -1)
            return false;

        // Skip blank lines between records.
        while (c is '\n' or '\r')
        {
            if (c == '\n')
                Line = ++_nextLine;
            c = _reader.Read();
            if (c == -1)
                return false;
        }

        _field.Clear();
        var quoted = false;
        var afterQuote = false;
        while (true)
        {
            if (c == -1)
            {
                if (quoted)
                    throw new DatasetException($"line {Line}: unterminated quoted field");
                fields.Add(_field.ToString());
                return true;
            }

            var ch = (char)c;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (_reader.Peek() == '"')
                    {
                        _reader.Read();
                        _field.Append('"');
                    }
                    else
                    {
                        quoted = false;
                        afterQuote = true;
                    }
                }
                else
                {
                    if (ch == '\n')
                        _nextLine++;
                    _field.Append(ch);
                }
            }
            else if (ch == ',')
            {
                fields.Add(_field.ToString());
                _field.Clear();
                afterQuote = false;
            }
            else if (ch is '\n' or '\r')
            {
                if (ch == '\r' && _reader.Peek() == '\n')
                    _reader.Read();
                _nextLine++;
                fields.Add(_field.ToString());
                return true;
            }
            else if (ch == '"' && _field.Length == 0 && !afterQuote)
            {
                quoted = true;
            }
            else
            {
                if (afterQuote)
                    throw new DatasetException($"line {Line}: text after a closing quote");
                _field.Append(ch);
            }

            c = _reader.Read();
        }
    }

    public void Dispose() => _reader.Dispose();
}
