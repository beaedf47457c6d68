using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;

namespace EmbedCache.Trainer;

/// <summary>An RGBA raster to draw into: lines, rectangles and a tiny built-in font.</summary>
public sealed class Canvas
{
    public Canvas(int width, int height, Rgba background)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 4];
        FillRect(0, 0, width, height, background);
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major RGBA, 4 bytes a pixel.</summary>
    public byte[] Pixels { get; }

    public Rgba this[int x, int y]
    {
        get
        {
            var i = ((y * Width) + x) * 4;
            return new Rgba(Pixels[i], Pixels[i + 1], Pixels[i + 2], Pixels[i + 3]);
        }
    }

    public void Set(int x, int y, Rgba c)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            return;
        var i = ((y * Width) + x) * 4;
        (Pixels[i], Pixels[i + 1], Pixels[i + 2], Pixels[i + 3]) = (c.R, c.G, c.B, c.A);
    }

    public void FillRect(int x, int y, int width, int height, Rgba c)
    {
        for (var yy = y; yy < y + height; yy++)
        {
            for (var xx = x; xx < x + width; xx++)
                Set(xx, yy, c);
        }
    }

    /// <summary>A line <paramref name="thickness"/> pixels wide (Bresenham, a square pen); dashed when <paramref name="dash"/> &gt; 0.</summary>
    public void Line(int x0, int y0, int x1, int y1, Rgba c, int thickness = 1, int dash = 0)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0);
        int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
        var err = dx + dy;
        var half = thickness / 2;
        for (var step = 0; ; step++)
        {
            if (dash <= 0 || (step / dash) % 2 == 0)
                FillRect(x0 - half, y0 - half, thickness, thickness, c);
            if (x0 == x1 && y0 == y1)
                break;
            var e2 = 2 * err;
            if (e2 >= dy)
            {
                err += dy;
                x0 += sx;
            }

            if (e2 <= dx)
            {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// <summary>Text in a 3×5 pixel font (digits, '.', '-', the capitals the plot uses), each pixel drawn <paramref name="scale"/>² big.</summary>
    public void Text(int x, int y, string text, Rgba c, int scale = 2)
    {
        foreach (var ch in text.ToUpperInvariant())
        {
            if (Glyphs.TryGetValue(ch, out var rows))
            {
                for (var r = 0; r < 5; r++)
                {
                    for (var col = 0; col < 3; col++)
                    {
                        if ((rows[r] & (4 >> col)) != 0)
                            FillRect(x + (col * scale), y + (r * scale), scale, scale, c);
                    }
                }
            }

            x += 4 * scale;
        }
    }

    public static int TextWidth(string text, int scale = 2) => text.Length * 4 * scale;

    private static readonly Dictionary<char, byte[]> Glyphs = new()
    {
        ['0'] = [7, 5, 5, 5, 7], ['1'] = [2, 6, 2, 2, 7], ['2'] = [7, 1, 7, 4, 7], ['3'] = [7, 1, 7, 1, 7],
        ['4'] = [5, 5, 7, 1, 1], ['5'] = [7, 4, 7, 1, 7], ['6'] = [7, 4, 7, 5, 7], ['7'] = [7, 1, 1, 1, 1],
        ['8'] = [7, 5, 7, 5, 7], ['9'] = [7, 5, 7, 1, 7], ['.'] = [0, 0, 0, 0, 2], ['-'] = [0, 0, 7, 0, 0],
        ['A'] = [7, 5, 7, 5, 5], ['C'] = [7, 4, 4, 4, 7], ['E'] = [7, 4, 7, 4, 7],
        ['H'] = [5, 5, 7, 5, 5], ['L'] = [4, 4, 4, 4, 7], ['O'] = [7, 5, 5, 5, 7], ['P'] = [7, 5, 7, 4, 4],
        ['R'] = [7, 5, 7, 6, 5], ['S'] = [7, 4, 7, 1, 7], ['T'] = [7, 2, 2, 2, 2], ['W'] = [5, 5, 5, 7, 5],
        ['B'] = [6, 5, 6, 5, 6], ['I'] = [7, 2, 2, 2, 7], ['N'] = [5, 7, 7, 7, 5], ['D'] = [6, 5, 5, 5, 6],
        ['K'] = [5, 5, 6, 5, 5], ['X'] = [5, 5, 2, 5, 5],
    };
}

public readonly record struct Rgba(byte R, byte G, byte B, byte A = 255);

/// <summary>A minimal PNG encoder: 8-bit RGBA, no interlace, filter 0 on every row, one IDAT.</summary>
public static class PngEncoder
{
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public static void Write(Stream output, Canvas canvas)
    {
        output.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, canvas.Width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], canvas.Height);
        header[8] = 8;  // bit depth
        header[9] = 6;  // colour type: truecolour with alpha
        header[10] = 0; // deflate
        header[11] = 0; // adaptive filtering, method 0
        header[12] = 0; // no interlace
        WriteChunk(output, "IHDR", header);

        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            var stride = canvas.Width * 4;
            for (var y = 0; y < canvas.Height; y++)
            {
                zlib.WriteByte(0); // filter: none
                zlib.Write(canvas.Pixels, y * stride, stride);
            }
        }

        WriteChunk(output, "IDAT", compressed.GetBuffer().AsSpan(0, (int)compressed.Length));
        WriteChunk(output, "IEND", []);
    }

    public static void Write(string path, Canvas canvas)
    {
        using var file = File.Create(path);
        Write(file, canvas);
    }

    private static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        output.Write(typeBytes);
        output.Write(data);
        // The CRC covers the chunk type and data, not the length.
        var crc = new Crc32();
        crc.Append(typeBytes);
        crc.Append(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        output.Write(word);
    }
}
