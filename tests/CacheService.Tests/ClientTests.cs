using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Grpc.Core;

namespace EmbedCache.CacheService.Tests;

/// <summary>The client library against the real service.</summary>
public sealed class ClientTests
{
    private const string Mlp = "random-mlp";

    private static float[] Item(int i) => Contract.Vector(64, i + 1000);

    [Fact]
    public async Task CachedDataLoader_SendsFeaturesOnlyWhileKeysMiss_AndServesTheSameEmbeddingsEveryEpoch()
    {
        await using var service = await InProcessService.StartAsync();
        using var client = new EmbedCacheClient(service.Channel);
        var items = Enumerable.Range(0, 100).ToList();
        var loader = new CachedDataLoader<int>(client, items, [Mlp],
            keys: (all, positions) => KeyExtractors.Custom(positions, p => $"item-{all[p]}"),
            features: (all, positions) => KeyExtractors.Tensors(positions.SelectMany(p => Item(all[p])).ToArray(), 64),
            batchSize: 32);

        var first = await Collect(loader, 0);
        var afterFirst = (loader.FeatureRequests, loader.KeyOnlyRequests);
        var second = await Collect(loader, 1);
        var afterSecond = (loader.FeatureRequests, loader.KeyOnlyRequests);
        await client.DropNamespaceAsync(Mlp);
        var third = await Collect(loader, 2);

        // 100 items in batches of 32: 4 requests an epoch.
        Assert.Equal((4L, 0L), afterFirst);
        Assert.Equal((4L, 4L), afterSecond);
        // After the drop every keys-only request misses and is sent again with features.
        Assert.Equal((8L, 8L), (loader.FeatureRequests, loader.KeyOnlyRequests));
        Assert.Equal(first, second);
        Assert.Equal(first, third);
        var stats = await client.GetStatsAsync();
        Assert.Equal(100ul, stats.Namespaces.Single(n => n.Encoder == Mlp).Items);
    }

    [Fact]
    public async Task AddEmbedCacheClient_RegistersOneConfiguredClient_ThatReachesTheService()
    {
        await using var service = await InProcessService.StartAsync();
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        services.AddEmbedCacheClient(o => o.Address = service.Endpoints.GrpcUri);
        using var provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);

        var client = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<EmbedCacheClient>(provider);
        var again = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<EmbedCacheClient>(provider);

        Assert.Same(client, again);
        Assert.Contains(await client.ListEncodersAsync(), e => e.Name == Mlp);
    }

    [Fact]
    public async Task ContentKeys_ComputedByTheClient_MatchTheServicesHashes()
    {
        await using var service = await InProcessService.StartAsync();
        using var client = new EmbedCacheClient(service.Channel);
        var features = KeyExtractors.Texts(["a sentence", "another one"]);

        await client.LookupAsync(["random-minilm"], KeyExtractors.ContentFromFeatures(), features);
        var byClientHash = await client.LookupAsync(["random-minilm"], KeyExtractors.Content(features));

        Assert.Equal(2, Embeddings.CountFound(byClientHash.Results[0].Found, 2));
    }

    [Fact]
    public async Task Float16Encoder_ClientConvertsRowsToFloat32()
    {
        await using var service = await InProcessService.StartAsync(null,
            "--EmbedCache:Encoders:half:Kind=random-mlp", "--EmbedCache:Encoders:half:DType=Float16");
        using var client = new EmbedCacheClient(service.Channel);
        var features = KeyExtractors.Tensors(Item(1), 64);

        var half = (await client.LookupAsync(["half"], KeyExtractors.Custom([1], _ => "k"), features)).Results[0];
        var full = (await client.LookupAsync([Mlp], KeyExtractors.Custom([1], _ => "k"), features)).Results[0];

        Assert.Equal(DType.Float16, half.Dtype);
        Assert.Equal(half.Embeddings.Length * 2, full.Embeddings.Length);
        var a = Embeddings.ToFloat32(half);
        var b = Embeddings.ToFloat32(full);
        for (var i = 0; i < a.Length; i++)
            Assert.Equal(b[i], a[i], Math.Max(1e-3f, Math.Abs(b[i]) * 1e-3f));
    }

    [Fact]
    public async Task UnaryCalls_RetryUnavailableWithBackoff_ThenSucceed()
    {
        await using var service = await InProcessService.StartAsync();
        // Fault injection at the HTTP boundary: the first two calls are answered UNAVAILABLE.
        var faults = new UnavailableFirst(2) { InnerHandler = new SocketsHttpHandler() };
        using var client = new EmbedCacheClient(new EmbedCacheClientOptions
        {
            Address = service.Endpoints.GrpcUri,
            HttpHandler = faults,
            MaxAttempts = 4,
            InitialBackoff = TimeSpan.FromMilliseconds(20),
        });

        var encoders = await client.ListEncodersAsync();

        Assert.Contains(encoders, e => e.Name == Mlp);
        Assert.Equal(3, faults.Requests);
    }

    [Fact]
    public async Task UnaryCalls_GiveUpAfterMaxAttempts_WithUnavailable()
    {
        await using var service = await InProcessService.StartAsync();
        var faults = new UnavailableFirst(10) { InnerHandler = new SocketsHttpHandler() };
        using var client = new EmbedCacheClient(new EmbedCacheClientOptions
        {
            Address = service.Endpoints.GrpcUri,
            HttpHandler = faults,
            MaxAttempts = 3,
            InitialBackoff = TimeSpan.FromMilliseconds(20),
        });

        var e = await Assert.ThrowsAsync<RpcException>(() => client.ListEncodersAsync());

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal(3, faults.Requests);
    }

    /// <summary>Answers the first N gRPC calls with a trailers-only UNAVAILABLE, then passes calls through.</summary>
    private sealed class UnavailableFirst(int failures) : DelegatingHandler
    {
        private int _requests;

        public int Requests => Volatile.Read(ref _requests);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _requests) > failures)
                return base.SendAsync(request, cancellationToken);
            var response = new HttpResponseMessage(System.Net.HttpStatusCode.OK)
            {
                Version = System.Net.HttpVersion.Version20,
                RequestMessage = request,
                Content = new ByteArrayContent([]),
            };
            response.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
            response.Headers.Add("grpc-status", "14");
            response.Headers.Add("grpc-message", "injected fault");
            return Task.FromResult(response);
        }
    }

    [Fact]
    public async Task NoRetries_FailWithUnavailable_NamingTheProblem()
    {
        using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = new Uri("http://127.0.0.1:1"), MaxAttempts = 1 });

        var e = await Assert.ThrowsAsync<RpcException>(() => client.ListEncodersAsync());

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }

    private static async Task<List<string>> Collect(CachedDataLoader<int> loader, int epoch)
    {
        var rows = new Dictionary<int, string>();
        await foreach (var batch in loader.EpochAsync(epoch, seed: 5))
        {
            var r = batch.Response.Results[0];
            var rowBytes = (int)r.Dim * 4;
            for (var i = 0; i < batch.Positions.Length; i++)
                rows[batch.Positions[i]] = Convert.ToHexString(r.Embeddings.Span.Slice(i * rowBytes, rowBytes));
        }

        return rows.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList();
    }
}
