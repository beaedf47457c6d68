using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

public sealed class PngTests
{
    private static RunMetrics Metrics(params (double Loss, double P1)[] epochs)
    {
        var m = new RunMetrics
        {
            Dataset = "d",
            Encoder = "e",
            Source = "cached",
            Config = new RunConfig(HeadKind.Mlp, LossKind.Triplet, epochs.Length, 64, 1e-3, 0.5, 1, 5, 8, 8, 8, null),
            Fill = new FillMetrics(1, 10, 0),
            Baseline = new ScoreMetrics(0.3, 0.5),
            UntrainedHead = new ScoreMetrics(0.2, 0.4),
        };
        for (var i = 0; i < epochs.Length; i++)
            m.Epochs.Add(new EpochMetrics(i + 1, i == 0, epochs[i].Loss, epochs[i].P1, 0.9, 1, 0.1, 1, 100, 2));
        return m;
    }

    [Fact]
    public void TrainingPlot_WrittenPng_DecodesWithValidChunksAndShowsBothLines()
    {
        using var dir = new TempDirectory("png");
        var metrics = Metrics((0.40, 0.50), (0.20, 0.80), (0.10, 0.90));
        var path = dir.Combine("plot.png");

        TrainingPlot.Write(path, metrics);
        var png = DecodedPng.Read(File.ReadAllBytes(path));

        Assert.Equal(TrainingPlot.Width, png.Width);
        Assert.Equal(TrainingPlot.Height, png.Height);
        Assert.Equal(8, png.BitDepth);
        Assert.Equal(6, png.ColourType);
        Assert.Equal(["IHDR", "IDAT", "IEND"], png.ChunkTypes);

        var lossMax = TrainingPlot.LossAxisMax([0.40, 0.20, 0.10]);
        for (var e = 1; e <= 3; e++)
        {
            var (lx, ly) = TrainingPlot.PointFor(TrainingPlot.LossArea, e, 3, metrics.Epochs[e - 1].Loss, lossMax);
            Assert.Equal(TrainingPlot.LossColour, png.Pixel(lx, ly));
            var (px, py) = TrainingPlot.PointFor(TrainingPlot.PrecisionArea, e, 3, metrics.Epochs[e - 1].PrecisionAt1, 1);
            Assert.Equal(TrainingPlot.PrecisionColour, png.Pixel(px, py));
        }

        // Halfway between epochs 1 and 2 the loss segment passes through the midpoint of its ends.
        var a = TrainingPlot.PointFor(TrainingPlot.LossArea, 1, 3, 0.40, lossMax);
        var b = TrainingPlot.PointFor(TrainingPlot.LossArea, 2, 3, 0.20, lossMax);
        Assert.Equal(TrainingPlot.LossColour, png.Pixel((a.X + b.X) / 2, (a.Y + b.Y) / 2));
        // Far from any line, the background.
        Assert.Equal(TrainingPlot.Background, png.Pixel(TrainingPlot.LossArea.Right - 3, TrainingPlot.LossArea.Bottom - 30));
    }

    [Fact]
    public void PngEncoder_SmallCanvas_RoundTripsEveryPixel()
    {
        var canvas = new Canvas(5, 3, new Rgba(1, 2, 3, 4));
        canvas.Set(4, 2, new Rgba(200, 100, 50));
        canvas.Line(0, 0, 4, 0, new Rgba(9, 9, 9));
        using var stream = new MemoryStream();

        PngEncoder.Write(stream, canvas);
        var png = DecodedPng.Read(stream.ToArray());

        Assert.Equal(canvas.Pixels, png.Pixels);
        Assert.Equal(new Rgba(200, 100, 50), png.Pixel(4, 2));
        Assert.Equal(new Rgba(9, 9, 9), png.Pixel(2, 0));
    }

    /// <summary>A decoder independent of the encoder: checks the signature and every chunk CRC, inflates IDAT, undoes filter 0.</summary>
    private sealed class DecodedPng
    {
        public int Width { get; private init; }

        public int Height { get; private init; }

        public int BitDepth { get; private init; }

        public int ColourType { get; private init; }

        public List<string> ChunkTypes { get; } = [];

        public byte[] Pixels { get; private set; } = [];

        public Rgba Pixel(int x, int y)
        {
            var i = ((y * Width) + x) * 4;
            return new Rgba(Pixels[i], Pixels[i + 1], Pixels[i + 2], Pixels[i + 3]);
        }

        public static DecodedPng Read(byte[] file)
        {
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, file[..8]);
            var chunks = new List<(string Type, byte[] Data)>();
            for (var at = 8; at < file.Length;)
            {
                var length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
                var type = Encoding.ASCII.GetString(file, at + 4, 4);
                var data = file.AsSpan(at + 8, length).ToArray();
                var crc = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(at + 8 + length));
                Assert.Equal(Crc32.HashToUInt32(file.AsSpan(at + 4, 4 + length)), crc);
                chunks.Add((type, data));
                at += 12 + length;
            }

            var ihdr = chunks[0].Data;
            Assert.Equal("IHDR", chunks[0].Type);
            Assert.Equal(13, ihdr.Length);
            var png = new DecodedPng
            {
                Width = BinaryPrimitives.ReadInt32BigEndian(ihdr),
                Height = BinaryPrimitives.ReadInt32BigEndian(ihdr.AsSpan(4)),
                BitDepth = ihdr[8],
                ColourType = ihdr[9],
            };
            Assert.Equal(0, ihdr[10]);
            Assert.Equal(0, ihdr[11]);
            Assert.Equal(0, ihdr[12]);
            png.ChunkTypes.AddRange(chunks.Select(c => c.Type));

            using var inflated = new MemoryStream();
            using (var zlib = new ZLibStream(new MemoryStream(chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray()), CompressionMode.Decompress))
                zlib.CopyTo(inflated);
            var raw = inflated.ToArray();
            var stride = png.Width * 4;
            Assert.Equal(png.Height * (stride + 1), raw.Length);
            png.Pixels = new byte[png.Height * stride];
            for (var y = 0; y < png.Height; y++)
            {
                Assert.Equal(0, raw[y * (stride + 1)]);
                Array.Copy(raw, (y * (stride + 1)) + 1, png.Pixels, y * stride, stride);
            }

            return png;
        }
    }
}
