using System.Text;

namespace EmbedCache.Engine.Datasets;

/// <summary>
/// Reads a text file line by line as UTF-8 bytes, without making a string of each line: lines end at LF, CR or
/// CR LF (as <see cref="StreamReader.ReadLine"/>), a UTF-8 byte-order mark is skipped. A file that starts with a
/// UTF-16 or UTF-32 byte-order mark is decoded by a <see cref="StreamReader"/> and each line re-encoded as UTF-8.
/// A line stays valid until the next call.
/// </summary>
internal sealed class Utf8LineReader : IDisposable
{
    private readonly Stream _stream;
    private readonly StreamReader? _decoded;
    private byte[] _buffer = new byte[1 << 16];
    private int _start;
    private int _end;
    private bool _eof;
    private bool _skipLf;

    public Utf8LineReader(string path)
    {
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        Fill();
        var head = _buffer.AsSpan(0, _end);
        if (head.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            _start = 3;
        }
        else if (head.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) || head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) ||
                 head.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0xFE, 0xFF]))
        {
            _stream.Position = 0;
            _decoded = new StreamReader(_stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
            _start = _end = 0;
        }
    }

    /// <summary>1-based number of the line last returned.</summary>
    public long Line { get; private set; }

    /// <summary>True when the line holds only whitespace (or nothing): such lines are not records.</summary>
    public static bool IsBlank(ReadOnlySpan<byte> line) => line.IndexOfAnyExcept(" \t\f\v"u8) < 0;

    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        if (_decoded is not null)
            return TryReadDecoded(out line);
        while (true)
        {
            var available = _buffer.AsSpan(_start, _end - _start);
            if (_skipLf && available.Length > 0)
            {
                _skipLf = false;
                if (available[0] == (byte)'\n')
                {
                    _start++;
                    available = available[1..];
                }
            }

            var at = available.IndexOfAny((byte)'\n', (byte)'\r');
            if (at >= 0)
            {
                line = available[..at];
                _skipLf = available[at] == (byte)'\r';
                _start += at + 1;
                Line++;
                return true;
            }

            if (_eof)
            {
                _start = _end;
                if (available.IsEmpty)
                {
                    line = default;
                    return false;
                }

                line = available;
                Line++;
                return true;
            }

            Fill();
        }
    }

    /// <summary>Moves the unread bytes to the front (growing the buffer when one line fills it) and reads more.</summary>
    private void Fill()
    {
        var unread = _end - _start;
        if (_start > 0)
        {
            _buffer.AsSpan(_start, unread).CopyTo(_buffer);
            _start = 0;
            _end = unread;
        }
        else if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        var read = _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0)
            _eof = true;
        _end += read;
    }

    private bool TryReadDecoded(out ReadOnlySpan<byte> line)
    {
        if (_decoded!.ReadLine() is not { } text)
        {
            line = default;
            return false;
        }

        var bytes = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (_buffer.Length < bytes)
            _buffer = new byte[bytes];
        line = _buffer.AsSpan(0, Encoding.UTF8.GetBytes(text, _buffer));
        Line++;
        return true;
    }

    public void Dispose()
    {
        _decoded?.Dispose();
        _stream.Dispose();
    }
}
