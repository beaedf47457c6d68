using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Google.Protobuf;
using Grpc.Core;
using SkiaSharp;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// The pretrained encoders a fresh service offers, end to end over gRPC: a folder of pictures prewarmed with
/// resnet18 and looked up by file bytes, text read through all-minilm-l6-v2, and bad images refused.
/// </summary>
public sealed class PretrainedModelTests
{
    private const string ResNet = "resnet18";
    private const string MiniLm = "all-minilm-l6-v2";

    /// <summary>A picture: a coloured disc on a background, as PNG or JPEG.</summary>
    private static byte[] Picture(SKColor background, SKColor disc, float radius, bool jpeg = false)
    {
        using var bitmap = new SKBitmap(96, 64);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(background);
            using var paint = new SKPaint { Color = disc, IsAntialias = true };
            canvas.DrawCircle(48, 32, radius, paint);
        }

        using var data = bitmap.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 95);
        return data.ToArray();
    }

    private static readonly byte[][] Pictures =
    [
        Picture(SKColors.White, SKColors.Red, 20),
        Picture(SKColors.White, SKColors.Red, 24, jpeg: true),
        Picture(SKColors.Navy, SKColors.Yellow, 28),
        Picture(SKColors.Navy, SKColors.Yellow, 16, jpeg: true),
    ];

    private static async Task<string> ImageDatasetAsync(TempDirectory data)
    {
        var dir = Directory.CreateDirectory(data.Combine("pictures")).FullName;
        Directory.CreateDirectory(Path.Combine(dir, "img"));
        var lines = new List<string>();
        for (var i = 0; i < Pictures.Length; i++)
        {
            var file = $"img/{i}.{(i % 2 == 1 ? "jpg" : "png")}";
            await File.WriteAllBytesAsync(Path.Combine(dir, file), Pictures[i]);
            lines.Add($"{{\"path\": \"{file}\", \"label\": {i / 2}}}");
        }

        await File.WriteAllLinesAsync(Path.Combine(dir, "train.jsonl"), lines);
        await File.WriteAllTextAsync(Path.Combine(dir, "dataset.json"),
            """{ "splits": { "train": "train.jsonl" }, "features": { "kind": "image", "field": "path" }, "labels": { "kind": "group" } }""");
        return dir;
    }

    private static float[] Rows(ByteString embeddings) => MemoryMarshal.Cast<byte, float>(embeddings.Span).ToArray();

    [Fact]
    public async Task AFolderOfPictures_PrewarmedWithResNet18_IsServedByPosition_AndByFileBytes()
    {
        using var data = new TempDirectory("data");
        await ImageDatasetAsync(data);
        await using var service = await InProcessService.StartAsync(null, $"--EmbedCache:DataRoot={data.Path}");
        var contract = new Contract(service.Channel);

        var prewarm = await Contract.PrewarmToEndAsync(contract.Admin, new PrewarmRequest { Dataset = "pictures", Encoders = { ResNet }, BatchSize = 2 });
        Assert.Equal(JobState.Completed, prewarm[^1].State);
        Assert.Equal((ulong)Pictures.Length, prewarm[^1].Encoded);

        var byPosition = (await contract.Cache.LookupAsync(Contract.Positional(ResNet, "pictures", "train", 0, 1, 2, 3))).Results[0];
        Assert.Equal(512u, byPosition.Dim);
        Assert.All(Enumerable.Range(0, 4), i => Assert.True(Contract.IsFound(byPosition.Found, i)));
        var rows = Rows(byPosition.Embeddings);
        float Similarity(int a, int b) => TensorPrimitives.CosineSimilarity(rows.AsSpan(a * 512, 512), rows.AsSpan(b * 512, 512));
        // The same scene at another size (and as JPEG) is closer than the other scene.
        Assert.True(Similarity(0, 1) > Similarity(0, 2), $"red discs {Similarity(0, 1):F3}, red vs yellow {Similarity(0, 2):F3}");
        Assert.True(Similarity(2, 3) > Similarity(1, 3), $"yellow discs {Similarity(2, 3):F3}, red vs yellow {Similarity(1, 3):F3}");

        // Read-through by content key: the service hashes and decodes the same file bytes to the same rows.
        var features = KeyExtractors.Images([.. Pictures.Select(p => (ReadOnlyMemory<byte>)p)]);
        var request = new LookupRequest { Keys = KeyExtractors.ContentFromFeatures(), Features = features, Encoders = { ResNet } };
        var byBytes = (await contract.Cache.LookupAsync(request)).Results[0];
        Assert.Equal(4u, byBytes.Encoded);
        Assert.Equal(rows, Rows(byBytes.Embeddings));
        var again = (await contract.Cache.LookupAsync(new LookupRequest { Keys = KeyExtractors.Content(features), Encoders = { ResNet } })).Results[0];
        Assert.Equal(0u, again.Encoded);
        Assert.Equal(rows, Rows(again.Embeddings));
    }

    [Fact]
    public async Task AnImageThatDoesNotDecode_IsInvalidArgumentNamingIt_AndNothingIsStored()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var keys = new KeyBatch { Custom = new CustomKeys { Keys = { ByteString.CopyFromUtf8("good"), ByteString.CopyFromUtf8("bad") } } };
        var features = KeyExtractors.Images(Pictures[0], "definitely not an image"u8.ToArray());

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await contract.Cache.LookupAsync(new LookupRequest { Keys = keys, Features = features, Encoders = { ResNet } }));
        var after = (await contract.Cache.LookupAsync(new LookupRequest { Keys = keys, Encoders = { ResNet } })).Results[0];

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("item 1", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("image does not decode", e.Status.Detail, StringComparison.Ordinal);
        Assert.False(Contract.IsFound(after.Found, 0));
        Assert.False(Contract.IsFound(after.Found, 1));
    }

    [Fact]
    public async Task Text_ReadsThroughAllMiniLmL6V2_AsNormalisedSentenceEmbeddings()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var features = Contract.Texts("A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.");

        var first = (await contract.Cache.LookupAsync(new LookupRequest { Keys = KeyExtractors.ContentFromFeatures(), Features = features, Encoders = { MiniLm } })).Results[0];
        var second = (await contract.Cache.LookupAsync(new LookupRequest { Keys = KeyExtractors.Content(features), Encoders = { MiniLm } })).Results[0];

        Assert.Equal((384u, 3u, 0u), (first.Dim, first.Encoded, second.Encoded));
        var rows = Rows(second.Embeddings);
        Assert.Equal(Rows(first.Embeddings), rows);
        Assert.All(Enumerable.Range(0, 3), i => Assert.Equal(1f, TensorPrimitives.Norm(rows.AsSpan(i * 384, 384)), 1e-4f));
        var food = TensorPrimitives.CosineSimilarity(rows.AsSpan(0, 384), rows.AsSpan(384, 384));
        var baby = TensorPrimitives.CosineSimilarity(rows.AsSpan(0, 384), rows.AsSpan(768, 384));
        Assert.True(food > baby + 0.3f, $"eating/eating {food:F3}, eating/baby {baby:F3}");
    }
}
