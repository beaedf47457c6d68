using EmbedCache.Contract.V1;
using Google.Protobuf;
using Grpc.Core;

namespace EmbedCache.CacheService.Tests;

/// <summary>The EmbeddingCache service over a real loopback channel.</summary>
public sealed class TrainerApiTests
{
    private const string Mlp = "random-mlp";

    [Fact]
    public async Task ListEncoders_ReturnsTheBuiltInDefaults()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);

        var encoders = (await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders;

        Assert.Equal(["all-minilm-l6-v2", "random-convnet", "random-minilm", "random-mlp", "resnet18"], encoders.Select(e => e.Name));
        Assert.All(encoders, e => Assert.Matches("^[0-9a-f]{32}$", e.Fingerprint));
        Assert.All(encoders, e => Assert.Equal(DType.Float32, e.Dtype));
        Assert.All(encoders, e => Assert.Equal(Tier.Cpu, e.Tier));
        var minilm = encoders.Single(e => e.Name == "random-minilm");
        Assert.Equal(384u, minilm.Dim);
        Assert.Equal(InputKind.Text, minilm.InputKind);
        Assert.Equal(InputKind.FloatVector, encoders.Single(e => e.Name == Mlp).InputKind);
        Assert.Equal((384u, InputKind.Text), (encoders.Single(e => e.Name == "all-minilm-l6-v2").Dim, encoders.Single(e => e.Name == "all-minilm-l6-v2").InputKind));
        Assert.Equal((512u, InputKind.Image), (encoders.Single(e => e.Name == "resnet18").Dim, encoders.Single(e => e.Name == "resnet18").InputKind));
    }

    [Fact]
    public async Task Lookup_MissWithoutFeatures_ReturnsZeroRowsAndEmptyMask()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);

        var response = await contract.Cache.LookupAsync(Contract.Custom(Mlp, "a", "b", "c"));

        var result = Assert.Single(response.Results);
        Assert.Equal(3u, response.Count);
        Assert.False(Contract.IsFound(result.Found, 0) || Contract.IsFound(result.Found, 1) || Contract.IsFound(result.Found, 2));
        Assert.Equal(3 * (int)result.Dim * 4, result.Embeddings.Length);
        Assert.All(result.Embeddings.ToByteArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Lookup_WithFeatures_EncodesOnce_ThenServesTheSameBytesFromTheCache()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var dim = (int)(await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).InputShape[0];
        var first = Contract.Custom(Mlp, "x1", "x2");
        first.Features = Contract.Vectors(dim, Contract.Vector(dim, 1), Contract.Vector(dim, 2));

        var filled = (await contract.Cache.LookupAsync(first)).Results[0];
        var cached = (await contract.Cache.LookupAsync(Contract.Custom(Mlp, "x1", "x2"))).Results[0];

        Assert.Equal(2u, filled.Encoded);
        Assert.Equal(0u, cached.Encoded);
        Assert.True(Contract.IsFound(cached.Found, 0) && Contract.IsFound(cached.Found, 1));
        Assert.Equal(filled.Embeddings, cached.Embeddings);
        Assert.NotEqual(filled.Embeddings.Span[..(4 * (int)filled.Dim)].ToArray(), filled.Embeddings.Span[(4 * (int)filled.Dim)..].ToArray());
    }

    [Fact]
    public async Task Lookup_ContentKeysFromFeatures_AreSharedAcrossRequests()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var request = new LookupRequest { Keys = new KeyBatch { Content = new ContentKeys() }, Features = Contract.Texts("the same words", "other words") };
        request.Encoders.Add("random-minilm");

        var first = (await contract.Cache.LookupAsync(request)).Results[0];
        var second = (await contract.Cache.LookupAsync(request)).Results[0];

        Assert.Equal(2u, first.Encoded);
        Assert.Equal(0u, second.Encoded);
        Assert.Equal(first.Embeddings, second.Embeddings);
    }

    [Fact]
    public async Task ConcurrentLookups_OfTheSameMissingKeys_EncodeEachKeyOnce()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var dim = (int)(await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).InputShape[0];
        var keys = Enumerable.Range(0, 32).Select(i => $"k{i}").ToArray();
        LookupRequest Build()
        {
            var r = Contract.Custom(Mlp, keys);
            r.Features = Contract.Vectors(dim, keys.Select((_, i) => Contract.Vector(dim, i)).ToArray());
            return r;
        }

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => contract.Cache.LookupAsync(Build()).ResponseAsync));

        Assert.Equal(32u, responses.Sum(r => (long)r.Results[0].Encoded));
        Assert.All(responses, r => Assert.Equal(responses[0].Results[0].Embeddings, r.Results[0].Embeddings));
        var stats = await contract.Admin.GetStatsAsync(new GetStatsRequest());
        Assert.Equal(32ul, stats.Namespaces.Single(n => n.Encoder == Mlp).Encoded);
    }

    [Fact]
    public async Task GetEmbeddings_Bidirectional_AnswersEveryBatchInOrderWithItsRequestId()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        using var call = contract.Cache.GetEmbeddings();

        var reader = Task.Run(async () =>
        {
            var ids = new List<ulong>();
            await foreach (var r in call.ResponseStream.ReadAllAsync())
                ids.Add(r.RequestId);
            return ids;
        });
        for (ulong i = 1; i <= 20; i++)
        {
            var request = Contract.Custom(Mlp, $"a{i}", $"b{i}");
            request.RequestId = i;
            await call.RequestStream.WriteAsync(request);
        }

        await call.RequestStream.CompleteAsync();

        Assert.Equal(Enumerable.Range(1, 20).Select(i => (ulong)i), await reader);
    }

    [Fact]
    public async Task BadRequests_GetTheRightStatusAndTheServiceKeepsServing()
    {
        await using var service = await InProcessService.StartAsync(null, "--EmbedCache:Limits:MaxKeysPerRequest=100");
        var contract = new Contract(service.Channel);
        var dim = (int)(await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).InputShape[0];

        async Task<RpcException> Fails(LookupRequest r) => await Assert.ThrowsAsync<RpcException>(() => contract.Cache.LookupAsync(r).ResponseAsync);

        var unknown = await Fails(Contract.Custom("nope", "a"));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("nope", unknown.Status.Detail, StringComparison.Ordinal);

        Assert.Equal(StatusCode.InvalidArgument, (await Fails(Contract.Custom(Mlp))).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(new LookupRequest { Encoders = { Mlp } })).StatusCode);
        Assert.Equal(StatusCode.ResourceExhausted, (await Fails(Contract.Custom(Mlp, Enumerable.Range(0, 101).Select(i => $"k{i}").ToArray()))).StatusCode);

        var longKey = Contract.Custom(Mlp, new string('k', 257));
        var e = await Fails(longKey);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("keys.custom.keys[0]", e.Status.Detail, StringComparison.Ordinal);

        var wrongShape = Contract.Custom(Mlp, "a");
        wrongShape.Features = Contract.Vectors(dim + 1, Contract.Vector(dim + 1, 0));
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(wrongShape)).StatusCode);

        var nan = Contract.Custom(Mlp, "a");
        var bad = Contract.Vector(dim, 0);
        bad[3] = float.NaN;
        nan.Features = Contract.Vectors(dim, bad);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(nan)).StatusCode);

        var countMismatch = Contract.Custom(Mlp, "a", "b");
        countMismatch.Features = Contract.Vectors(dim, Contract.Vector(dim, 0));
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(countMismatch)).StatusCode);

        var ragged = new LookupRequest { Keys = new KeyBatch { Content = new ContentKeys { Hashes = ByteString.CopyFrom(new byte[17]) } } };
        ragged.Encoders.Add(Mlp);
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(ragged)).StatusCode);

        var wrongKind = Contract.Custom("random-minilm", "a");
        wrongKind.Features = Contract.Vectors(dim, Contract.Vector(dim, 0));
        Assert.Equal(StatusCode.InvalidArgument, (await Fails(wrongKind)).StatusCode);

        // Nothing invalid was stored, and the service still answers.
        var after = await contract.Cache.LookupAsync(Contract.Custom(Mlp, "a"));
        Assert.False(Contract.IsFound(after.Results[0].Found, 0));
        var stats = await contract.Admin.GetStatsAsync(new GetStatsRequest());
        Assert.All(stats.Namespaces, n => Assert.Equal(0ul, n.Items));
    }
}
