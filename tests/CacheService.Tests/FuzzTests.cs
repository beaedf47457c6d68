using System.Buffers.Binary;
using System.Net;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Hosting.Security;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// Malformed and hostile requests against a service holding data: every request gets its status, the
/// service stays healthy, and what it stored before is byte-for-byte what it serves after.
/// <c>EMBEDCACHE_LONG=1</c> runs ten times as many rounds.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const string Mlp = "random-mlp";
    private static readonly bool Long = Environment.GetEnvironmentVariable("EMBEDCACHE_LONG") == "1";

    [Theory]
    [InlineData("/embedcache.v1.EmbeddingCache/Lookup", "LookupRequest")]
    [InlineData("/embedcache.v1.EmbeddingCache/GetEmbeddings", "LookupRequest")]
    [InlineData("/embedcache.v1.CacheAdmin/Checkpoint", "CheckpointRequest")]
    public async Task AFrameThatIsNotProtobuf_IsInvalidArgument_NamingTheMessage(string method, string message)
    {
        await using var service = await InProcessService.StartAsync();
        // Field 1 with wire type 7, which protobuf does not have: no parser accepts it.
        byte[] payload = [0x0F, 0x01, 0x02, 0x03];
        var body = new byte[5 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(body, 5);

        var (grpcStatus, detail) = await RawCallAsync(service.Endpoints.GrpcUri, method, body);

        Assert.Equal(StatusCode.InvalidArgument, grpcStatus);
        Assert.StartsWith($"the message is not a valid {message}", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostileRequests_GetTheRightStatus_ServiceStaysHealthy_StoredDataUnchanged()
    {
        await using var service = await InProcessService.StartAsync(null,
            "--EmbedCache:Limits:MaxReceiveMessageBytes=1048576", "--EmbedCache:Limits:MaxKeysPerRequest=1000");
        var c = new Contract(service.Channel);
        var dim = (int)(await c.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).InputShape[0];
        var prewarm = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2, Splits = { "train" }, Encoders = { Mlp } };
        Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(c.Admin, prewarm))[^1].State);
        var custom = Contract.Custom(Mlp, Enumerable.Range(0, 32).Select(i => $"item-{i}").ToArray());
        custom.Features = Contract.Vectors(dim, Enumerable.Range(0, 32).Select(i => Contract.Vector(dim, i)).ToArray());
        await c.Cache.LookupAsync(custom);
        var before = await SnapshotAsync(c);

        var random = new Random(20240611);
        var counts = new Dictionary<string, int>();
        var rounds = Long ? 200 : 12;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (name, request, expected) in BadLookups(random, dim))
            {
                var (code, detail) = await Contract.StatusAndDetail(() => c.Cache.LookupAsync(request).ResponseAsync);
                Assert.True(code == expected, $"{name}: expected {expected}, got {code} ({detail})");
                Assert.False(string.IsNullOrWhiteSpace(detail), $"{name}: the status has no message");
                Count(name);
            }

            foreach (var dataset in new[] { "../../etc", "/etc", "digits/../../..", "..", "../" + Path.GetFileName(Path.GetTempPath().TrimEnd('/')) })
            {
                var code = await Contract.StatusOf(() => Contract.PrewarmToEndAsync(c.Admin, new PrewarmRequest { Dataset = dataset }));
                Assert.True(code == StatusCode.InvalidArgument, $"prewarm of '{dataset}': expected InvalidArgument, got {code}");
                var stream = new StreamDatasetRequest { Dataset = dataset, Split = "train", Encoders = { Mlp }, FillMissing = true };
                var streamCode = await Contract.StatusOf(() => ReadAllAsync(c, stream));
                Assert.True(streamCode is StatusCode.InvalidArgument, $"stream of '{dataset}': expected InvalidArgument, got {streamCode}");
                Count("path traversal", 2);
            }

            var unknownDataset = new StreamDatasetRequest { Dataset = "no-such-dataset", Split = "train", Encoders = { Mlp }, FillMissing = true };
            Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => ReadAllAsync(c, unknownDataset)));
            Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => Contract.PrewarmToEndAsync(c.Admin, new PrewarmRequest { Dataset = "no-such-dataset" })));
            Count("unknown dataset", 2);

            for (var i = 0; i < 5; i++)
            {
                var (code, grpcStatus, message, badFraming) = await RawGarbageAsync(service.Endpoints.GrpcUri, random);
                Assert.Equal(HttpStatusCode.OK, code);
                // A body that is not protobuf: INVALID_ARGUMENT from the contract's own request marshallers (unary
                // and streaming) or INTERNAL for a frame cut short (grpc-dotnet's own); random bytes that happen to
                // parse get the service's answer to what they say. Broken gRPC framing (a length over 2 GiB, a
                // compression flag that is neither 0 nor 1) is refused by grpc-dotnet before any code of ours runs:
                // RESOURCE_EXHAUSTED or INTERNAL, and UNKNOWN for a unary call; no detail leaks either way.
                var allowed = badFraming
                    ? grpcStatus is StatusCode.ResourceExhausted or StatusCode.Internal or StatusCode.Unknown or StatusCode.InvalidArgument
                    : grpcStatus is StatusCode.Internal or StatusCode.InvalidArgument or StatusCode.NotFound;
                Assert.True(allowed, $"random bytes{(badFraming ? " with broken framing" : " in a gRPC frame")}: got grpc-status {grpcStatus} ({message})");
                Assert.DoesNotContain("Protobuf", message, StringComparison.Ordinal);
                Assert.DoesNotContain(" at ", message, StringComparison.Ordinal);
                Count("random bytes (raw HTTP/2)");
            }

            await CancelMidBatchAsync(c, random, dim);
            Count("stream cancelled mid-batch");
            await NeverReadAsync(c);
            Count("client that never reads");
        }

        // Nothing leaked: every stream the fuzzing opened has ended on the server.
        var limiter = service.Services.GetRequiredService<CallerStreamLimiter>();
        await TestSupport.Wait.UntilAsync(() => limiter.Open("peer:ipv4:127.0.0.1") == 0, "every fuzzed stream to end on the server");
        using var health = new EmbedCacheClient(service.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await health.CheckHealthAsync());
        var after = await SnapshotAsync(c);
        Assert.Equal(before.Positional, after.Positional);
        Assert.Equal(before.Custom, after.Custom);
        Assert.True(after.Items >= before.Items, "stored items went missing");

        var total = counts.Values.Sum();
        output.WriteLine($"fuzz: {total} hostile requests in {rounds} rounds; service healthy, {before.Positional.Length + before.Custom.Length} stored bytes unchanged");
        foreach (var (name, n) in counts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            output.WriteLine($"  {name}: {n}");

        void Count(string name, int n = 1) => counts[name] = counts.GetValueOrDefault(name) + n;
    }

    private static IEnumerable<(string Name, LookupRequest Request, StatusCode Expected)> BadLookups(Random random, int dim)
    {
        yield return ("empty batch", Contract.Custom(Mlp), StatusCode.InvalidArgument);
        yield return ("no keys", new LookupRequest { Encoders = { Mlp } }, StatusCode.InvalidArgument);
        yield return ("no encoders", new LookupRequest { Keys = new KeyBatch { Custom = new CustomKeys { Keys = { ByteString.CopyFromUtf8("a") } } } }, StatusCode.InvalidArgument);
        yield return ("huge batch", Contract.Custom(Mlp, Enumerable.Range(0, 1001 + random.Next(500)).Select(i => $"k{i}").ToArray()), StatusCode.ResourceExhausted);
        yield return ("unknown encoder", Contract.Custom("no-such-encoder-" + random.Next(1000), "a"), StatusCode.NotFound);
        yield return ("empty custom key", new LookupRequest { Encoders = { Mlp }, Keys = new KeyBatch { Custom = new CustomKeys { Keys = { ByteString.Empty } } } }, StatusCode.InvalidArgument);
        var wrongDim = Contract.Custom(Mlp, "item-0");
        var d = dim + 1 + random.Next(10);
        wrongDim.Features = Contract.Vectors(d, Contract.Vector(d, 0));
        yield return ("wrong dims", wrongDim, StatusCode.InvalidArgument);
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var v = Contract.Vector(dim, 1);
            v[random.Next(dim)] = bad;
            var r = Contract.Custom(Mlp, $"nan-{random.Next()}");
            r.Features = Contract.Vectors(dim, v);
            yield return ("NaN/Inf features", r, StatusCode.InvalidArgument);
        }

        var ragged = new LookupRequest { Encoders = { Mlp }, Keys = new KeyBatch { Custom = new CustomKeys { Keys = { ByteString.CopyFromUtf8("item-2") } } } };
        ragged.Features = new FeatureBatch { Tensor = new TensorFeatures { ItemShape = { dim }, Data = ByteString.CopyFrom(RandomBytes(random, dim * 4 - 1 - random.Next(3))) } };
        yield return ("ragged feature bytes", ragged, StatusCode.InvalidArgument);
        var negative = Contract.Custom(Mlp, "item-3");
        negative.Features = new FeatureBatch { Tensor = new TensorFeatures { ItemShape = { -dim }, Data = ByteString.CopyFrom(new byte[dim * 4]) } };
        yield return ("negative shape", negative, StatusCode.InvalidArgument);
        var poisoned = new LookupRequest { Encoders = { Mlp }, Keys = new KeyBatch { Content = new ContentKeys { Hashes = ByteString.CopyFrom(RandomBytes(random, 16)) } } };
        poisoned.Features = Contract.Vectors(dim, Contract.Vector(dim, 5));
        yield return ("content key not the features' hash", poisoned, StatusCode.InvalidArgument);
        var textToVector = Contract.Custom(Mlp, "item-4");
        textToVector.Features = Contract.Texts("hello");
        yield return ("text to a vector encoder", textToVector, StatusCode.InvalidArgument);
        yield return ("oversize message", Contract.Custom(Mlp, Enumerable.Range(0, 900).Select(_ => new string('x', 256)).ToArray()) is var big
            ? Oversize(big, random) : null!, StatusCode.ResourceExhausted);
    }

    private static LookupRequest Oversize(LookupRequest request, Random random)
    {
        request.Features = new FeatureBatch { Text = new TextFeatures() };
        for (var i = 0; i < 900; i++)
            request.Features.Text.Texts.Add(new string((char)('a' + random.Next(26)), 1024));
        return request;
    }

    private static byte[] RandomBytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    /// <summary>Raw gRPC over HTTP/2 with a garbage body: a real frame header over random bytes, a lying length, or no framing at all.</summary>
    private static async Task<(HttpStatusCode Http, StatusCode Grpc, string Message, bool BadFraming)> RawGarbageAsync(Uri grpc, Random random)
    {
        var payload = RandomBytes(random, 1 + random.Next(2048));
        byte[] body;
        var kind = random.Next(3);
        switch (kind)
        {
            case 0:
                body = new byte[5 + payload.Length];
                BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), (uint)payload.Length);
                payload.CopyTo(body, 5);
                break;
            case 1:
                body = new byte[5 + payload.Length];
                BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(1), uint.MaxValue - (uint)random.Next(1000));
                payload.CopyTo(body, 5);
                break;
            default:
                body = payload;
                break;
        }

        var method = random.Next(3) switch
        {
            0 => "/embedcache.v1.EmbeddingCache/Lookup",
            1 => "/embedcache.v1.EmbeddingCache/GetEmbeddings",
            _ => "/embedcache.v1.CacheAdmin/GetStats",
        };
        var (http, status, message) = await SendRawAsync(grpc, method, body);
        return (http, status, $"{method}: {message}", kind != 0);
    }

    private static async Task<(StatusCode Status, string Detail)> RawCallAsync(Uri grpc, string method, byte[] body)
    {
        var (http, status, message) = await SendRawAsync(grpc, method, body);
        Assert.Equal(HttpStatusCode.OK, http);
        return (status, Uri.UnescapeDataString(message));
    }

    /// <summary>One gRPC call over raw HTTP/2 with <paramref name="body"/> as its (framed or not) request.</summary>
    private static async Task<(HttpStatusCode Http, StatusCode Grpc, string Message)> SendRawAsync(Uri grpc, string method, byte[] body)
    {
        using var handler = new SocketsHttpHandler();
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(grpc, method))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TE.ParseAdd("trailers");
        using var response = await http.SendAsync(request);
        _ = await response.Content.ReadAsByteArrayAsync();
        var status = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First()
            : response.Headers.TryGetValues("grpc-status", out var h) ? h.First() : "missing";
        var message = response.TrailingHeaders.TryGetValues("grpc-message", out var m) ? m.First()
            : response.Headers.TryGetValues("grpc-message", out var hm) ? hm.First() : "";
        Assert.True(status != "missing", $"{method}: no grpc-status in the response (HTTP {(int)response.StatusCode})");
        return (response.StatusCode, (StatusCode)int.Parse(status, System.Globalization.CultureInfo.InvariantCulture), message);
    }

    /// <summary>A read-through stream cancelled after its first answer, with more batches in flight.</summary>
    private static async Task CancelMidBatchAsync(Contract c, Random random, int dim)
    {
        using var cts = new CancellationTokenSource();
        using var call = c.Cache.GetEmbeddings(cancellationToken: cts.Token);
        var code = await Contract.StatusOf(async () =>
        {
            for (var b = 0; b < 3; b++)
            {
                var r = Contract.Custom(Mlp, Enumerable.Range(0, 64).Select(i => $"cancel-{random.Next()}-{i}").ToArray());
                r.Features = Contract.Vectors(dim, Enumerable.Range(0, 64).Select(i => Contract.Vector(dim, random.Next())).ToArray());
                await call.RequestStream.WriteAsync(r);
            }

            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            await cts.CancelAsync();
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, code);
    }

    /// <summary>A dataset stream of 1-item batches that the client never reads, then abandons.</summary>
    private static async Task NeverReadAsync(Contract c)
    {
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 1, Encoders = { Mlp } };
        using var call = c.Cache.StreamDataset(request);
        await call.ResponseHeadersAsync;
    }

    private static async Task ReadAllAsync(Contract c, StreamDatasetRequest request)
    {
        using var call = c.Cache.StreamDataset(request);
        await foreach (var _ in call.ResponseStream.ReadAllAsync())
        {
        }
    }

    private static async Task<(byte[] Positional, byte[] Custom, ulong Items)> SnapshotAsync(Contract c)
    {
        var positional = await c.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", [.. Enumerable.Range(0, 200).Select(i => (ulong)(i * 7))]));
        var custom = await c.Cache.LookupAsync(Contract.Custom(Mlp, Enumerable.Range(0, 32).Select(i => $"item-{i}").ToArray()));
        Assert.All(Enumerable.Range(0, 200), i => Assert.True(Contract.IsFound(positional.Results[0].Found, i)));
        Assert.All(Enumerable.Range(0, 32), i => Assert.True(Contract.IsFound(custom.Results[0].Found, i)));
        var stats = await c.Admin.GetStatsAsync(new GetStatsRequest());
        return (positional.Results[0].Embeddings.ToByteArray(), custom.Results[0].Embeddings.ToByteArray(), stats.Namespaces.Single(n => n.Encoder == Mlp).Items);
    }
}
