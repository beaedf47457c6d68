using System.Globalization;
using SkiaSharp;

namespace EmbedCache.Engine.Encoders;

/// <summary>
/// Turns an encoded image (PNG, JPEG, and whatever else Skia decodes) into a model's planar float input
/// [3, H, W]: decode to 8-bit RGBA, resize (<c>crop</c>: scale so the image covers H×W, then take the
/// centre; <c>stretch</c>: scale each axis), then per channel <c>(pixel × PixelScale − Mean) / Std</c> in
/// RGB or BGR order. Alpha is ignored (the colour values are unpremultiplied). Thread-safe: each call
/// works on bitmaps of its own.
/// </summary>
public sealed class ImagePreprocessing
{
    /// <summary>Largest decoded image (pixels) accepted, so a small file cannot expand into gigabytes.</summary>
    public const long MaxPixels = 64L * 1024 * 1024;

    private static readonly SKSamplingOptions Sampling = new(SKCubicResampler.CatmullRom);

    public ImagePreprocessing(string resize, float pixelScale, IReadOnlyList<float> mean, IReadOnlyList<float> std, bool bgr)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (resize is not ("crop" or "stretch"))
            throw new ArgumentException($"resize must be crop or stretch (was '{resize}')", nameof(resize));
        if (mean.Count != 3 || std.Count != 3)
            throw new ArgumentException("mean and std have one value per channel (3)");
        Resize = resize;
        PixelScale = pixelScale;
        Mean = [.. mean];
        Std = [.. std];
        Bgr = bgr;
    }

    public string Resize { get; }

    public float PixelScale { get; }

    public IReadOnlyList<float> Mean { get; }

    public IReadOnlyList<float> Std { get; }

    public bool Bgr { get; }

    /// <summary>Canonical form for fingerprints: every setting that changes the tensor.</summary>
    public string Description => string.Create(CultureInfo.InvariantCulture,
        $"image(decode=skia-rgba8888-unpremul,resize={Resize},resampler=catmull-rom,scale={PixelScale:R},mean={string.Join('/', Mean.Select(m => m.ToString("R", CultureInfo.InvariantCulture)))},std={string.Join('/', Std.Select(m => m.ToString("R", CultureInfo.InvariantCulture)))},order={(Bgr ? "bgr" : "rgb")})");

    /// <summary>
    /// Decodes <paramref name="encoded"/> into <paramref name="destination"/>, 3 × height × width floats.
    /// An image that does not decode, or is too large, throws <see cref="InvalidFeaturesException"/> for
    /// item <paramref name="item"/>.
    /// </summary>
    public void Decode(ReadOnlySpan<byte> encoded, int height, int width, Span<float> destination, int item)
    {
        var plane = height * width;
        if (destination.Length < 3 * plane)
            throw new ArgumentException($"destination holds {destination.Length} floats, {3 * plane} needed", nameof(destination));
        if (encoded.IsEmpty)
            throw new InvalidFeaturesException(item, "image is empty (0 bytes)");

        using var source = DecodeRgba(encoded, item);
        using var resized = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(resized))
        using (var image = SKImage.FromBitmap(source))
        {
            canvas.Clear(SKColors.Black);
            canvas.DrawImage(image, SourceRect(source.Width, source.Height, width, height), new SKRect(0, 0, width, height), Sampling, null);
        }

        var pixels = resized.GetPixelSpan();
        // Mean and Std are in RGB order; with Bgr the red values land in the third plane.
        var r = destination.Slice(Bgr ? 2 * plane : 0, plane);
        var g = destination.Slice(plane, plane);
        var b = destination.Slice(Bgr ? 0 : 2 * plane, plane);
        float rs = PixelScale / Std[0], gs = PixelScale / Std[1], bs = PixelScale / Std[2];
        float ro = Mean[0] / Std[0], go = Mean[1] / Std[1], bo = Mean[2] / Std[2];
        for (var i = 0; i < plane; i++)
        {
            var p = pixels.Slice(i * 4, 4);
            r[i] = p[0] * rs - ro;
            g[i] = p[1] * gs - go;
            b[i] = p[2] * bs - bo;
        }
    }

    private static SKBitmap DecodeRgba(ReadOnlySpan<byte> encoded, int item)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidFeaturesException(item, $"image does not decode ({encoded.Length} bytes that are not a PNG, JPEG, GIF, BMP or WebP image)");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > MaxPixels)
            throw new InvalidFeaturesException(item, $"image is {info.Width}×{info.Height} pixels; at most {MaxPixels} pixels are decoded");
        var bitmap = new SKBitmap(info.WithColorType(SKColorType.Rgba8888).WithAlphaType(SKAlphaType.Unpremul));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new InvalidFeaturesException(item, result == SKCodecResult.IncompleteInput ? "image is truncated (the file ends before its last pixel)" : $"image does not decode ({result})");
        }

        return bitmap;
    }

    /// <summary>The part of the source drawn into the target: all of it (stretch), or the centred part with the target's aspect (crop).</summary>
    private SKRect SourceRect(int sourceWidth, int sourceHeight, int width, int height)
    {
        if (Resize == "stretch")
            return new SKRect(0, 0, sourceWidth, sourceHeight);
        var scale = Math.Max((double)width / sourceWidth, (double)height / sourceHeight);
        var w = width / scale;
        var h = height / scale;
        var x = (sourceWidth - w) / 2;
        var y = (sourceHeight - h) / 2;
        return new SKRect((float)x, (float)y, (float)(x + w), (float)(y + h));
    }
}
